"""``ecgcore train|evaluate|export heartid``. MLX is imported only inside the commands that need it."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click


def _blas_hint():
    from .train import openblas_path

    lib = openblas_path()
    if lib and lib not in os.environ.get("LD_PRELOAD", ""):
        click.echo(f"hint: mlx[cpu]'s bundled BLAS is slow; LD_PRELOAD={lib} makes training several times "
                   "faster", err=True)


@click.command("train")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: heartid_model.npz, optimizer.safetensors, state.json, split.json.")
@click.option("--loss", type=click.Choice(["securetl", "heartid"]), default="securetl", show_default=True,
              help="securetl: original Secure Triplet Loss (same person under another key is a negative, "
                   "cancelable); heartid: the seed's 4-term loss (pulls other-key embeddings together).")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--steps-per-epoch", type=int, default=100, show_default=True, help="Triplet batches per epoch.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW learning rate (weight decay 0.01).")
@click.option("--score", type=click.Choice(["euclidean", "cosine"]), default="euclidean", show_default=True,
              help="Template comparison used for validation and the exported card.")
@click.option("--key-scale", type=float, default=1.0, show_default=True,
              help="Gain on the unit-norm key at the dense layer's input (1 = the seed). SecureTL needs ~100 to "
                   "become cancelable within a few hundred steps: the dB features' identity spread dwarfs a "
                   "unit key's offset.")
@click.option("--standardize-spectrum", is_flag=True,
              help="Standardise the 501 dB STFT features with per-bin training statistics (not in the seed; "
                   "folded into the dense layer on export).")
@click.option("--test-fraction", type=float, default=0.3, show_default=True,
              help="Share of each database's subjects held out for testing.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of each database's subjects for validation (model selection, accept threshold).")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock cap over the whole run (resumes count).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over even if RUN_DIR holds a checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data_dirs, run_dir, loss, epochs, steps_per_epoch, batch_size, lr, score, key_scale, standardize_spectrum,
          test_fraction, val_fraction, max_minutes, seed, no_resume, quiet):
    """Train HeartID on `ecgcore preprocess heartid` folders (e.g. ECG-ID and MIT-BIH).

    Subjects are split per database into disjoint train / validation / test sets (60/10/30 %); test subjects
    are never seen in training. Each batch draws 32 triplets (anchor and positive from one subject, negative
    from another) and two fresh keys, as the seed did. Re-running the same command resumes the run.
    """
    from .config import HeartIDConfig
    from .train import train as run_train

    _blas_hint()
    cfg = HeartIDConfig(loss=loss, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                        max_minutes=max_minutes, seed=seed, score=score, key_scale=key_scale,
                        standardize_spectrum=standardize_spectrum,
                        test_fraction=test_fraction,
                        val_fraction=val_fraction)
    try:
        state = run_train(cfg, data_dirs, run_dir, resume=not no_resume, progress=not quiet,
                          log=lambda s: (click.echo(s), sys.stdout.flush()))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"done: {state['epoch']} epochs, {state['step']} steps, best validation EER "
               f"{state['best_val_eer']} at epoch {state['best_epoch']}; weights in {run_dir}")


def _run_files(run_dir: Path, weights: str):
    from .config import HeartIDConfig

    run_dir = Path(run_dir)
    for f in ("config.json", "split.json"):
        if not (run_dir / f).is_file():
            raise click.ClickException(f"{run_dir / f} not found: is {run_dir} a `ecgcore train heartid` run?")
    w = run_dir / ("best_model.npz" if weights == "best" else "heartid_model.npz")
    if weights == "best" and not w.is_file():
        w = run_dir / "heartid_model.npz"
    if not w.is_file():
        raise click.ClickException(f"{w} not found")
    cfg = HeartIDConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    split = json.loads((run_dir / "split.json").read_text())
    return cfg, split, w


def _default_ecgid_raw() -> Path | None:
    root = os.environ.get("ECGCORE_DATA")
    for cand in ([Path(root) / "ecgiddb"] if root else []) + [Path("../shared/data/ecgiddb")]:
        if cand.is_dir():
            return cand
    return None


def evaluate_run(run_dir: Path, weights: str = "best", ecgid_raw: Path | None = None, progress=None) -> dict:
    """Validation threshold + test metrics of one run; writes metrics.json, det.png, scores.npz there."""
    import numpy as np

    from .evaluation import ecgid_record_dates, evaluate_subjects
    from .metrics import plot_det
    from .model import HeartIDNet
    from .train import MLXEmbedder, load_subjects

    cfg, split, w = _run_files(run_dir, weights)
    if len(split["val"]) < 2 or len(split["test"]) < 2:
        raise ValueError(f"{run_dir}: evaluation needs at least 2 validation and 2 test subjects "
                         f"(got {len(split['val'])} and {len(split['test'])}); train with larger fractions")
    subjects = {s.id: s for s in load_subjects(split["data_dirs"])}
    model = HeartIDNet(cfg)
    model.load_weights(str(w), strict=True)
    emb = MLXEmbedder(model, cache=True)
    dates = ecgid_record_dates(ecgid_raw) if ecgid_raw else None
    out = {"run": str(run_dir), "weights": w.name, "loss": cfg.loss, "score": cfg.score, "results": {}}
    curves, saved = {}, {}
    for pw in (cfg.probe_windows, 1):
        val = evaluate_subjects([subjects[i] for i in split["val"]], emb, cfg.key_size, pw, seed=cfg.seed + 1,
                                score=cfg.score)["metrics"]
        thr = val["eer_threshold"]
        res = {"validation": val}
        dbs = list(dict.fromkeys(i.split(":", 1)[0] for i in split["test"]))
        for db in dbs + ["all"]:
            ids = [i for i in split["test"] if db == "all" or i.startswith(db + ":")]
            r = evaluate_subjects([subjects[i] for i in ids], emb, cfg.key_size, pw, seed=cfg.seed + 2,
                                  threshold=thr, record_dates=dates, score=cfg.score)
            res[db] = r["metrics"]
            # pooled "all" mixes in easy cross-database impostors, so the plot shows each database
            if db != "all":
                curves[f"{db}, {pw}-window probes"] = (r["scores"]["genuine"], r["scores"]["impostor"])
            saved.update({f"{db}_w{pw}_{k}": v for k, v in r["scores"].items()})
            if progress:
                progress(f"{cfg.loss} probes of {pw} window(s) {db}: EER {100 * r['metrics']['eer']:.2f} %")
        out["results"][f"probe_windows_{pw}"] = res
    plot_det(curves, Path(run_dir) / "det.png", title=f"HeartID DET, test subjects ({cfg.loss} loss)")
    np.savez(Path(run_dir) / "scores.npz", **saved)
    from .export import write_json

    write_json(Path(run_dir) / "metrics.json", out)
    return out


def format_table(results: list[dict]) -> str:
    head = (f"{'loss':<9} {'probe':>5} {'test set':<8} {'EER%':>6} {'FAR@FRR1%':>9} {'FRR@FAR.1%':>10} "
            f"{'rank-1%':>7} {'close%':>6} {'far%':>6} {'FAR@thr':>7} {'FRR@thr':>7} {'mated-k2%':>9} {'Dsys':>5}")
    lines = [head]
    f = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for out in results:
        for pw, res in out["results"].items():
            for db, m in res.items():
                if db == "validation":
                    continue
                lines.append(f"{out['loss']:<9} {m['probe_windows']:>5} {db:<8} {100 * m['eer']:>6.2f} "
                             f"{f(m['far_at_frr_1pct']):>9} {f(m['frr_at_far_0.1pct']):>10} {f(m['rank1']):>7} "
                             f"{f(m.get('rank1_close')):>6} {f(m.get('rank1_far')):>6} "
                             f"{f(m['far_at_threshold']):>7} {f(m['frr_at_threshold']):>7} "
                             f"{f(m['mated_different_keys_accept']):>9} {m['d_sys']:>5.2f}")
    return "\n".join(lines)


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best_model.npz (lowest validation EER) or heartid_model.npz (last epoch).")
@click.option("--ecgid-raw", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Raw ECG-ID folder, for rank-1 split by recording day (default: $ECGCORE_DATA/ecgiddb or "
                   "../shared/data/ecgiddb when present).")
def evaluate(run_dirs, weights, ecgid_raw):
    """Evaluate HeartID runs on their held-out test subjects.

    \b
    Verification: EER, FAR at FRR = 1 %, FRR at FAR = 0.1 %, FAR/FRR at the validation-EER threshold, DET
    curve (det.png). Identification: rank-1 (and close / far apart in time on ECG-ID). Cancelability: the
    rate at which the same person under a second key is accepted, and the Gomez-Barrero unlinkability D_sys
    (0 = unlinkable). Probes are 7 windows (one 20 s record) and single 5 s windows. Writes metrics.json and
    scores.npz into each run folder and prints one table.
    """
    _blas_hint()
    raw = ecgid_raw or _default_ecgid_raw()
    outs = []
    for rd in run_dirs:
        try:
            outs.append(evaluate_run(rd, weights, raw, progress=lambda s: click.echo(s, err=True)))
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(format_table(outs))


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for model.onnx + model.json (e.g. python/ecgcore/data/models/heartid).")
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--also", "also_runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Other runs (e.g. the other loss) whose metrics.json go into the card for comparison.")
def export(run_dir, out_dir, weights, also_runs):
    """Export a HeartID run to ONNX (rebuilt with onnx.helper) + model card, checked in onnxruntime.

    The accept threshold in the card is the validation subjects' EER point (from `ecgcore evaluate
    heartid`'s metrics.json, computed here if missing). Parity: onnxruntime vs MLX embeddings on real test
    windows, |diff| <= 1e-4.
    """
    import numpy as np

    from .export import check_parity, export_onnx, make_card, write_json
    from .preprocess import recipe_options
    from .train import load_subjects
    from ...export import write_card

    cfg, split, w = _run_files(run_dir, weights)
    mpath = Path(run_dir) / "metrics.json"
    if not mpath.is_file() or json.loads(mpath.read_text()).get("weights") != w.name:
        evaluate_run(run_dir, weights, _default_ecgid_raw())
    metrics = json.loads(mpath.read_text())
    res = metrics["results"][f"probe_windows_{cfg.probe_windows}"]
    thr = res["validation"]["eer_threshold"]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(w, out_dir / "model.onnx", cfg)
    subjects = {s.id: s for s in load_subjects(split["data_dirs"])}
    win = np.concatenate([subjects[i].windows[:4] for i in split["test"]])[:64]
    parity = check_parity(w, onnx_path, np.ascontiguousarray(win, np.float32), cfg)
    state = json.loads((Path(run_dir) / "state.json").read_text())
    card_metrics = {"test": {k: v for k, v in metrics["results"].items()}, "onnx_parity": parity}
    for other in also_runs:
        om = Path(other) / "metrics.json"
        if om.is_file():
            o = json.loads(om.read_text())
            oc = json.loads((Path(other) / "config.json").read_text())
            card_metrics[f"comparison_{Path(other).name}"] = {
                "loss": o["loss"], "key_scale": oc.get("key_scale", 1.0),
                "standardize_spectrum": oc.get("standardize_spectrum", False),
                "steps": json.loads((Path(other) / "state.json").read_text())["step"], "results": o["results"]}
    opts = recipe_options()
    training = {"data": split["data_dirs"], "protocol": "subject-disjoint split per database (train/val/test "
                "= 60/10/30 %), enrolment on the first half of each subject's windows, probes later",
                "n_subjects": {k: len(split[k]) for k in ("train", "val", "test")},
                "test_subjects": split["test"], "epochs": state["epoch"], "steps": state["step"],
                "train_seconds": round(state["train_seconds"], 1), "best_epoch": state.get("best_epoch"),
                "weights": w.name, "loss": cfg.loss, "optimizer": "mlx AdamW (lr 1e-3, wd 0.01)"}
    card = make_card(cfg, thr, cfg.score, card_metrics, training, opts)
    write_card(card, out_dir / "model.json")
    write_json(Path(run_dir) / "parity.json", parity)
    click.echo(f"wrote {onnx_path} and {out_dir / 'model.json'}; onnxruntime vs MLX max |diff| "
               f"{max(parity['shared_key'], parity['per_row_keys']):.2e} on {parity['n_windows']} windows; "
               f"threshold {thr:.4f} ({cfg.score})")
