"""Binary classification metrics in NumPy (no sklearn at run time); Abnormal (class 1) is the positive class."""
from __future__ import annotations

import numpy as np


def confusion_matrix(y_true, y_pred, n_classes: int = 2) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def roc_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds decreasing, starting at (0, 0) like sklearn's (drop_intermediate off)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    P, N = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fps / N], np.r_[0.0, tps / P], np.r_[np.inf, s[last]]


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count ½); NaN when only one class is present."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def classification_metrics(y_true, prob_abnormal, classes=("Normal", "Abnormal"), threshold: float | None = None) -> dict:
    """Accuracy, precision/recall/F1 (Abnormal positive, plus per class and macro), ROC-AUC, confusion matrix.

    ``prob_abnormal`` : (n,) softmax probability of class 1. Predictions are the argmax (p > 0.5) unless
    ``threshold`` is given.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(prob_abnormal, dtype=np.float64)
    pred = (p > (0.5 if threshold is None else threshold)).astype(np.int64)
    cm = confusion_matrix(y, pred, len(classes))
    per_class = {}
    for k, name in enumerate(classes):
        tp = cm[k, k]
        prec = tp / cm[:, k].sum() if cm[:, k].sum() else 0.0
        rec = tp / cm[k, :].sum() if cm[k, :].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per_class[name] = {"precision": float(prec), "recall": float(rec), "f1": float(f1), "support": int(cm[k, :].sum())}
    pos = per_class[classes[1]]
    return {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()) if y.size else float("nan"),
        "precision": pos["precision"], "recall": pos["recall"], "f1": pos["f1"],
        "roc_auc": roc_auc(y, p),
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "specificity": per_class[classes[0]]["recall"],
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def classification_report(m: dict) -> str:
    """A text table like sklearn's ``classification_report`` from :func:`classification_metrics`' output."""
    lines = [f"{'':>12}{'precision':>11}{'recall':>9}{'f1-score':>10}{'support':>9}", ""]
    for name, v in m["per_class"].items():
        lines.append(f"{name:>12}{v['precision']:>11.4f}{v['recall']:>9.4f}{v['f1']:>10.4f}{v['support']:>9d}")
    lines += ["", f"{'accuracy':>12}{'':>11}{'':>9}{m['accuracy']:>10.4f}{m['n']:>9d}",
              f"{'macro f1':>12}{'':>11}{'':>9}{m['macro_f1']:>10.4f}{m['n']:>9d}",
              f"{'ROC-AUC':>12}{'':>11}{'':>9}{m['roc_auc']:>10.4f}{m['n']:>9d}"]
    return "\n".join(lines) + "\n"
