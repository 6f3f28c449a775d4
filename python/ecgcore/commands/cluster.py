"""`ecgcore cluster`: k-means pseudo-labels over feature dumps (HuBERT-ECG, SPEC 5.3).

FEATURES_DIR holds `.npy` files of feature rows `[rows, dims]` (one file per ECG or record).
`fit` either loads every file and runs Lloyd k-means, or (`--mini-batch`) streams the files a
batch at a time through `partial_fit`, so the data never has to fit in memory. `label` writes one
label file per feature file.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .._fs import atomic_write


def _feature_files(features_dir: Path) -> list[Path]:
    files = sorted(p for p in Path(features_dir).glob("*.npy") if p.is_file())
    if not files:
        raise click.UsageError(f"no .npy feature files in {features_dir}")
    return files


def _load_rows(path: Path) -> np.ndarray:
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2:
        raise click.ClickException(f"{path}: expected feature rows [rows, dims], got shape {x.shape}")
    return x


def _k_values(spec: str) -> list[int]:
    """'100' or 'start:stop:step' (stop included, as in HuBERT-ECG's sweep)."""
    try:
        parts = [int(p) for p in spec.split(":")]
    except ValueError:
        raise click.BadParameter(f"expected K or START:STOP:STEP, got {spec!r}", param_hint="--k") from None
    if len(parts) == 1:
        ks = parts
    elif len(parts) == 3 and parts[2] > 0 and parts[0] <= parts[1]:
        ks = list(range(parts[0], parts[1] + 1, parts[2]))
    else:
        raise click.BadParameter(f"expected K or START:STOP:STEP with STEP > 0, got {spec!r}", param_hint="--k")
    if min(ks) < 2:
        raise click.BadParameter("k must be >= 2", param_hint="--k")
    return ks


def _batches(files: list[Path], per_batch: int):
    for i in range(0, len(files), per_batch):
        yield files[i:i + per_batch]


def _model_path(model: Path, k: int, sweep: bool) -> Path:
    return model.with_name(f"{model.stem}_k{k}{model.suffix or '.npz'}") if sweep else model


def _save_labels(path: Path, labels: np.ndarray) -> None:
    with atomic_write(path, mode=0o600) as tmp, open(tmp, "wb") as fh:  # 0600 as before
        np.save(fh, labels)


@click.group("cluster")
def cluster():
    """k-means pseudo-labels over feature dumps."""


@cluster.command("fit")
@click.argument("features_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--k", "k_spec", default="100", show_default=True,
              help="Clusters, or a sweep START:STOP:STEP (stop included) writing MODEL_k<K>.npz per k.")
@click.option("--mini-batch", is_flag=True, help="Stream the files through partial_fit (one pass).")
@click.option("--batch-files", default=100, show_default=True, type=click.IntRange(1),
              help="Feature files per mini-batch step (HuBERT-ECG: 100 ECGs).")
@click.option("--normalize/--no-normalize", default=True, show_default=True,
              help="L2-normalise rows at fit and at label time.")
@click.option("--seed", default=42, show_default=True, type=click.IntRange(0))
@click.option("--n-init", default=1, show_default=True, type=click.IntRange(1), help="Restarts (full fit only).")
@click.option("--max-iter", default=300, show_default=True, type=click.IntRange(1))
@click.option("--tol", default=1e-4, show_default=True, type=click.FloatRange(0))
@click.option("--shuffle/--no-shuffle", default=True, show_default=True,
              help="Shuffle the file order (seeded) before mini-batching.")
@click.option("--features-kind", default=None, help="Stored in the model metadata (default: the folder name).")
@click.option("--workers", default=None, type=int, help="Threads (default: all cores).")
def fit_cmd(features_dir, model, k_spec, mini_batch, batch_files, normalize, seed, n_init, max_iter, tol,
            shuffle, features_kind, workers):
    """Fit k-means on FEATURES_DIR/*.npy and save MODEL (.npz); print SSE, Davies-Bouldin, Calinski-Harabasz.

    SSE is the inertia over all rows. DB and CH are computed per batch of files and averaged over
    the batches (HuBERT-ECG's protocol) with --mini-batch, and over all rows otherwise.
    """
    from tqdm import tqdm

    from ..cluster import KMeans, calinski_harabasz, davies_bouldin

    files = _feature_files(features_dir)
    ks = _k_values(k_spec)
    sweep = len(ks) > 1 or ":" in k_spec
    kind = features_kind or Path(features_dir).name
    if shuffle:
        files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    everything = None
    if not mini_batch:
        everything = np.concatenate([_load_rows(f) for f in tqdm(files, desc="load features", unit="file")])
    rows_table = []
    for k in ks:
        km = KMeans(k, n_init=n_init, max_iter=max_iter, tol=tol, random_state=seed, normalize=normalize,
                    compute_labels=False, workers=workers)
        if mini_batch:
            for group in tqdm(list(_batches(files, batch_files)), desc=f"k={k} partial_fit", unit="batch"):
                km.partial_fit(np.concatenate([_load_rows(f) for f in group]))
            sse, dbs, chs = 0.0, [], []
            for group in tqdm(list(_batches(files, batch_files)), desc=f"k={k} evaluate", unit="batch"):
                x = np.concatenate([_load_rows(f) for f in group])
                labels = km.predict(x)
                sse += km.inertia(x)
                xn = x if not normalize else km._prepare(x, fitting=False)
                if 2 <= len(np.unique(labels)) <= len(x) - 1:
                    dbs.append(davies_bouldin(xn, labels, workers=workers))
                    chs.append(calinski_harabasz(xn, labels, workers=workers))
            db = float(np.mean(dbs)) if dbs else float("nan")
            ch = float(np.mean(chs)) if chs else float("nan")
            km.inertia_ = sse
        else:
            with tqdm(total=1, desc=f"k={k} fit (Lloyd)", unit="fit") as bar:
                km.fit(everything)
                bar.update()
            with tqdm(total=1, desc=f"k={k} evaluate", unit="pass") as bar:
                xn = km._prepare(everything, fitting=False)
                sse = km.inertia_
                db = davies_bouldin(xn, km.labels_, workers=workers)
                ch = calinski_harabasz(xn, km.labels_, workers=workers)
                bar.update()
        out = _model_path(model, k, sweep)
        km.save(out, features_kind=kind)
        rows_table.append((k, sse, db, ch, out))
    lines = ["k\tSSE\tDB\tCH\tmodel"] + [f"{k}\t{sse:.6e}\t{db:.4f}\t{ch:.2f}\t{out}" for k, sse, db, ch, out in rows_table]
    click.echo("\n".join(lines))
    if sweep:
        table = model.with_name(f"{model.stem}_sweep.tsv")
        table.write_text("\n".join(lines) + "\n")
        click.echo(f"sweep table: {table}")


@cluster.command("label")
@click.argument("features_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Recompute label files that already exist.")
@click.option("--workers", default=None, type=int, help="Threads (default: all cores).")
def label_cmd(features_dir, model, out, overwrite, workers):
    """Write OUT/<name>.npy (int32 cluster label per feature row) for every FEATURES_DIR/<name>.npy.

    Rows are normalised exactly as at fit time (the model records it). Existing label files with
    the right number of rows are kept, so an interrupted run resumes.
    """
    from tqdm import tqdm

    from ..cluster import load_model

    km = load_model(model)
    km.workers = workers
    out.mkdir(parents=True, exist_ok=True)
    files = _feature_files(features_dir)
    done = 0
    for f in tqdm(files, desc="label", unit="file"):
        x = _load_rows(f)
        dest = out / f.name
        if not overwrite and dest.exists():
            try:
                if np.load(dest, mmap_mode="r").shape == (len(x),):
                    continue
            except ValueError:
                pass
        _save_labels(dest, km.predict(x).astype(np.int32))
        done += 1
    click.echo(f"labelled {done} of {len(files)} files into {out} (k={km.n_clusters})")
