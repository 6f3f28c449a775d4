"""Click commands picked up by ``ecgcore train|evaluate|export hubert``.

\b
  ecgcore preprocess hubert-features RAW FEATS                      # iteration-1 shard features
  ecgcore train hubert cluster FEATS KM.npz --k 100 --data RAW      # k-means on the training records
  ecgcore preprocess hubert-labels FEATS LABELS --set model=KM.npz  # pseudo-labels
  ecgcore train hubert pretrain RAW RUN --labels LABELS [--labels LABELS2 ...]
  ecgcore train hubert dump RUN/best.pt RAW LATENT --layer 2        # iteration 2: latent features, then
  ecgcore train hubert cluster LATENT KM2.npz --k 100 --data RAW    #   re-cluster, re-label, and
  ecgcore train hubert pretrain RAW RUN2 --labels LABELS2 --init RUN/best.pt
  ecgcore train hubert finetune RAW FT --init RUN2/best.pt          # PTB-XL superclasses (folds 1-8/9/10)
  ecgcore evaluate hubert FT RAW [--n-augs 5]
  ecgcore export hubert FT [--out DIR]
"""
from __future__ import annotations

import json
from pathlib import Path

import click

_RAW = click.Path(exists=True, file_okay=False, path_type=Path)


def _fail(exc):
    raise click.ClickException(str(exc)) from None


@click.group(name="hubert", help="HuBERT-ECG: k-means pseudo-labels, masked pretraining, fine-tuning (PyTorch).")
def train():
    pass


@train.command("pretrain")
@click.argument("data_dir", type=_RAW)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--labels", "labels", multiple=True, required=True, type=_RAW,
              help="hubert-labels output folder (repeat for an ensemble of k-means targets).")
@click.option("--size", type=click.Choice(["tiny", "small", "base", "large"]), default="tiny", show_default=True)
@click.option("--input-fs", type=click.Choice(["100", "500", "50"]), default="100", show_default=True,
              help="Conv encoder variant (model input rate).")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True, help="Peak AdamW learning rate (seed 5e-5).")
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--warmup", type=float, default=0.08, show_default=True, help="Fraction of steps of linear warm-up.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Weight of the masked CE; 1 - alpha weighs the unmasked CE.")
@click.option("--mask-prob", type=click.FloatRange(0, 1), default=0.33, show_default=True)
@click.option("--val-interval", type=click.IntRange(1), default=100, show_default=True)
@click.option("--patience", type=click.IntRange(0), default=10, show_default=True, help="0 = no early stopping.")
@click.option("--max-minutes", type=float, default=None, help="Wall-clock cap; the run stays resumable.")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue RUN_DIR's checkpoint when it has one (--no-resume: start over).")
@click.option("--init", type=click.Path(exists=True, path_type=Path), default=None,
              help="Previous iteration's checkpoint (or a Hugging Face HuBERT-ECG folder): next iteration.")
@click.option("--vocab-sizes", default=None, help="Comma-separated k per --labels (default: max label + 1).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads.")
@click.option("--quiet", is_flag=True)
def pretrain_cmd(data_dir, run_dir, labels, size, input_fs, steps, batch_size, lr, weight_decay, warmup, alpha,
                 mask_prob, val_interval, patience, max_minutes, resume, init, vocab_sizes, seed, threads, quiet):
    """Masked prediction of k-means labels: ~33 % of the 93 tokens masked, cosine logits / 0.1, one head per
    k-means model. DATA_DIR holds the raw records the labels were made from."""
    from ..models.hubert import pretrain
    from ..models.hubert.config import HubertTrainConfig

    try:
        vs = [int(v) for v in vocab_sizes.split(",")] if vocab_sizes else None
        cfg = HubertTrainConfig(stage="pretrain", labels_dirs=[str(x) for x in labels], size=size,
                                model={"input_fs": int(input_fs), "mask_prob": mask_prob}, max_steps=steps,
                                batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup, alpha=alpha,
                                val_every=val_interval, patience=patience,
                                time_limit_s=None if max_minutes is None else 60.0 * max_minutes,
                                init=str(init) if init else None, vocab_sizes=vs, seed=seed, threads=threads)
        s = pretrain(data_dir, run_dir, cfg, resume=resume, progress=not quiet, log=click.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps(s, indent=2))


