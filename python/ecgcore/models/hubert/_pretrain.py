"""Masked prediction of k-means pseudo-labels (SPEC 5.5), iteration-2 latent dumps and re-clustering (SPEC 5.2-5.3).

Run folder (the shared one of :mod:`ecgcore.models._run`): ``config.json``, ``checkpoint/last.pt`` (resume point,
written at every validation), ``history.csv``, ``learning_curve.png``, ``run.json`` (status and summary); plus
``best.pt`` (best validation loss, or accuracy as the seed's tie rule) and ``inputs-*.npy`` (cached model inputs).
"""
from __future__ import annotations

import time
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import inputs as I
from .._run import Run
from ._common import RUN_STOP, after_validation, optimiser_step, atomic_torch_save, make_optimizer, merge_json
from .config import HubertConfig, HubertTrainConfig
from .model import HubertForPretraining, compute_mask, count_parameters, load_pretrained, seed_everything

RESUMABLE = ("max_steps", "time_limit_s", "patience", "val_every", "threads")

__all__ = ["pretrain", "dump_features", "cluster_features", "load_labels"]


def _labels_file(labels_dir: Path, item: str) -> Path:
    base = item[: -len(".npy")] if item.endswith(".npy") else item
    return Path(labels_dir) / f"{base}.labels.npy"


def load_labels(labels_dirs: list[Path], items: list[str], n_tokens: int) -> tuple[list[str], list[np.ndarray]]:
    """Items that have a (T,) label file in every ``labels_dir`` -> (kept items, [ (N, T) int64 per dir ])."""
    kept, per_dir = [], [[] for _ in labels_dirs]
    for it in items:
        files = [_labels_file(d, it) for d in labels_dirs]
        if not all(f.is_file() for f in files):
            continue
        arrs = [np.load(f, allow_pickle=False) for f in files]
        for f, a in zip(files, arrs):
            if a.shape != (n_tokens,):
                raise ValueError(f"{f}: expected ({n_tokens},) token labels, got shape {a.shape}")
        kept.append(it)
        for lst, a in zip(per_dir, arrs):
            lst.append(a.astype(np.int64))
    if not kept:
        raise FileNotFoundError(f"no record under the data folder has labels in {', '.join(map(str, labels_dirs))} "
                                f"(expected <record>.labels.npy from `ecgcore preprocess hubert-labels`)")
    return kept, [np.stack(lst) for lst in per_dir]


def _splits(data_dir: Path, items: list[str]) -> np.ndarray:
    """train/val/test per record: PTB-XL folds, else ``DATA_DIR/labels.csv``'s split column, else a stable hash.
    Test records are never used for pretraining or for fitting k-means."""
    folds = I.ptbxl_folds(data_dir)
    if folds is not None and all(i in folds for i in items):
        return I.split_of(items, folds=[folds[i] for i in items])
    table = Path(data_dir) / "labels.csv"
    if table.is_file():
        names, _, splits, _ = I.labels_table(table)
        if splits is not None:
            known = dict(zip(names, splits))
            if all(i in known for i in items):
                return np.array([known[i] for i in items])
    return I.split_of(items)


def _loss(logits: list[torch.Tensor], targets: list[torch.Tensor], mask: torch.Tensor, alpha: float):
    masked = unmasked = 0.0
    correct = total = 0
    for z, y in zip(logits, targets):
        m = mask
        masked = masked + F.cross_entropy(z[m], y[m])
        if alpha < 1.0:
            unmasked = unmasked + F.cross_entropy(z[~m], y[~m])
        else:
            with torch.no_grad():
                unmasked = unmasked + F.cross_entropy(z[~m], y[~m])
        correct += int((z[m].argmax(-1) == y[m]).sum())
        total += int(m.sum())
    loss = alpha * masked + (1 - alpha) * unmasked if alpha < 1.0 else masked
    return loss, float(masked.detach()), float(unmasked.detach()), correct / max(1, total)


@torch.no_grad()
def _validate(model, X, Y, batch_size: int) -> tuple[float, float]:
    """Seed protocol: eval mode, no masking, CE over all tokens and token accuracy, averaged over members."""
    model.eval()
    tot_loss, tot_acc, n = 0.0, 0.0, 0
    for s in range(0, len(X), batch_size):
        x = torch.from_numpy(X[s:s + batch_size])
        logits = model(x)
        for z, y in zip(logits, Y):
            yt = torch.from_numpy(y[s:s + batch_size])
            tot_loss += float(F.cross_entropy(z.reshape(-1, z.shape[-1]), yt.reshape(-1), reduction="sum"))
            tot_acc += float((z.argmax(-1) == yt).sum())
        n += x.shape[0] * logits[0].shape[1]
    model.train()
    m = len(Y)
    return tot_loss / (n * m), tot_acc / (n * m)


