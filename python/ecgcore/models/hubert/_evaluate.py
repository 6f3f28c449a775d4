"""The test protocol (SPEC 5.7) of a fine-tuned HuBERT-ECG run: ``evaluate(run_dir, data_dir=None)`` writes
``metrics.json``, ``performance.csv`` (rows = metrics, columns = labels, as the seed) and ``probs.npy``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..._fs import atomic_write, write_text
from . import inputs as I
from . import metrics as M
from ._common import atomic_json
from ._finetune import load_classifier, load_task, predict

__all__ = ["evaluate"]


def evaluate(run_dir, data_dir=None, *, task: str | None = None, labels_csv=None, split: str = "test",
             n_boot: int = 1000, n_augs: int = 0, tta_aggregation: str = "mean", seed: int = 42,
             threads: int | None = 1, progress: bool = True) -> dict:
    """The test protocol on ``split``: probabilities (optionally mean/max over ``n_augs`` random 5-s crops of the
    10-s records), per-label and macro metrics with bootstrap CIs -> ``metrics.json``, ``performance.csv``.
    ``data_dir`` defaults to the run's."""
    if threads:
        torch.set_num_threads(int(threads))
    run_dir = Path(run_dir)
    if data_dir is None:
        import json

        data_dir = json.loads((run_dir / "config.json").read_text()).get("data_dir")
        if not data_dir:
            raise ValueError(f"{run_dir}: no dataset recorded in the run; pass DATA_DIR")
    data_dir = Path(data_dir)
    model, ck = load_classifier(run_dir)
    a = ck["args"]
    task = task or a["task"]
    labels_csv = labels_csv or a.get("labels_csv")
    items, Y, sp, classes, task_type = load_task(data_dir, task, labels_csv)
    if classes != ck["classes"]:
        raise ValueError(f"the data's classes {classes} differ from the model's {ck['classes']}")
    sel = np.flatnonzero(sp == split)
    if len(sel) == 0:
        raise ValueError(f"no {split!r} records in {data_dir}")
    sel_items = [items[i] for i in sel]
    if tta_aggregation not in ("mean", "max"):
        raise ValueError(f"tta_aggregation must be mean or max, got {tta_aggregation!r}")
    if n_augs:
        cfg = model.hubert_ecg.config
        X10 = I.load_inputs(data_dir, sel_items, seconds=10.0, cache=run_dir, progress=progress)
        crops = I.random_crops(X10, n_augs, n_leads=cfg.n_leads, crop=5 * cfg.input_fs, rng=seed)
        Ps = np.stack([predict(model, c, task_type) for c in crops])
        P = Ps.mean(0) if tta_aggregation == "mean" else Ps.max(0)
    else:
        X = I.load_inputs(data_dir, sel_items, cache=run_dir, progress=progress)
        P = predict(model, X, task_type)
    rep = M.multilabel_report(Y[sel], P, classes, n_boot=n_boot, seed=seed)
    if task_type == "multi_class":
        rep["accuracy"] = float((P.argmax(1) == Y[sel].argmax(1)).mean())
    rep.update({"split": split, "task_type": task_type, "tta": {"n_augs": n_augs, "aggregation": tta_aggregation},
                "checkpoint_step": ck["global_step"], "best_val_macro_auroc": ck["best_val_auroc"]})
    suffix = f"_tta{n_augs}{tta_aggregation}" if n_augs else ""
    atomic_json(rep, run_dir / f"metrics{suffix}.json")
    lines = ["metric," + ",".join(classes) + ",macro"]
    for m in M.METRICS:
        vals = [rep["per_label"][c][m]["value"] for c in classes] + [rep["macro"][m]["value"]]
        lines.append(m + "," + ",".join("" if v is None else f"{v:.4f}" for v in vals))
    write_text(run_dir / f"performance{suffix}.csv", "\n".join(lines) + "\n")
    with atomic_write(run_dir / f"probs{suffix}.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, P.astype(np.float32))
    return rep