@train.command("finetune")
@click.argument("data_dir", type=_RAW)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--init", type=click.Path(exists=True, path_type=Path), default=None,
              help="Pretraining checkpoint or HF folder; omitted = random init (from scratch).")
@click.option("--size", type=click.Choice(["tiny", "small", "base", "large"]), default="tiny", show_default=True,
              help="Size when training from scratch.")
@click.option("--task", type=click.Choice(["auto", "ptbxl-super", "csv", "csv-multiclass"]), default="auto",
              show_default=True, help="auto: --labels CSV if given, else PTB-XL superclasses.")
@click.option("--labels", "labels_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV record,<class...>[,split] (0/1).")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--head-hidden", type=int, default=256, show_default=True)
@click.option("--activation", type=click.Choice(["tanh", "relu", "gelu", "sigmoid"]), default="tanh", show_default=True)
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=float, default=1e-5, show_default=True, help="Peak learning rate (seed 1e-5).")
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--warmup", type=float, default=0.08, show_default=True)
@click.option("--use-loss-weights/--no-loss-weights", default=True, show_default=True,
              help="BCE pos_weight (N-count)/count, or CE weights n/count in class order.")
@click.option("--unfreeze-conv", is_flag=True, help="Also train the conv feature encoder (frozen by default).")
@click.option("--blocks", type=int, default=-1, show_default=True,
              help="Transformer layers to train, from the top (-1 = all).")
@click.option("--linear-probe", is_flag=True, help="Freeze the whole encoder; train the head only.")
@click.option("--freezing-steps", type=click.IntRange(0), default=0, show_default=True,
              help="Head-only steps before unfreezing.")
@click.option("--random-crop", is_flag=True, help="Train on random time-aligned 5 s crops of the 10 s records.")
@click.option("--dropout", type=float, default=None, help="Override the encoder dropout.")
@click.option("--val-interval", type=click.IntRange(1), default=50, show_default=True)
@click.option("--patience", type=click.IntRange(0), default=8, show_default=True,
              help="Validations without a macro-AUROC gain before stopping (0 = never).")
@click.option("--max-minutes", type=float, default=None)
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue RUN_DIR's checkpoint when it has one (--no-resume: start over).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--quiet", is_flag=True)
def finetune_cmd(data_dir, run_dir, init, size, task, labels_csv, head, head_hidden, activation, steps, batch_size, lr,
                 weight_decay, warmup, use_loss_weights, unfreeze_conv, blocks, linear_probe, freezing_steps,
                 random_crop, dropout, val_interval, patience, max_minutes, resume, seed, threads, quiet):
    """Mean-pooled classifier on a HuBERT-ECG encoder, weighted BCE, early stopping on validation macro-AUROC."""
    from ..models.hubert import finetune
    from ..models.hubert.config import HubertTrainConfig

    try:
        cfg = HubertTrainConfig(stage="finetune", init=str(init) if init else None, size=size, task=task,
                                labels_csv=str(labels_csv) if labels_csv else None, head=head,
                                head_hidden=head_hidden, activation=activation, max_steps=steps,
                                batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                                use_loss_weights=use_loss_weights, unfreeze_conv=unfreeze_conv, blocks=blocks,
                                linear_probe=linear_probe, freezing_steps=freezing_steps, random_crop=random_crop,
                                dropout=dropout, val_every=val_interval, patience=patience,
                                time_limit_s=None if max_minutes is None else 60.0 * max_minutes, seed=seed,
                                threads=threads)
        s = finetune(data_dir, run_dir, cfg, resume=resume, progress=not quiet, log=click.echo)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps(s, indent=2))


@train.command("dump")
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("data_dir", type=_RAW)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--layer", type=click.IntRange(0), required=True,
              help="hidden_states index (0 = before the first transformer layer, i = after layer i).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--quiet", is_flag=True)
def dump_cmd(checkpoint, data_dir, out_dir, layer, batch_size, threads, quiet):
    """Iteration 2+: write a pretrained encoder's layer features as OUT_DIR/<record>.npy (93, hidden)."""
    from ..models.hubert._pretrain import dump_features

    try:
        out = dump_features(checkpoint, data_dir, out_dir, layer=layer, batch_size=batch_size, threads=threads,
                            progress=not quiet)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(f"latent features of layer {layer} -> {out}")


