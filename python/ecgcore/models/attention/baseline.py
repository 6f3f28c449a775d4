"""Baselines for the Normal/Abnormal window classifier (issue 21): what attention has to beat.

* ``rr_irregularity``: from the annotated beats inside the window, the largest relative deviation of an RR interval
  from the record's median RR, ``max |RR_i / median_RR - 1|`` (premature beats, pauses, irregular rhythm);
* ``aami_fraction``: the share of the window's beats that a beat classifier (the bundled ``beats-aami`` through
  ``ecgcore infer``) calls anything but N — given its output table.

Each score is turned into a classifier by the threshold that maximises F1(Abnormal) on the *training* windows (DS1),
then scored on the test windows: ROC-AUC (threshold-free) and F1 / accuracy at that threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["rr_irregularity", "aami_fraction", "score_baseline"]


def rr_irregularity(record: str, starts, size: int, records_dir) -> np.ndarray:
    """Per window of ``record``: max |RR / median RR - 1| over the RR intervals ending inside it (0 if none)."""
    from ...io import read_annotations
    from ...io.record import BEAT_SYMBOLS

    a = read_annotations(Path(records_dir) / record, "atr")
    beats = np.array([s for s, y in zip(a.sample, a.symbol) if y in BEAT_SYMBOLS], np.int64)
    rr = np.diff(beats).astype(np.float64)
    med = float(np.median(rr)) if rr.size else 1.0
    dev = np.abs(rr / med - 1.0)
    ends = beats[1:]
    out = np.zeros(len(starts))
    for k, s in enumerate(np.asarray(starts, np.int64)):
        m = (ends >= s) & (ends < s + size)
        out[k] = dev[m].max() if m.any() else 0.0
    return out


def aami_fraction(table_rows: dict, record: str, starts, size: int) -> np.ndarray:
    """Per window: the share of scored beats in it whose class is not N (``table_rows[record] = (sample, class)``)."""
    sample, cls = table_rows.get(record, (np.zeros(0, np.int64), np.zeros(0, object)))
    out = np.zeros(len(starts))
    for k, s in enumerate(np.asarray(starts, np.int64)):
        m = (sample >= s) & (sample < s + size) & (cls != "")
        out[k] = float(np.mean(cls[m] != "N")) if m.any() else 0.0
    return out


def _best_threshold(score: np.ndarray, y: np.ndarray) -> float:
    best, thr = -1.0, 0.5
    for t in np.unique(np.quantile(score, np.linspace(0, 1, 201))):
        pred = score >= t
        tp = np.sum(pred & (y == 1))
        f1 = 2 * tp / max(pred.sum() + (y == 1).sum(), 1)
        if f1 > best:
            best, thr = f1, float(t)
    return thr


def score_baseline(train_score, train_y, test_score, test_y) -> dict:
    """Threshold from the training windows (max F1), figures on the test windows."""
    from ...metrics import confusion_matrix, roc_auc

    train_score, test_score = np.asarray(train_score, float), np.asarray(test_score, float)
    train_y, test_y = np.asarray(train_y, int), np.asarray(test_y, int)
    thr = _best_threshold(train_score, train_y)
    pred = (test_score >= thr).astype(int)
    cm = confusion_matrix(test_y, pred, n_classes=2)
    tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
    return {"threshold_from_training": thr, "roc_auc": float(roc_auc(test_y, test_score)),
            "f1_abnormal": float(2 * tp / max(2 * tp + fp + fn, 1)), "accuracy": float(np.trace(cm) / cm.sum()),
            "confusion_matrix": cm.tolist(), "n": int(len(test_y))}