def pretrain(data_dir, run_dir, config: HubertTrainConfig | None = None, *, resume: bool = True,
             progress: bool = True, log=print) -> dict:
    """Pretrain (or continue to iteration 2 with ``config.init``) a HuBERT-ECG encoder on k-means pseudo-labels.

    Parameters
    ----------
    data_dir : raw records (WFDB/npy) the ``hubert-features`` dumps were made from.
    run_dir : the shared run folder; an interrupted run resumes from ``checkpoint/last.pt`` (``resume=False``:
        start over).
    config : :class:`HubertTrainConfig` with ``stage="pretrain"``: ``labels_dirs`` (one ``hubert-labels`` folder per
        k-means model), ``vocab_sizes`` (k of each, default 1 + the largest label), ``init`` (checkpoint of the
        previous iteration: its encoder is kept, the label heads are new), ``size`` / ``model`` for a new encoder,
        ``max_steps``, ``batch_size``, ``lr``, ``weight_decay``, ``warmup``, ``alpha``, ``val_every``, ``patience``,
        ``time_limit_s``, ``seed``, ``threads``, ``limit``.

    Returns
    -------
    summary dict (also in ``run_dir/run.json``).
    """
    c = config or HubertTrainConfig(stage="pretrain")
    if c.stage != "pretrain":
        raise ValueError(f"pretrain needs a config with stage='pretrain', got {c.stage!r}")
    steps, batch_size, lr, weight_decay, warmup = c.max_steps, c.batch_size, c.lr, c.weight_decay, c.warmup
    alpha, val_interval, patience, seed, init, vocab_sizes = c.alpha, c.val_every, c.patience, c.seed, c.init, \
        c.vocab_sizes
    if c.threads:
        torch.set_num_threads(int(c.threads))
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    labels_dirs = [Path(d) for d in c.labels_dirs]
    if not labels_dirs:
        raise ValueError("pretraining needs labels_dirs: the hubert-labels folder(s) of the k-means targets")
    for d in labels_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"labels folder {d} not found")
    run = Run(run_dir, c, family="hubert", data_dir=data_dir, resume=resume, time_limit_s=c.time_limit_s,
              resumable=RESUMABLE)
    seed_everything(seed)

    ck = None
    if run.resuming:
        ck = torch.load(run.checkpoint_dir / "last.pt", map_location="cpu", weights_only=False)
        cfg = HubertConfig.from_dict(ck["model_config"])
        model = HubertForPretraining(cfg)
        model.load_state_dict(ck["model_state_dict"])
        iteration = ck.get("iteration", 1)
    elif init:
        model = load_pretrained(init)
        cfg = model.hubert_ecg.config
        iteration = int(torch.load(init, map_location="cpu", weights_only=False).get("iteration", 1)) + 1 \
            if Path(init).is_file() else 2
    else:
        cfg = HubertConfig.from_size(c.size, **(c.model or {}))
        model = None
        iteration = 1

    items = I.list_records(data_dir)
    items, Y = load_labels(labels_dirs, items, cfg.n_tokens())
    if c.limit:
        items, Y = items[:c.limit], [y[:c.limit] for y in Y]
    vs = list(vocab_sizes) if vocab_sizes else [int(y.max()) + 1 for y in Y]
    if len(vs) != len(Y):
        raise ValueError(f"{len(vs)} vocab sizes for {len(Y)} label folders")
    for v, y, d in zip(vs, Y, labels_dirs):
        if int(y.max()) >= v:
            raise ValueError(f"{d}: label {int(y.max())} >= vocab size {v}")
    if model is None:
        cfg.vocab_sizes = vs
        model = HubertForPretraining(cfg)
    elif init and not run.resuming:
        # Next iteration: new label embeddings for the new vocabularies, dropout back to 0.1 (SPEC 5.5).
        model.new_vocab(vs)
    elif list(cfg.vocab_sizes) != vs:
        raise ValueError(f"resuming: labels have vocab sizes {vs}, the checkpoint {cfg.vocab_sizes}")

    split = _splits(data_dir, items)
    X = I.load_inputs(data_dir, items, cache=run_dir, progress=progress)
    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"need train and validation records; got {len(tr)} / {len(va)}")
    Xtr, Ytr = X[tr], [y[tr] for y in Y]
    Xva, Yva = X[va], [y[va] for y in Y]

    opt, sched = make_optimizer(model.parameters(), lr=lr, weight_decay=weight_decay, total_steps=steps,
                                warmup=warmup)
    step, best_loss, best_acc, patience_count = 0, float("inf"), 0.0, 0
    if ck is not None:
        opt.load_state_dict(ck["optimizer_state_dict"])
        sched.load_state_dict(ck["lr_scheduler_state_dict"])
        step, best_loss, best_acc = ck["global_step"], ck["best_val_loss"], ck["best_val_accuracy"]
        patience_count = ck["patience_count"]
        torch.set_rng_state(ck["torch_rng"])
    rng = np.random.default_rng(seed)
    if ck is not None and ck.get("np_rng") is not None:  # the batch sampler goes on where it stopped
        rng.bit_generator.state = ck["np_rng"]
    n_params = count_parameters(model)
    log(f"pretraining iteration {iteration}: size {cfg.size}, {n_params:,} parameters, vocab {vs}, "
        f"{len(tr)} train / {len(va)} val records, steps {step}->{steps}, batch {batch_size}")

    def state():
        return {"global_step": step, "patience_count": patience_count, "model_config": cfg.to_dict(),
                "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "lr_scheduler_state_dict": sched.state_dict(), "best_val_loss": best_loss,
                "best_val_accuracy": best_acc, "pretraining_vocab_sizes": vs, "iteration": iteration,
                "elapsed_s": run.seconds, "torch_rng": torch.get_rng_state(), "np_rng": rng.bit_generator.state,
                "labels_dirs": [str(d) for d in labels_dirs]}

    def checkpoint():
        run.state.step, run.state.bad_epochs = step, patience_count
        run.save(lambda folder: torch.save(state(), folder / "last.pt"))

    model.train()
    stop = "steps"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=step, desc=f"pretrain it{iteration}", unit="step", leave=False)
    run_loss, run_m, run_u, run_acc, n_run = 0.0, 0.0, 0.0, 0.0, 0
    while step < steps:
        idx = rng.choice(len(Xtr), size=min(batch_size, len(Xtr)), replace=False)
        x = torch.from_numpy(Xtr[idx])
        mask = compute_mask(len(idx), cfg.n_tokens(), prob=cfg.mask_prob, length=cfg.mask_length,
                            min_masks=cfg.min_masks)
        logits = model(x, mask=mask)
        loss, lm, lu, acc = _loss(logits, [torch.from_numpy(y[idx]) for y in Ytr], mask, alpha)
        optimiser_step(loss, model, opt, sched, clip=10.0)
        step += 1
        # Logged per ensemble member (the optimised loss is their sum, as the seed), comparable with val_loss.
        nm = len(Ytr)
        run_loss, run_m, run_u = run_loss + float(loss.detach()) / nm, run_m + lm / nm, run_u + lu / nm
        run_acc, n_run = run_acc + acc, n_run + 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}")
        if step % val_interval == 0 or step == steps or run.out_of_time():
            vl, vacc = _validate(model, Xva, Yva, 2 * batch_size)
            improved = False
            if vl <= best_loss - 1e-3:
                best_loss, patience_count, improved = vl, 0, True
            elif vacc >= best_acc + 1e-3:
                improved = True  # the seed saves on an accuracy gain but does not reset patience
                patience_count += 1
            else:
                patience_count += 1
            best_acc = max(best_acc, vacc)
            run.state.step = step
            if improved:
                run.state.best_score, run.state.best_step = vl, step
            run.log(train_loss=run_loss / n_run, masked_ce=run_m / n_run, unmasked_ce=run_u / n_run,
                    masked_acc=run_acc / n_run, val_loss=vl, val_acc=vacc, lr=sched.get_last_lr()[0])
            log(f"step {step}: train {run_loss / n_run:.4f} (masked acc {run_acc / n_run:.3f}) "
                f"val CE {vl:.4f} acc {vacc:.3f}{' *' if improved else ''}")
            run_loss, run_m, run_u, run_acc, n_run = 0.0, 0.0, 0.0, 0.0, 0
            if improved:
                atomic_torch_save(state(), run_dir / "best.pt")
            stop = after_validation(run, patience, patience_count)
            if stop != "steps":
                break
            checkpoint()
    if bar is not None:
        bar.close()
    if not (run_dir / "best.pt").exists():
        atomic_torch_save(state(), run_dir / "best.pt")
    run.stop(RUN_STOP[stop])
    checkpoint()
    summary = {"iteration": iteration, "size": cfg.size, "parameters": n_params, "vocab_sizes": vs, "steps": step,
               "stopped_by": stop, "best_val_loss": best_loss, "best_val_accuracy": best_acc,
               "train_records": int(len(tr)), "val_records": int(len(va)), "batch_size": batch_size, "lr": lr,
               "elapsed_s": round(run.seconds, 1), "uniform_val_loss": float(np.mean(np.log(vs))),
               "unigram_val_loss": _unigram(Ytr, Yva, vs), "majority_val_accuracy": _majority(Ytr, Yva),
               "command": " ".join(sys.argv), "torch_threads": torch.get_num_threads()}
    merge_json(run_dir / "run.json", summary)
    return {**summary, **run.summary()}


