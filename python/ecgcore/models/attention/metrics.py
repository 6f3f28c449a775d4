"""Binary classification metrics in NumPy (no sklearn at run time); Abnormal (class 1) is the positive class.

The formulas live in :mod:`ecgcore.metrics`; this module keeps the family's names and report format.
"""
from __future__ import annotations

import numpy as np

from ... import metrics as M


def confusion_matrix(y_true, y_pred, n_classes: int = 2) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = true class, columns = predicted class."""
    return M.confusion_matrix(np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64),
                              n_classes=n_classes)


def roc_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds decreasing, starting at (0, 0) like sklearn's (drop_intermediate off);
    the rate of an absent class is 0."""
    fpr, tpr, thr = M.roc_curve(np.asarray(y_true).astype(bool), score, drop_intermediate=False)
    return np.nan_to_num(fpr, nan=0.0), np.nan_to_num(tpr, nan=0.0), thr


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count ½); NaN when only one class is present."""
    return M.roc_auc(np.asarray(y_true).astype(bool), score)


def classification_metrics(y_true, prob_abnormal, classes=("Normal", "Abnormal"), threshold: float | None = None) -> dict:
    """Accuracy, precision/recall/F1 (Abnormal positive, plus per class and macro), ROC-AUC, confusion matrix.

    ``prob_abnormal`` : (n,) softmax probability of class 1. Predictions are the argmax (p > 0.5) unless
    ``threshold`` is given.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(prob_abnormal, dtype=np.float64)
    pred = (p > (0.5 if threshold is None else threshold)).astype(np.int64)
    cm = confusion_matrix(y, pred, len(classes))
    prec, rec, f1 = (f(cm, zero_division=0.0) for f in (M.positive_predictivity, M.sensitivity, M.f1_score))
    per_class = {name: {"precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                        "support": int(cm[k, :].sum())} for k, name in enumerate(classes)}
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


def prior_decision(counts, classes=("Normal", "Abnormal"), class_weight: str = "balanced") -> dict | None:
    """The operating point that undoes class-weighted training: with ``balanced`` weights ``n / (2 count_c)`` the
    weighted loss's posterior is ``p_w(c) ∝ w_c p(c | x)``, so the Bayes decision under the training prior is
    "positive (``classes[1]``) when ``p_w(positive) >= w_pos / (w_pos + w_neg)``" = the training share of the
    negative class. ``counts``: training items per class. None when no weighting was used (0.5 is then right)."""
    if class_weight != "balanced":
        return None
    c = np.asarray(counts, np.float64)
    if c.shape != (2,) or (c < 0).any():
        raise ValueError(f"need two class counts, got {counts!r}")
    if (c == 0).any():  # a class absent from training: its weight is capped, there is no prior to restore
        return None
    return {"positive": classes[1], "threshold": round(float(c[0] / c.sum()), 4),
            "rule": "Bayes decision under the training prior: balanced class weights undone "
                    "(threshold = training share of " + classes[0] + ")",
            "training_counts": [int(v) for v in c]}
