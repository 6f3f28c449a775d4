"""Training protocols of the Conformer seed (SPEC §4.6) and ecgcore's inter-patient protocol, in the shared run
folder of :mod:`ecgcore.models._run`.

``protocol="seed"``: the seed's 7 held-out records (:data:`ecgcore.datasets.mitdb.CONFORMER_TEST`);
5-fold record-level CV over the other 38 (``KFold(5, shuffle, 42)``) with per-fold normalisation, EarlyStopping
and ReduceLROnPlateau on the fold's validation records; the best fold's weights saved as
``best_kfold_model.keras`` with ``kfold_summary.json``; then a final training on all 38 records (no validation,
no callbacks) whose model is ``model.keras``, evaluated on the 7.

``protocol="inter-patient"``: de Chazal's DS1 → DS2: train on DS1 (no DS2 data, not even for early stopping),
evaluate on DS2.

A run folder holds the shared ``config.json``, ``checkpoint/``, ``history.csv`` (every epoch of every stage),
``learning_curve.png`` and ``run.json`` (stop reason, steps, plus protocol, records, timings, command), and
``norm.json`` (the 187 column means / scales and, with RR inputs, their 4 means / scales), ``model.keras`` and
the evaluation folders. Runs resume: a finished stage (fold, final model) is skipped, an interrupted fit restarts
from its last epoch (``BackupAndRestore``).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .._run import Run
from ._common import configure_tensorflow, load_run, load_run_model, save_model, write_json
from .config import ConformerConfig
from .data import class_sampling, dataset_index, make_dataset, normalisation_stats, rr_table

__all__ = ["train", "protocol_records", "configure_tensorflow", "load_run", "load_run_model", "fit_once"]

PROTOCOLS = ("inter-patient", "seed")


def protocol_records(protocol: str, available) -> tuple[list[str], list[str]]:
    """(training records, test records) of a protocol, restricted to the records the dataset holds."""
    from ...datasets.mitdb import DS1, DS2, conformer_split

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    avail = set(available)
    train, test = (list(DS1), list(DS2)) if protocol == "inter-patient" else conformer_split()
    return [r for r in train if r in avail], [r for r in test if r in avail]


def _normalisation(index, records, cfg, records_dir, cache: Path, progress: bool, sums_dir=None) -> dict:
    """Statistics from ``records`` only (the training records of this stage), cached in ``cache``."""
    if cache.is_file():
        norm = json.loads(cache.read_text())
        if norm.get("records") == list(records):
            return norm
    mean, scale = normalisation_stats(index, records, progress=progress, cache_dir=sums_dir)
    norm = {"records": list(records), "mean": mean.tolist(), "scale": scale.tolist()}
    if cfg.rr_features:
        rr = rr_table(index, records, records_dir, cfg.rr_set)
        flat = np.concatenate([rr[:1, :-1].reshape(-1, rr.shape[-1]), rr[:, -1]])
        sd = flat.std(0)
        norm.update(rr_mean=flat.mean(0).tolist(), rr_scale=np.where(sd > 0, sd, 1.0).tolist())
    write_json(cache, norm)
    return norm


class _Budget:
    """Stop ``fit`` once a wall-clock deadline passes (checked after every batch)."""

    def __new__(cls, deadline: float | None):
        import keras

        class WallClock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.stopped = False

            def on_train_batch_end(self, batch, logs=None):
                if deadline is not None and time.time() > deadline:
                    self.model.stop_training = True
                    self.stopped = True

        return WallClock()


def fit_once(cfg: ConformerConfig, index, train_recs, out_dir: Path, *, val_recs=None, records_dir=None,
             epochs: int | None = None, steps_per_epoch: int | None = None, callbacks_seed: bool = False,
             deadline: float | None = None, val_fraction: float = 1.0, progress: bool = True,
             sums_dir=None, init_from=None, run: Run | None = None, stage: str = "final") -> dict:
    """Train one model on ``train_recs`` in ``out_dir`` → ``{"model": path, "history": ..., "norm": ...}``.

    ``callbacks_seed`` adds the seed's EarlyStopping(val_loss, 5) and ReduceLROnPlateau(val_loss, 0.2, 1, 1e-6);
    ``val_fraction`` scores a fixed uniform subset of the validation sequences (unbiased accuracy, less CPU).
    With ``run``, every epoch is recorded in the shared run folder (``stage`` names the fit in history.csv).
    """
    import keras

    from .model import build_model, compile_model

    if cfg.chunk:
        from .chunks import fit_chunks

        return fit_chunks(cfg, index, train_recs, out_dir, val_recs=val_recs, records_dir=records_dir, epochs=epochs,
                          steps_per_epoch=steps_per_epoch, deadline=deadline, progress=progress, sums_dir=sums_dir,
                          init_from=init_from, budget_cls=_Budget, normalisation=_normalisation,
                          run_callback=None if run is None else (lambda steps: _run_callback(run, stage, steps)))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "model.keras"
    want = epochs or cfg.epochs
    prev = None
    if final.is_file() and (out_dir / "fit.json").is_file():
        prev = json.loads((out_dir / "fit.json").read_text())
        if prev["epochs_run"] >= want or prev.get("early_stopped"):
            return prev  # a finished stage
        # more epochs asked for, or a wall-clock stop: go on from the saved model and its optimiser state
    norm = _normalisation(index, train_recs, cfg, records_dir, out_dir / "norm.json", progress, sums_dir)
    counts = index.counts(train_recs)
    keep, expected, weights = class_sampling(cfg, counts)  # thin N, keep every minority beat
    steps = steps_per_epoch or max(1, math.ceil(expected.sum() / cfg.batch_size))
    rr = rr_table(index, train_recs, records_dir, cfg.rr_set) if cfg.rr_features else None
    ds = make_dataset(index, train_recs, mean=norm["mean"], scale=norm["scale"], batch_size=cfg.batch_size,
                      training=True, rr=rr, rr_mean=norm.get("rr_mean"), rr_scale=norm.get("rr_scale"),
                      keep_prob=keep if keep[0] < 1 else None, shuffle_buffer=int(cfg.extra.get("shuffle_buffer", 8)),
                      seed=cfg.seed)
    val_ds = None
    if val_recs:
        n_val = sum(len(index.labels[r]) for r in val_recs)
        mask = np.random.default_rng(cfg.seed).random(n_val) < val_fraction if val_fraction < 1 else None
        val_rr = rr_table(index, val_recs, records_dir, cfg.rr_set) if cfg.rr_features else None
        val_ds = make_dataset(index, val_recs, mean=norm["mean"], scale=norm["scale"], batch_size=cfg.batch_size,
                              training=False, rr=val_rr, rr_mean=norm.get("rr_mean"), rr_scale=norm.get("rr_scale"),
                              keep_mask=mask)
    keras.utils.set_random_seed(cfg.seed)
    initial = 0
    if prev is not None:
        from .model import custom_objects

        model = keras.models.load_model(final, custom_objects=custom_objects(), compile=True)
        initial = int(prev["epochs_run"])
    else:
        model = compile_model(build_model(cfg), cfg)
        if init_from is not None:  # continue from an earlier run's weights (same architecture)
            model.set_weights(load_run_model(init_from).get_weights())
    budget = _Budget(deadline)
    cbs = [keras.callbacks.BackupAndRestore(str(out_dir / "backup")),
           keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True), budget]
    if run is not None:
        cbs.append(_run_callback(run, stage, steps))
    early = None
    if callbacks_seed and val_ds is not None:
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                              restore_best_weights=stage == "final")
        cbs.append(early)
        if not cfg.lr_schedule:
            cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=cfg.plateau_factor,
                                                         patience=cfg.plateau_patience, min_lr=cfg.min_lr))
    if cfg.lr_schedule:
        cbs.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: cfg.lr_at(epoch + 1)))
    t0 = time.time()
    hist = model.fit(ds, epochs=want, initial_epoch=initial, steps_per_epoch=steps, validation_data=val_ds,
                     class_weight=weights, callbacks=cbs, shuffle=False, verbose=2 if progress else 0)
    save_model(model, final)
    shutil.rmtree(out_dir / "backup", ignore_errors=True)
    history = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    if prev is not None:
        history = {k: list(prev["history"].get(k, [])) + v for k, v in history.items()}
    info = {"model": str(final), "history": history,
            "epochs_run": initial + len(hist.history.get("loss", [])), "steps_per_epoch": steps,
            "stopped_by_wall_clock": budget.stopped, "early_stopped": bool(early is not None and early.stopped_epoch),
            "seconds": time.time() - t0 + (prev or {}).get("seconds", 0.0),
            "class_counts": counts.tolist(), "keep_prob": keep.tolist(), "class_weight": weights,
            "train_records": list(train_recs), "val_records": list(val_recs or [])}
    write_json(out_dir / "fit.json", info)
    return info


RESUMABLE = ("epochs", "fold_epochs", "steps_per_epoch", "time_limit_s", "threads", "eval_n_fraction", "extra")


def _run_callback(run: Run, stage: str, steps: int):
    """A Keras callback that records every epoch in the shared run folder (history.csv, learning curve,
    run.json, checkpoint/state.json); the weights themselves are checkpointed by ``BackupAndRestore``."""
    import keras

    class RunLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            run.state.epoch += 1
            run.state.step += steps
            score = logs.get("val_loss", logs.get("loss"))
            if score is not None:
                run.improved(float(score))
            lr = self.model.optimizer.learning_rate
            row = {"stage": stage, "train_loss": logs.get("loss"), "train_accuracy": logs.get("accuracy"),
                   "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                   "lr": float(lr.numpy() if hasattr(lr, "numpy") else lr)}
            run.log(**{k: (float(v) if v is not None and k != "stage" else v) for k, v in row.items()
                       if v is not None})
            run.save(lambda folder: None)

    return RunLog()


def _merge_json(path: Path, obj: dict) -> None:
    old = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**old, **obj})


def train(data_dir, run_dir, config: ConformerConfig | None = None, *, records_dir=None, train_records=None,
          test_records=None, init_from=None, evaluate_after: bool = True, progress: bool = True,
          resume: bool = True) -> dict:
    """Run ``config.protocol`` end to end in the shared run folder; returns the run summary (``run.json``).

    Parameters
    ----------
    data_dir : a ``tfrecords`` dataset folder (``ecgcore preprocess tfrecords``).
    run_dir : output folder (created; an existing run resumes: finished stages are skipped, an interrupted fit
        restarts from its last epoch).
    config : :class:`ConformerConfig`; its ``protocol`` (``"inter-patient"``: DS1 → DS2; ``"seed"``: k-fold over 38,
        final on 38, test on 7), ``epochs`` / ``fold_epochs``, ``steps_per_epoch``, ``time_limit_s`` (the k-fold
        stage gets the first half), ``val_fraction``, ``eval_n_fraction`` and ``threads`` drive the run.
    records_dir : WFDB records the dataset was made from (needed for ``config.rr_features``).
    train_records, test_records : override the protocol's records (e.g. a tiny CI run).
    init_from : a ``.keras`` checkpoint of the same architecture whose weights the final training starts from.
    resume : False starts over.
    """
    cfg = config or ConformerConfig()
    configure_tensorflow(cfg.threads)
    index = dataset_index(data_dir)
    if cfg.rr_features and records_dir is None:
        raise ValueError("rr_features needs records_dir: the WFDB records the TFRecords were made from")
    tr_default, te_default = protocol_records(cfg.protocol, index.labels)
    train_recs = list(train_records) if train_records else tr_default
    test_recs = list(test_records) if test_records else te_default
    index.files(train_recs + test_recs)  # fail early, naming missing records
    overlap = sorted(set(train_recs) & set(test_recs))
    if overlap:
        raise ValueError(f"records {', '.join(overlap)} are in both the training and the test set")
    run_folder = Run(run_dir, cfg, family="conformer", data_dir=data_dir, resume=resume,
                     time_limit_s=cfg.time_limit_s, resumable=RESUMABLE)
    run = run_folder.dir
    start = time.time()
    limit = cfg.time_limit_s
    deadline = start + limit if limit else None
    summary = {"protocol": cfg.protocol, "data_dir": str(Path(data_dir).resolve()), "train_records": train_recs,
               "test_records": test_recs, "config": cfg.to_dict(), "command": " ".join(sys.argv),
               "records_dir": str(records_dir) if records_dir else None, "dataset_options": index.options,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "init_from": str(init_from) if init_from else None}
    if cfg.protocol == "seed":
        from ...datasets.mitdb import record_kfold

        fold_deadline = start + limit / 2 if limit else None
        n_folds = min(cfg.folds, len(train_recs))
        per_fold = []
        for k, (tr, va) in enumerate(record_kfold(train_recs, n_folds, seed=cfg.seed), start=1):
            fold_dl = None if fold_deadline is None else time.time() + (fold_deadline - time.time()) / (n_folds - k + 1)
            info = fit_once(cfg, index, tr, run / "kfold" / f"fold{k}", val_recs=va, records_dir=records_dir,
                            epochs=cfg.fold_epochs, steps_per_epoch=cfg.steps_per_epoch, callbacks_seed=True,
                            deadline=fold_dl, val_fraction=cfg.val_fraction, progress=progress,
                            sums_dir=run / "column_sums", run=run_folder, stage=f"fold{k}")
            h = info["history"]
            per_fold.append({"fold": k, "val_records": va, "val_accuracy": h.get("val_accuracy", [float("nan")])[-1],
                             "val_loss": h.get("val_loss", [float("nan")])[-1], "epochs": info["epochs_run"]})
        accs = np.array([f["val_accuracy"] for f in per_fold])
        losses = np.array([f["val_loss"] for f in per_fold])
        best = int(np.nanargmax(accs)) + 1 if np.isfinite(accs).any() else 1
        shutil.copyfile(run / "kfold" / f"fold{best}" / "model.keras", run / "best_kfold_model.keras")
        kfold = {"folds": per_fold, "mean_accuracy": float(np.nanmean(accs)), "std_accuracy": float(np.nanstd(accs)),
                 "mean_loss": float(np.nanmean(losses)), "std_loss": float(np.nanstd(losses)), "best_fold": best,
                 "val_fraction": cfg.val_fraction}
        write_json(run / "kfold_summary.json", kfold)
        _kfold_plot(per_fold, run / "kfold_accuracy.png")
        summary["kfold"] = kfold
    # Final model: all training records, no validation and no callbacks (both protocols, as the seed) -- or, with
    # val_records, the training records minus that many held-out ones that drive early stopping.
    fit_recs, val_recs = train_recs, None
    if isinstance(cfg.val_records, list):  # named records (config validation: distinct, non-empty)
        missing = [r for r in cfg.val_records if r not in train_recs]
        if missing:
            raise ValueError(f"val_records {cfg.val_records} must be training records; not training records: {missing}")
        if len(cfg.val_records) >= len(train_recs):
            raise ValueError(f"val_records {cfg.val_records} leave no training record (of {len(train_recs)})")
        val_recs = sorted(cfg.val_records)
    elif cfg.val_records:
        if cfg.val_records >= len(train_recs):
            raise ValueError(f"val_records={cfg.val_records} leaves no training record (of {len(train_recs)})")
        pick = np.random.default_rng(cfg.seed).permutation(len(train_recs))[: cfg.val_records]
        val_recs = sorted(train_recs[i] for i in pick)
    if val_recs:
        fit_recs = [r for r in train_recs if r not in val_recs]
        summary["val_records"] = val_recs
    final = fit_once(cfg, index, fit_recs, run / "final", val_recs=val_recs, records_dir=records_dir,
                     epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch, callbacks_seed=val_recs is not None,
                     deadline=deadline, val_fraction=cfg.val_fraction, progress=progress,
                     sums_dir=run / "column_sums", init_from=init_from, run=run_folder, stage="final")
    shutil.copyfile(run / "final" / "model.keras", run / "model.keras")
    shutil.copyfile(run / "final" / "norm.json", run / "norm.json")
    summary["final"] = {k: v for k, v in final.items() if k != "model"}
    summary["train_seconds"] = time.time() - start
    run_folder.stop("time_limit" if final.get("stopped_by_wall_clock") else "epochs")
    run_folder.save(lambda folder: None)
    _merge_json(run / "run.json", summary)
    if evaluate_after:
        from ._evaluate import evaluate

        summary["test"] = evaluate(run, progress=progress)
        _merge_json(run / "run.json", summary)
    return {**json.loads((run / "run.json").read_text()), **summary}


def _kfold_plot(per_fold, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([f"fold {f['fold']}" for f in per_fold], [f["val_accuracy"] for f in per_fold], color="tab:blue")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