@train.command("cluster")
@click.argument("features_dir", type=_RAW)
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--k", type=click.IntRange(2), default=100, show_default=True)
@click.option("--data", "data_dir", type=_RAW, default=None,
              help="Raw data folder: fit on its training split only (PTB-XL folds 1-8).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--n-init", type=click.IntRange(1), default=3, show_default=True)
@click.option("--max-iter", type=click.IntRange(1), default=100, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
def cluster_cmd(features_dir, model, k, data_dir, seed, n_init, max_iter, workers):
    """ecgcore k-means (L2-normalised rows) on hubert-features / dump outputs; prints inertia, DB and CH."""
    from ..models.hubert._pretrain import cluster_features

    try:
        r = cluster_features(features_dir, model, k=k, data_dir=data_dir, seed=seed, n_init=n_init,
                             max_iter=max_iter, workers=workers)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps(r, indent=2))


@train.command("mitdb-windows")
@click.argument("mitdb_dir", type=_RAW)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-record", type=click.IntRange(1), default=20, show_default=True)
@click.option("--records", default=None, help="Comma-separated records (default: DS1 + DS2, no paced records).")
def mitdb_windows_cmd(mitdb_dir, out_dir, per_record, records):
    """MIT-BIH second check: 10-s windows (.npy at 500 Hz) + labels.csv (AAMI S/V/F presence, non-sinus rhythm;
    DS1 train/val, DS2 test) for `finetune --labels OUT_DIR/labels.csv` and pretraining on OUT_DIR."""
    from ..models.hubert.mitdb import mitdb_windows

    try:
        p = mitdb_windows(mitdb_dir, out_dir, per_record=per_record, records=records.split(",") if records else None)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(f"windows and labels -> {p}")


@click.command(name="hubert")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data_dir", type=_RAW)
@click.option("--task", type=click.Choice(["ptbxl-super", "csv", "csv-multiclass"]), default=None,
              help="Default: the task the run was trained on.")
@click.option("--labels", "labels_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--bootstrap", "n_boot", type=click.IntRange(0), default=1000, show_default=True,
              help="Stratified bootstrap resamples for the 95 % CIs (0 = none).")
@click.option("--n-augs", type=click.IntRange(0), default=0, show_default=True,
              help="Test-time augmentation: random 5 s crops of the 10 s records (0 = first 5 s only).")
@click.option("--tta-aggregation", type=click.Choice(["mean", "max"]), default="mean", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--quiet", is_flag=True)
def evaluate(run_dir, data_dir, task, labels_csv, split, n_boot, n_augs, tta_aggregation, seed, threads, quiet):
    """Test protocol: per-label AUROC, AUPRC, F1, precision, recall, specificity, macro scores, bootstrap CIs ->
    RUN_DIR/metrics.json and performance.csv."""
    from ..models.hubert import evaluate as run_eval

    try:
        rep = run_eval(run_dir, data_dir, task=task, labels_csv=labels_csv, split=split, n_boot=n_boot,
                       n_augs=n_augs, tta_aggregation=tta_aggregation, seed=seed, threads=threads,
                       progress=not quiet)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(f"{split}: {rep['n']} ECGs, positives {rep['positives']}")
    click.echo(f"{'label':<8}" + "".join(f"{m:>22}" for m in ("auroc", "auprc", "f1")))
    for c, d in list(rep["per_label"].items()) + [("macro", rep["macro"])]:
        cells = []
        for m in ("auroc", "auprc", "f1"):
            v = d[m]
            ci = v.get("ci95")
            val = "n/a" if v["value"] is None else f"{v['value']:.3f}"
            cells.append(f"{val} [{ci[0]:.3f},{ci[1]:.3f}]" if ci and None not in ci else val)
        click.echo(f"{c:<8}" + "".join(f"{s:>22}" for s in cells))


@click.command(name="hubert")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default RUN_DIR/export).")
@click.option("--name", default="hubert-ptbxl-super", show_default=True, help="Card name.")
@click.option("--atol", type=float, default=1e-4, show_default=True, help="onnxruntime parity tolerance.")
def export(run_dir, out_dir, name, atol):
    """ONNX of the fine-tuned classifier (dynamic batch, sigmoid probabilities) + model.json, parity-checked."""
    from ..models.hubert import export as export_run

    try:
        r = export_run(run_dir, out_dir, name=name, atol=atol)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    except AssertionError as exc:
        raise click.ClickException(f"onnxruntime parity failed: {exc}") from None
    click.echo(json.dumps(r, indent=2))