def _unigram(Ytr, Yva, vs) -> float:
    """Validation CE of predicting the training cluster frequencies for every token (what a model that ignores the
    ECG achieves), averaged over ensemble members like ``val_loss``."""
    ces = []
    for ytr, yva, v in zip(Ytr, Yva, vs):
        p = (np.bincount(ytr.ravel(), minlength=v) + 1.0) / (ytr.size + v)
        ces.append(float(-np.log(p[yva.ravel()]).mean()))
    return float(np.mean(ces))


def _majority(Ytr, Yva) -> float:
    """Token accuracy of always predicting the most frequent training cluster (a floor for val_acc)."""
    accs = []
    for ytr, yva in zip(Ytr, Yva):
        top = np.bincount(ytr.ravel()).argmax()
        accs.append(float((yva == top).mean()))
    return float(np.mean(accs))


@torch.no_grad()
def dump_features(checkpoint, data_dir, out_dir, *, layer: int, batch_size: int = 32, threads: int | None = 1,
                  progress: bool = True) -> Path:
    """Iteration-2 targets: ``hidden_states[layer]`` of a pretrained encoder as ``OUT_DIR/<record>.npy`` (93, H).

    ``layer`` uses HF indexing (0 = input of the first transformer layer, i = output of layer i). The layout is
    the ``hubert-features`` recipe's, so ``ecgcore preprocess hubert-labels`` labels it after clustering.
    """
    if threads:
        torch.set_num_threads(int(threads))
    model = load_pretrained(checkpoint)
    cfg = model.hubert_ecg.config
    if not 0 <= layer <= cfg.num_layers:
        raise ValueError(f"layer must be in 0..{cfg.num_layers} for this {cfg.num_layers}-layer model, got {layer}")
    model.eval()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    items = I.list_records(data_dir)
    X = I.load_inputs(data_dir, items, cache=Path(checkpoint).parent, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["record,file,rows"]
    for s in range(0, len(items), batch_size):
        h = model.hubert_ecg(torch.from_numpy(X[s:s + batch_size]), output_layer=layer).numpy().astype(np.float32)
        for it, hh in zip(items[s:s + batch_size], h):
            rel = (it if it.endswith(".npy") else it + ".npy")
            f = out_dir / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f.name + ".tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, hh)
            tmp.replace(f)
            lines.append(f"{it},{rel},{hh.shape[0]}")
    tmp = out_dir / ".index.csv.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out_dir / "index.csv")
    return out_dir


def cluster_features(features_dir, model_path, *, k: int, data_dir=None, train_only: bool = True, seed: int = 42,
                     n_init: int = 3, max_iter: int = 100, workers: int | None = 1, batch_score: int = 50) -> dict:
    """Fit ``ecgcore.cluster.KMeans`` (L2-normalised rows, k-means++) on the training records' dumps.

    Records are found through ``FEATURES_DIR/index.csv``; with ``data_dir`` pointing at PTB-XL only folds 1-8 are
    used for fitting (so validation/test ECGs never shape the targets). Quality: inertia plus Davies-Bouldin and
    Calinski-Harabasz averaged over batches of ``batch_score`` records (the seed's protocol).
    """
    from ...cluster import KMeans, calinski_harabasz, davies_bouldin, l2_normalize

    features_dir = Path(features_dir)
    index = features_dir / "index.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found (expected a hubert-features or `dump` output folder)")
    rows = [ln.split(",") for ln in index.read_text().splitlines()[1:] if ln.strip()]
    items, files = [r[0] for r in rows], [r[1] for r in rows]
    if data_dir is not None and train_only:
        sp = _splits(Path(data_dir), items)
        keep = sp == "train"
        items, files = [i for i, k_ in zip(items, keep) if k_], [f for f, k_ in zip(files, keep) if k_]
    feats = [np.load(features_dir / f, allow_pickle=False).astype(np.float32) for f in files]
    Xf = np.concatenate(feats)
    t0 = time.perf_counter()
    km = KMeans(k, random_state=seed, normalize=True, n_init=n_init, max_iter=max_iter, workers=workers).fit(Xf)
    fit_s = time.perf_counter() - t0
    db, ch = [], []
    for s in range(0, len(feats), batch_score):
        xb = np.concatenate(feats[s:s + batch_score])
        lb = km.predict(xb)
        if len(np.unique(lb)) > 1:
            xn = l2_normalize(xb)
            db.append(davies_bouldin(xn, lb))
            ch.append(calinski_harabasz(xn, lb))
    km.save(model_path, features_kind=features_dir.name)
    return {"k": k, "records": len(files), "rows": int(Xf.shape[0]), "dims": int(Xf.shape[1]),
            "inertia": float(km.inertia_), "davies_bouldin": float(np.mean(db)) if db else None,
            "calinski_harabasz": float(np.mean(ch)) if ch else None, "fit_s": round(fit_s, 2),
            "used_clusters": int(len(np.unique(km.labels_))), "model": str(model_path)}
