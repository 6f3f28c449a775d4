"""Click commands picked up by ``ecgcore train|evaluate|export denoiser`` (torch is imported inside them)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command("denoiser")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_dir", type=_DIR)
@click.option("--epochs", type=int, default=None, help="Epochs over the train pairs (seed: 50).")
@click.option("--batch-size", type=int, default=None, help="Pairs per optimiser step (seed: 64).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps in total.")
@click.option("--time-limit", type=float, default=None, help="Stop this session after N seconds (resumable).")
@click.option("--val-every", type=int, default=None, help="Steps between validations (default: one per epoch).")
@click.option("--val-pairs", type=int, default=None, help="Validation pairs scored each time (default: all).")
@click.option("--lr", type=float, default=None, help="AdamW learning rate (seed: 1e-3).")
@click.option("--seed", type=int, default=None, help="Random seed (seed: 42).")
@click.option("--records", default=None, help="Comma-separated train records only (quick runs).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any DenoiserConfig field, e.g. --set mixing=online --set patience=6 --set p_clean=0.1 "
                   "(online mixing: fresh NSTDB training noise every step, clean inputs, blends, SNR -6..24 dB); "
                   "--set extra_clean=DIR adds the clean windows of `ecgcore preprocess denoise-ptbxl` (other "
                   "people) to training; --set init_from=denoiser starts from an exported model's weights "
                   "(BatchNorm kept frozen); --set context=attention adds the global-context block (required when "
                   "the starting model has one, as the bundled denoiser since version 3 does).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(dataset_dir, run_dir, epochs, batch_size, device, max_steps, time_limit, val_every, val_pairs, lr, seed,
          records, threads, overrides, quiet):
    """Train the Attention U-Net on DATASET_DIR (`ecgcore preprocess denoise-pairs`) into RUN_DIR.

    Uses the DS1 (train) records; 10 % of each record's clean windows (with all their noise/SNR variants)
    are held out for validation. Hybrid loss 0.5 L1 + 0.5 MSE + 0.5 gradient-L1, AdamW,
    ReduceLROnPlateau, grad-norm clip 1.0, sign-flip/scale augmentation. Writes the shared run folder
    (config.json, checkpoint/ every 5 min, history.csv, learning_curve.png, run.json) plus best.pt and
    metrics.json; re-running the same command on RUN_DIR resumes.
    """
    from ..models.denoiser.config import DenoiserConfig
    from ..models.denoiser._train import train as run_train

    from ._options import parse_set

    try:
        cfg = DenoiserConfig.from_dict(parse_set(overrides))
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    for name, val in (("epochs", epochs), ("batch_size", batch_size), ("max_steps", max_steps),
                      ("time_limit_s", time_limit), ("val_every", val_every), ("val_pairs", val_pairs),
                      ("lr", lr), ("seed", seed)):
        if val is not None:
            if name != "lr" and name != "time_limit_s" and val < 0:
                raise click.BadParameter(f"must be >= 0, got {val}", param_hint=f"--{name.replace('_', '-')}")
            setattr(cfg, name, val)
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise click.BadParameter("--epochs and --batch-size must be positive")
    recs = [r.strip() for r in records.split(",") if r.strip()] if records else None
    try:
        s = run_train(dataset_dir, run_dir, cfg, device=device, records=recs, progress=not quiet, threads=threads,
                      command=" ".join(["ecgcore", *sys.argv[1:]]))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{s['steps']} steps ({s['epochs_done']:.2f} epochs, {s['stopped']}), best val loss "
               f"{s['best_val_loss']:.4f} at step {s['best_step']}; run folder {run_dir}")


@click.command("denoiser")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--mitdb", "mitdb_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="MIT-BIH folder: R-peak F1 against its .atr beat annotations (default: against the peaks "
                   "detected on the clean window).")
@click.option("--qtdb", "qtdb_dir", type=click.Path(path_type=Path), default=None,
              help="QT Database folder for the DeepFilter protocol (default: next to --mitdb; reported as not run "
                   "when absent).")
@click.option("--records", default=None, help="Comma-separated test records only.")
@click.option("--max-windows", type=click.IntRange(min=1), default=None, help="First N windows per record only.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--threads", type=int, default=None, help="torch (or, with --onnx, onnxruntime) CPU threads.")
@click.option("--onnx", "onnx_model", default=None, metavar="MODEL",
              help="Score an exported denoiser (bundled name such as 'denoiser', or a model folder) through "
                   "onnxruntime as `ecgcore infer` runs it (its card's input pre-filter and filter guard included) "
                   "instead of RUN_DIR's checkpoint; RUN_DIR (created if missing) only receives the results.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(run_dir, dataset_dir, mitdb_dir, qtdb_dir, records, max_windows, device, batch_size, threads,
             onnx_model, quiet):
    """Score RUN_DIR's best checkpoint on every DS2 test pair of DATASET_DIR, with baselines.

    Per input SNR and noise type: SNR improvement (dB), RMSE, PRD, cosine similarity and R-peak F1 of the
    noisy input, the Attention U-Net, a 0.5-40 Hz Butterworth and a wavelet-threshold filter. Writes
    RUN_DIR/metrics.json ("evaluation"), RUN_DIR/eval/table.csv and example PNG overlays; resumable.

    \b
    Example (the bundled model, as users get it):
      ecgcore evaluate denoiser runs/dn-eval PAIRS --onnx denoiser --mitdb data/mitdb
    """
    from ..models.denoiser._evaluate import evaluate as run_eval
    from ..models.denoiser._evaluate import format_table

    recs = [r.strip() for r in records.split(",") if r.strip()] if records else None
    if qtdb_dir is None:
        # The reference databases sit side by side (../shared/data/{mitdb,nstdb,qtdb,...}).
        qtdb_dir = (mitdb_dir.parent if mitdb_dir is not None else dataset_dir.parent) / "qtdb"
    try:
        ev = run_eval(run_dir, dataset_dir, mitdb_dir=mitdb_dir, qtdb_dir=qtdb_dir, records=recs,
                      max_windows=max_windows, device=device, batch_size=batch_size, progress=not quiet,
                      threads=threads, onnx_model=onnx_model, command=" ".join(["ecgcore", *sys.argv[1:]]))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(ev["rows"]))
    s = ev["summary"]
    click.echo(f"\n{ev['pairs']} pairs; SNR improvement at 0 dB (mean over noise types): "
               f"{s['snr_improvement_at_0db_mean_over_noise']:.2f} dB; beats both baselines everywhere: "
               f"{s['beats_baselines_everywhere']}; DeepFilter protocol: {ev['deepfilter_protocol']['status']}")


@click.command("denoiser")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=_DIR, default=None, help="Output folder (default RUN_DIR).")
@click.option("--dataset", "dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="denoise-pairs folder for real parity inputs (default: the training one).")
@click.option("--name", default="denoiser", show_default=True, help="Model name in the card.")
def export(run_dir, out_dir, dataset_dir, name):
    """Export RUN_DIR/best.pt to model.onnx (dynamic batch) + model.json; check onnxruntime parity (1e-4)."""
    from ..models.denoiser._export import export as run_export

    try:
        r = run_export(run_dir, out_dir, data_dir=dataset_dir, name=name)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except AssertionError as exc:
        raise click.ClickException(f"ONNX parity check failed: {exc}") from None
    click.echo(f"{r['onnx']} ({r['size_bytes'] / 1e6:.1f} MB), {r['card']}; onnxruntime vs PyTorch max |diff| "
               f"{r['parity_max_abs_diff']:.2e} on {r['parity_pairs']} real windows")
