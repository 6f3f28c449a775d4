"""``ecgcore train|evaluate|export|tune conformer``: the click commands loaded by ``ecgcore.commands.model_verbs``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..models.conformer.config import NAMED_CONFIGS, VARIANTS

_PROTOCOL = click.Choice(["inter-patient", "seed"])


def _split(value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _overrides(pairs):
    from ._options import parse_set

    try:
        return parse_set(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None


def _config(variant, rr, overrides):
    from ..models.conformer.config import ConformerConfig

    try:
        return ConformerConfig.for_variant(variant, rr_features=rr, **overrides)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None


_common = [
    click.option("--variant", type=click.Choice(VARIANTS), default="conformer", show_default=True,
                 help="Main_Model (conformer) or an ablation; defaults are that variant's seed best hyperparameters."),
    click.option("--rr/--no-rr", default=False, show_default=True,
                 help="Add per-beat RR-interval inputs (pre/post/local RR over the record average, average RR)."),
    click.option("--records-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="WFDB records the TFRecords were made from (needed with --rr)."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Any ConformerConfig field, e.g. --set lr=1e-3 --set batch_size=32."),
    click.option("--threads", type=int, default=1, show_default=True, help="TensorFlow / onnxruntime threads."),
]


def _with(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f
    return deco


@click.command("train")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "named", type=click.Choice(sorted(NAMED_CONFIGS)),
              help="A whole training set-up by name; options given on the command line override it. seed: the "
                   "seed's protocol exactly (k-fold over its 38 records, final on 38, test on its 7: leaky, patients "
                   "on both sides), lr 1e-5, balanced class weights, no RR. bundled: how the shipped beats-aami was "
                   "trained (inter-patient, RR inputs, chunk training, early stopping on 4 held-out DS1 records).")
@click.option("--protocol", type=_PROTOCOL, default="inter-patient", show_default=True,
              help="inter-patient: train DS1, test DS2. seed: 5-fold CV over 38 records, final on 38, test on the 7.")
@_with(_common)
@click.option("--epochs", type=int, help="Epochs of the final training (default: config epochs, 20).")
@click.option("--fold-epochs", type=int, help="Epochs per k-fold training (seed protocol).")
@click.option("--steps-per-epoch", type=int, help="Cap the steps of every epoch.")
@click.option("--max-n-per-epoch", type=int, help="Class-balanced sampling: about this many N sequences per epoch.")
@click.option("--max-minutes", type=float, help="Wall-clock cap of the whole training (folds get the first half).")
@click.option("--val-fraction", type=float, default=1.0, show_default=True,
              help="Fraction of the k-fold validation sequences scored each epoch.")
@click.option("--eval-n-fraction", type=float, default=1.0, show_default=True,
              help="Fraction of test N sequences scored after training (others all; N reweighted).")
@click.option("--train-records", help="Comma-separated records replacing the protocol's training records.")
@click.option("--test-records", help="Comma-separated records replacing the protocol's test records.")
@click.option("--folds", type=int, default=5, show_default=True)
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start the final training from this .keras checkpoint (same architecture).")
@click.option("--no-evaluate", is_flag=True, help="Do not evaluate on the test records after training.")
@click.option("--show-config", is_flag=True, help="Print the resolved configuration as JSON and exit (no training).")
@click.option("--quiet", is_flag=True)
@click.pass_context
def train(ctx, data_dir, run_dir, named, protocol, variant, rr, records_dir, overrides, threads, epochs, fold_epochs,
          steps_per_epoch, max_n_per_epoch, max_minutes, val_fraction, eval_n_fraction, train_records,
          test_records, folds, init_from, no_evaluate, show_config, quiet):
    """Train the CNN-Conformer on a `ecgcore preprocess tfrecords` dataset (resumable run folder).

    DATA_DIR is the TFRecords folder, RUN_DIR the run folder (the shared config.json, checkpoint/, history.csv,
    learning_curve.png, run.json; model.keras, norm.json, kfold_summary.json, eval_<protocol>/ with metrics.json,
    classification_report.txt and PNG plots). Re-running the same command resumes.
    """
    from ..models.conformer import train as run_train

    from click.core import ParameterSource

    def given(param):  # typed on the command line (not a default)
        return ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)

    base = dict(NAMED_CONFIGS[named]) if named else {}
    over = {}
    for key, value in (("max_n_per_epoch", max_n_per_epoch), ("epochs", epochs), ("fold_epochs", fold_epochs),
                       ("steps_per_epoch", steps_per_epoch),
                       ("time_limit_s", None if max_minutes is None else 60.0 * max_minutes)):
        if value:
            over[key] = value
    for key, param, value in (("protocol", "protocol", protocol), ("folds", "folds", folds),
                              ("val_fraction", "val_fraction", val_fraction),
                              ("eval_n_fraction", "eval_n_fraction", eval_n_fraction), ("threads", "threads", threads),
                              ("rr_features", "rr", rr)):
        if not named or given(param) or key not in base:
            over[key] = value
    over.update(_overrides(overrides))
    merged = {**base, **over}
    rr = merged.pop("rr_features", rr)
    if show_config:
        click.echo(json.dumps(_config(variant, rr, merged).to_dict(), indent=1))
        return
    if rr and records_dir is None:
        raise click.UsageError("RR inputs (--rr, or --config bundled) need --records-dir: the WFDB records the "
                               "TFRecords were made from")
    cfg = _config(variant, rr, merged)
    try:
        s = run_train(data_dir, run_dir, cfg, records_dir=records_dir, train_records=_split(train_records),
                      test_records=_split(test_records), evaluate_after=not no_evaluate, init_from=init_from,
                      progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if "test" in s:
        t = s["test"]
        click.echo(f"{protocol}: accuracy {t['accuracy']:.4f}  macro-F1(NSVF) {t['macro_f1_NSVF']:.4f}  "
                   f"jk {t['jk_index']:.4f}  -> {run_dir}/eval_{protocol}/")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--protocol", type=_PROTOCOL, help="Score the test records of this protocol (default: the run's).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="TFRecords folder (default: the run's).")
@click.option("--records", help="Comma-separated records to score instead.")
@click.option("--n-fraction", type=float, default=1.0, show_default=True,
              help="Score this fraction of the N sequences (all others); N reweighted to the full count.")
@click.option("--max-per-class", type=int,
              help="Score at most this many sequences of each class (stratified, reweighted to the full counts).")
@click.option("--model", default="model.keras", show_default=True, help="Checkpoint in RUN_DIR (or best_kfold_model.keras).")
@click.option("--backend", type=click.Choice(["onnxruntime", "keras"]), default="onnxruntime", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--quiet", is_flag=True)
def evaluate(run_dir, protocol, data_dir, records, n_fraction, max_per_class, model, backend, threads, quiet):
    """AAMI metrics of a trained run: Se, +P, F1 per class, macro-F1, accuracy, kappa, jk; confusion/ROC/PR PNGs."""
    from ..models.conformer import evaluate as run_eval
    from ..models.conformer._train import protocol_records

    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else None
    if meta is None:
        raise click.ClickException(f"{run_dir}/run.json not found: not a finished `ecgcore train conformer` run")
    recs = _split(records)
    name = None
    if protocol and not recs:
        from ..models.conformer.data import dataset_index

        recs = protocol_records(protocol, dataset_index(data_dir or meta["data_dir"]).labels)[1]
        name = f"eval_{protocol}"
    if recs:
        leak = sorted(set(recs) & set(meta["train_records"]))
        if leak:
            raise click.ClickException(f"records {', '.join(leak)} were used for training this run; "
                                       "scoring them would not be a test")
    try:
        m = run_eval(run_dir, data_dir=data_dir, records=recs, n_fraction=n_fraction, max_per_class=max_per_class,
                     model=model, name=name,
                     backend=backend, threads=threads, progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo((Path(run_dir) / (name or f"eval_{meta['protocol']}") / "classification_report.txt").read_text())
    click.echo(f"accuracy {m['accuracy']:.4f}  macro-F1(NSVF) {m['macro_f1_NSVF']:.4f}")


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default RUN_DIR/export).")
@click.option("--name", default="beats-aami", show_default=True, help="Model name in the card.")
@click.option("--no-check", is_flag=True, help="Skip the onnxruntime-vs-Keras parity check.")
@click.option("--threads", type=int, default=1, show_default=True)
def export(run_dir, out_dir, name, no_check, threads):
    """RUN_DIR/model.keras → model.onnx + model.json (card with the full preprocessing), parity-checked in onnxruntime."""
    from ..models.conformer import export as run_export

    try:
        r = run_export(run_dir, out_dir, name=name, check=not no_check, threads=threads)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    p = r["parity"]
    click.echo(f"wrote {r['onnx']} and {r['card']}"
               + (f"; onnxruntime vs Keras max |diff| {p['max_abs_diff']:.2e} on {p['n_sequences']} sequences of "
                  f"record {p['record']}" if p else ""))


@click.command("tune")
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@_with(_common)
@click.option("--records", help="Comma-separated records to tune on (default: the seed's 38); fold 1 of 5 is used.")
@click.option("--max-epochs", type=int, default=20, show_default=True)
@click.option("--factor", type=int, default=3, show_default=True)
@click.option("--steps-per-epoch", type=int)
@click.option("--val-fraction", type=float, default=1.0, show_default=True)
@click.option("--max-minutes", type=float, help="Wall-clock cap: trials stop training once it passes.")
@click.option("--quiet", is_flag=True)
def tune(data_dir, out_dir, variant, rr, records_dir, overrides, threads, records, max_epochs, factor,
         steps_per_epoch, val_fraction, max_minutes, quiet):
    """keras-tuner Hyperband over the seed's search space on fold 1; writes tuning_results.csv/json."""
    from ..models.conformer.tune import tune as run_tune

    cfg = _config(variant, rr, _overrides(overrides))
    try:
        r = run_tune(data_dir, out_dir, config=cfg, records=_split(records), records_dir=records_dir,
                     max_epochs=max_epochs, factor=factor, steps_per_epoch=steps_per_epoch, val_fraction=val_fraction,
                     max_minutes=max_minutes, threads=threads, progress=not quiet)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(r['trials'])} trials; best {r['best_hyperparameters']} -> {out_dir}/tuning_results.csv")
