"""``ecgcore train|evaluate|export attention``: click commands (loaded lazily by ``ecgcore.commands.model_verbs``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

_PROTOCOL_HELP = ("inter-patient (default): train/validate on DS1 records, test on DS2 — the figure to quote. "
                  "leaky: the seed's random 10 s window split (0.2 test, 0.2 val), patients on both sides.")


def _fail(exc: Exception):
    raise click.ClickException(str(exc)) from None


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("dataset_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--protocol", type=click.Choice(["inter-patient", "leaky"]), default="inter-patient", show_default=True,
              help=_PROTOCOL_HELP)
@click.option("--epochs", type=int, default=100, show_default=True, help="Maximum epochs (early stopping, patience 10).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate (weight decay 1e-5).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--val-records", type=int, default=4, show_default=True,
              help="inter-patient: whole DS1 records held out for validation (early stopping); 0 = refit on every "
                   "DS1 record for exactly --epochs epochs, the last weights kept.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many optimiser steps (resumable).")
@click.option("--wall-cap", type=float, default=None, help="Stop training after this many minutes of this call "
              "(validates, checkpoints; the same command resumes).")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any AttentionConfig field, e.g. --set augment=true --set class_weight=balanced --set patience=4.")
@click.option("--no-resume", is_flag=True, help="Start over even if RUN_DIR holds a checkpoint.")
@click.option("--no-evaluate", is_flag=True, help="Skip the test-split evaluation after training.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(dataset_dir, run_dir, protocol, epochs, batch_size, lr, device, seed, val_records, max_steps, wall_cap,
          threads, overrides, no_resume, no_evaluate, quiet):
    """Train the CNN + 8-head-attention Normal/Abnormal classifier (SPEC §3) on a segments dataset.

    DATASET_DIR comes from `ecgcore preprocess segments MITDB_DIR DATASET_DIR`. RUN_DIR receives
    config.json, checkpoint/ (resume state, every 5 min and at the end), history.csv, learning_curve.png,
    run.json, best.pt (lowest validation loss; the last weights for a refit), metrics.json and, after training, the test-split evaluation
    (see `ecgcore evaluate attention`). Re-running the same command resumes from the checkpoint.

    \b
    The bundled segments-abnormal: a validated run chose the epoch count (early stopping on 4 held-out DS1 records,
    best epoch 3), then a refit on every DS1 record for those epochs:
      ecgcore train attention DATA RUN --epochs 30 --threads 2 --set augment=true --set class_weight=balanced \\
        --set patience=4 --set plateau_patience=2
      ecgcore train attention DATA RUN2 --epochs 3 --val-records 0 --threads 2 --set augment=true \\
        --set class_weight=balanced
    """
    from ..models.attention import train as run
    from ..models.attention.config import AttentionConfig

    from ._options import parse_set

    try:
        extra = parse_set(overrides)
        cfg = AttentionConfig.from_dict({
            **dict(protocol=protocol, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                   val_records=val_records, max_steps=max_steps,
                   time_limit_s=None if wall_cap is None else 60.0 * wall_cap, threads=threads), **extra})
        m = run(dataset_dir, run_dir, cfg, device=device, resume=not no_resume, progress=not quiet,
                evaluate_after=not no_evaluate)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        _fail(exc)
    t = m["training"]
    best = ("no validation (refit: the last weights kept)" if t["best_val_loss"] is None
            else f"best val loss {t['best_val_loss']:.4f}")
    click.echo(f"{run_dir}: {t['steps']} steps, {t['epochs_completed']} full epochs, stop: {t['stop_reason']}, {best}")
    if "test" in m:
        click.echo(json.dumps({k: m["test"][k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}))


@click.command("evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("dataset_dir", type=click.Path(path_type=Path, file_okay=False), required=False)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--records-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="The annotated MIT-BIH records: also run the attention analysis (attention within ±100 ms of "
                   "abnormal vs normal beats on windows holding both; attention_analysis.json and plots).")
@click.option("--quiet", is_flag=True)
def evaluate(run_dir, dataset_dir, split, device, records_dir, quiet):
    """Score a run's best weights on a split of its protocol.

    Writes into RUN_DIR: metrics.json (accuracy, precision, recall, F1 with Abnormal positive, ROC-AUC,
    confusion matrix), classification_report_SPLIT.txt, confusion_matrix_SPLIT.png, roc_SPLIT.png and
    attention_SPLIT_K.png (query-0 row with top-5 % shading, as the seed, plus the mean attention overlay).
    DATASET_DIR defaults to the one the run was trained on.
    """
    from ..models.attention import evaluate as run

    try:
        m = run(run_dir, dataset_dir, split=split, device=device, progress=not quiet)
        if records_dir is not None:
            from ..models.attention.analysis import analyse_run

            a = analyse_run(run_dir, records_dir, data_dir=dataset_dir, split=split, progress=not quiet)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps({k: m[split][k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}))
    if records_dir is not None:
        click.echo(f"attention analysis ({a['windows']} windows with both beat classes): " + json.dumps(
            {k: a.get(k) for k in ("near_abnormal_mean", "near_normal_mean", "ratio_median", "share_ratio_above_1",
                                   "sign_test_p")}))


@click.command("export", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for model.onnx + model.json (default: RUN_DIR).")
@click.option("--dataset-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where to take the real windows for the parity check (default: the run's dataset).")
@click.option("--check-windows", type=int, default=8, show_default=True,
              help="Real test windows run through PyTorch and onnxruntime (atol 1e-4).")
@click.option("--note", default=None, help="Free text stored in the card as training.note.")
@click.option("--standard-ops", is_flag=True,
              help="Attention in standard ONNX ops (for runtimes other than onnxruntime; ~1.5x slower there) instead "
                   "of onnxruntime's fused com.microsoft.MultiHeadAttention.")
def export(run_dir, out, dataset_dir, check_windows, note, standard_ops):
    """Export a run's best weights to model.onnx (input `ecg` (batch, 1, 3600); outputs `logits` and
    `probabilities` (softmax), dynamic batch), attention.onnx (the (batch, 900, 900) attention maps, on request)
    and a model.json card, and check onnxruntime against PyTorch on real windows."""
    from ..models.attention import export as run

    try:
        r = run(run_dir, out, data_dir=dataset_dir, check_windows=check_windows, note=note,
                fused_attention=not standard_ops)
        onnx_path, worst = r["onnx"], r["parity_max_abs_diff"]
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    size = os.path.getsize(onnx_path) / 2 ** 20
    click.echo(f"{onnx_path} ({size:.1f} MiB), card {onnx_path.with_name('model.json')}; "
               f"onnxruntime vs PyTorch max |diff| {worst:.2e} on {check_windows} real windows")
