"""Hyperband search over the seed's space (SPEC §4.5-4.6) on fold 1 of the record-level 5-fold split."""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import numpy as np

from .config import ConformerConfig

__all__ = ["tune", "search_space"]


def search_space(hp, variant: str, base: ConformerConfig) -> ConformerConfig:
    """The seed's keras-tuner choices for ``variant`` → a config (other fields from ``base``)."""
    embed = hp.Choice("embed_dim", [64, 128])
    kw = {"embed_dim": embed}
    if variant in ("conformer", "attention-only"):
        kw["num_heads"] = hp.Choice("num_heads", [4, 8])
        kw["ff_dim"] = embed * hp.Choice("ff_multiplier", [2, 4])
        kw["dropout"] = hp.Float("dropout", 0.0 if variant == "attention-only" else 0.1, 0.3, step=0.1)
        kw["num_blocks"] = hp.Choice("num_blocks", [1, 2])
    if variant == "conformer":
        kw["kernel_size"] = hp.Choice("kernel_size", [7, 11])
    if variant == "cnn-lstm":
        kw["lstm_units"] = hp.Choice("lstm_units", [64, 128])
    d = base.to_dict()
    d.update(kw, variant=variant)
    return ConformerConfig.from_dict(d)


def tune(data_dir, out_dir, *, config: ConformerConfig | None = None, records=None, records_dir=None,
         max_epochs: int = 20, factor: int = 3, steps_per_epoch: int | None = None, val_fraction: float = 1.0,
         max_minutes: float | None = None, threads: int | None = 1, progress: bool = True) -> dict:
    """Run Hyperband (objective val_accuracy) on fold 1 of ``KFold(5, shuffle, 42)`` over the seed's 38 records
    (or ``records``); write ``tuning_results.csv`` / ``.json`` and ``best_hyperparameters.json`` in ``out_dir``.
    """
    import keras
    import keras_tuner as kt

    from ...datasets.mitdb import record_kfold
    from .data import class_weights, dataset_index, make_dataset, normalisation_stats, rr_table
    from .model import build_model, compile_model
    from ._common import configure_tensorflow
    from ._train import _Budget, protocol_records

    configure_tensorflow(threads)
    base = config or ConformerConfig()
    index = dataset_index(data_dir)
    recs = list(records) if records else protocol_records("seed", index.labels)[0]
    train_recs, val_recs = record_kfold(recs, min(5, len(recs)), seed=base.seed)[0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mean, scale = normalisation_stats(index, train_recs, progress=progress)
    rr_kw, val_rr_kw = {}, {}
    if base.rr_features:
        rr = rr_table(index, train_recs, records_dir, base.rr_set)
        flat = rr[:, -1]
        rr_kw = dict(rr=rr, rr_mean=flat.mean(0), rr_scale=np.where(flat.std(0) > 0, flat.std(0), 1.0))
        val_rr_kw = dict(rr_kw, rr=rr_table(index, val_recs, records_dir, base.rr_set))
    counts = index.counts(train_recs)
    keep = np.ones(len(counts))
    if base.max_n_per_epoch and counts[0] > base.max_n_per_epoch:
        keep[0] = base.max_n_per_epoch / counts[0]
    ds = make_dataset(index, train_recs, mean=mean, scale=scale, batch_size=base.batch_size, training=True,
                      keep_prob=keep if keep[0] < 1 else None, seed=base.seed, **rr_kw)
    n_val = sum(len(index.labels[r]) for r in val_recs)
    mask = np.random.default_rng(base.seed).random(n_val) < val_fraction if val_fraction < 1 else None
    val_ds = make_dataset(index, val_recs, mean=mean, scale=scale, batch_size=base.batch_size, training=False,
                          keep_mask=mask, **val_rr_kw)
    steps = steps_per_epoch or max(1, math.ceil((counts * keep).sum() / base.batch_size))

    def hypermodel(hp):
        return compile_model(build_model(search_space(hp, base.variant, base)), base)

    deadline = time.time() + 60 * max_minutes if max_minutes else None

    class OutOfTime(kt.errors.FatalError):
        pass

    class Hyperband(kt.Hyperband):
        def run_trial(self, trial, *args, **kwargs):
            # The wall-clock cap ends the search between trials (the running trial is stopped by _Budget).
            if deadline is not None and time.time() > deadline:
                raise OutOfTime(f"wall-clock cap of {max_minutes} min reached")
            return super().run_trial(trial, *args, **kwargs)

        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            # keras-tuner 1.4.8 imports tensorboard here under the TF backend even without a TensorBoard
            # callback; tensorboard is not a dependency of ecgcore and no TensorBoard callback is used.
            if any(type(cb).__name__ == "TensorBoard" for cb in callbacks):
                super()._configure_tensorboard_dir(callbacks, trial, execution)

    tuner = Hyperband(hypermodel, objective="val_accuracy", max_epochs=max_epochs, factor=factor,
                         seed=base.seed, directory=str(out), project_name=f"hyperband_{base.variant}",
                         overwrite=False)
    t0 = time.time()
    try:
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=base.patience)
        tuner.search(ds, validation_data=val_ds, steps_per_epoch=steps, class_weight=class_weights(counts * keep),
                     callbacks=[stop, _Budget(deadline)], shuffle=False, verbose=2 if progress else 0)
    except OutOfTime:
        pass
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.score is None and str(trial.status).upper().endswith(("RUNNING", "FAILED")):
            continue  # the trial the cap interrupted before it trained
        rows.append({"trial": trial.trial_id, "status": str(trial.status), "val_accuracy": trial.score,
                     "epochs": trial.hyperparameters.values.get("tuner/epochs"),
                     **{k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}})
    rows.sort(key=lambda r: -(r["val_accuracy"] if r["val_accuracy"] is not None else -1))
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("trial", "status", "val_accuracy", "epochs"), k))
    with open(out / "tuning_results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        w.writerows(rows)
    scored = [r for r in rows if r["val_accuracy"] is not None]
    best = tuner.get_best_hyperparameters(1)[0].values if scored else {}
    result = {"variant": base.variant, "train_records": train_recs, "val_records": val_recs, "max_epochs": max_epochs,
              "factor": factor, "steps_per_epoch": steps, "val_fraction": val_fraction, "trials": rows,
              "best_hyperparameters": best, "seconds": time.time() - t0,
              "stopped_by_wall_clock": deadline is not None and time.time() > deadline}
    (out / "tuning_results.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "best_hyperparameters.json").write_text(json.dumps(best, indent=1, default=str))
    return result
