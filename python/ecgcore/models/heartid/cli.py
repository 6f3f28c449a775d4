"""``ecgcore train|evaluate|export heartid``. MLX is imported only inside the commands that need it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def _blas_hint():
    from ._train import openblas_path

    lib = openblas_path()
    if lib and lib not in os.environ.get("LD_PRELOAD", ""):
        click.echo(f"hint: mlx[cpu]'s bundled BLAS is slow; LD_PRELOAD={lib} makes training several times "
                   "faster", err=True)


@click.command("train")
@click.argument("data_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--run-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: the shared config.json, checkpoint/, history.csv, learning_curve.png, run.json, "
                   "plus heartid_model.npz, best_model.npz, split.json.")
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
    from . import train as run_train
    from .config import HeartIDConfig

    _blas_hint()
    cfg = HeartIDConfig(loss=loss, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                        time_limit_s=None if max_minutes is None else 60.0 * max_minutes, seed=seed, score=score, key_scale=key_scale,
                        standardize_spectrum=standardize_spectrum,
                        test_fraction=test_fraction,
                        val_fraction=val_fraction)
    try:
        state = run_train(list(data_dirs), run_dir, cfg, resume=not no_resume, progress=not quiet,
                          log=lambda s: (click.echo(s), sys.stdout.flush()))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"done: {state['epoch']} epochs, {state['step']} steps, best validation EER "
               f"{state['best_val_eer']} at epoch {state['best_epoch']}; weights in {run_dir}")


@click.command("evaluate")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--weights", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best_model.npz (lowest validation EER) or heartid_model.npz (last epoch).")
@click.option("--ecgid-raw", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Raw ECG-ID folder, for rank-1 split by recording day (default: $ECGCORE_DATA/ecgiddb when "
                   "present).")
def evaluate(run_dirs, weights, ecgid_raw):
    """Evaluate HeartID runs on their held-out test subjects.

    \b
    Verification: EER, FAR at FRR = 1 %, FRR at FAR = 0.1 %, FAR/FRR at the validation-EER threshold, DET
    curve (det.png). Identification: rank-1 (and close / far apart in time on ECG-ID). Cancelability: the
    rate at which the same person under a second key is accepted, and the Gomez-Barrero unlinkability D_sys
    (0 = unlinkable). Probes are 7 windows (one 20 s record) and single 5 s windows. Writes metrics.json and
    scores.npz into each run folder and prints one table.
    """
    from . import evaluate as run_eval
    from ._evaluate import format_table

    _blas_hint()
    outs = []
    for rd in run_dirs:
        try:
            outs.append(run_eval(rd, weights=weights, ecgid_raw=ecgid_raw, progress=lambda s: click.echo(s, err=True)))
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
    from . import export as run_export

    try:
        r = run_export(run_dir, out_dir, weights=weights, also_runs=also_runs)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    parity = r["parity"]
    click.echo(f"wrote {r['onnx']} and {r['card']}; onnxruntime vs MLX max |diff| "
               f"{max(parity['shared_key'], parity['per_row_keys']):.2e} on {parity['n_windows']} windows; "
               f"threshold {r['threshold']:.4f}")
