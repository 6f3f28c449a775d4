"""The seed's test protocol (SPEC 5.7) in NumPy: per-label AUROC, AUPRC, F1, precision, recall, specificity,
macro scores, and empirical-bootstrap 95 % CIs over stratified resamples.

References: AUROC = ``sklearn.metrics.roc_auc_score`` (ties averaged), AUPRC = ``average_precision_score``
(torcheval's ``binary_auprc`` is the same step-wise sum); thresholded metrics at 0.5 as torchmetrics. The
formulas live in :mod:`ecgcore.metrics`; this module arranges them into the seed's report.
"""
from __future__ import annotations

import warnings

import numpy as np

from ... import metrics as M

__all__ = ["auroc", "auprc", "threshold_metrics", "multilabel_report", "bootstrap_ci", "METRICS"]

METRICS = ("auroc", "auprc", "f1", "precision", "recall", "specificity")


def auroc(y, s) -> float:
    """Area under the ROC curve of binary targets ``y`` and scores ``s`` (NaN when one class is absent)."""
    return M.roc_auc(np.asarray(y).astype(bool), s)


def auprc(y, s) -> float:
    """Average precision: sum over thresholds of (R_n - R_{n-1}) P_n (NaN without positives)."""
    return M.average_precision(np.asarray(y).astype(bool), s)


def threshold_metrics(y, p, threshold: float = 0.5) -> dict[str, float]:
    """F1, precision, recall (sensitivity) and specificity at ``p >= threshold`` (0 when undefined, as torchmetrics)."""
    cm = M.confusion_matrix(np.asarray(y).astype(bool), np.asarray(p) >= threshold, labels=[False, True])
    pos = 1  # the positive class's row: Se, +P, F1 and Sp of the label
    return {"f1": float(M.f1_score(cm, zero_division=0.0)[pos]),
            "precision": float(M.positive_predictivity(cm, zero_division=0.0)[pos]),
            "recall": float(M.sensitivity(cm, zero_division=0.0)[pos]),
            "specificity": float(M.specificity(cm, zero_division=0.0)[pos])}


def nanmean(a, axis=None):
    """``np.nanmean`` that returns NaN for an all-NaN slice without warning (a label absent from a small split)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _per_label(Y, P, threshold) -> np.ndarray:
    """(len(METRICS), C) table."""
    out = np.empty((len(METRICS), Y.shape[1]))
    for c in range(Y.shape[1]):
        t = threshold_metrics(Y[:, c], P[:, c], threshold)
        out[:, c] = [auroc(Y[:, c], P[:, c]), auprc(Y[:, c], P[:, c]), t["f1"], t["precision"], t["recall"],
                     t["specificity"]]
    return out


def _strata(Y) -> np.ndarray:
    """Stratum per row: its label combination; combinations seen once are pooled so each stratum can resample."""
    keys = np.array(["".join("1" if v else "0" for v in row) for row in np.asarray(Y) > 0.5])
    uniq, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inv = inv.copy()
    inv[counts[inv] < 2] = -1
    return inv


def bootstrap_ci(Y, P, *, n: int = 1000, alpha: float = 0.95, seed: int = 42, threshold: float = 0.5):
    """Empirical-bootstrap CIs of every per-label metric and of the macro means.

    Rows are resampled with replacement within each label-combination stratum (keeps the prevalences of the test
    set); the interval is ``[point - q_hi(d), point - q_lo(d)]`` with ``d = metric* - point`` (the seed's
    empirical bootstrap, :func:`ecgcore.metrics.bootstrap_ci` ``method="basic"``), q at (1 -/+ alpha) / 2,
    clipped to [0, 1].

    Returns
    -------
    lo, hi : (len(METRICS), C) per-label bounds; macro_lo, macro_hi : (len(METRICS),).
    """
    Y, P = np.asarray(Y), np.asarray(P)

    def table(Y, P):  # per-label metrics with the macro means as the last column
        t = _per_label(Y, P, threshold)
        return np.concatenate([t, nanmean(t, axis=1)[:, None]], axis=1)

    lo, hi = M.bootstrap_ci(table, Y, P, n_resamples=n, confidence=alpha, method="basic", strata=_strata(Y),
                            seed=seed)
    # The reflected (empirical) interval can leave [0, 1] for a metric near its bound; every metric here lives there.
    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    return lo[:, :-1], hi[:, :-1], lo[:, -1], hi[:, -1]


def multilabel_report(Y, P, classes, *, n_boot: int = 1000, seed: int = 42, threshold: float = 0.5) -> dict:
    """``{"per_label": {class: {metric: {"value", "ci95"}}}, "macro": {metric: {"value", "ci95"}}, "n": N,
    "positives": {class: count}}``."""
    Y, P = np.asarray(Y, np.float64), np.asarray(P, np.float64)
    if Y.shape != P.shape or Y.ndim != 2:
        raise ValueError(f"targets {Y.shape} and probabilities {P.shape} must both be (N, C)")
    point = _per_label(Y, P, threshold)
    macro = nanmean(point, axis=1)
    out = {"n": int(len(Y)), "positives": {c: int(Y[:, i].sum()) for i, c in enumerate(classes)},
           "threshold": threshold, "per_label": {}, "macro": {}}
    if n_boot:
        lo, hi, mlo, mhi = bootstrap_ci(Y, P, n=n_boot, seed=seed, threshold=threshold)
    for i, c in enumerate(classes):
        out["per_label"][c] = {m: {"value": _f(point[j, i]), **({"ci95": [_f(lo[j, i]), _f(hi[j, i])]} if n_boot else {})}
                               for j, m in enumerate(METRICS)}
    for j, m in enumerate(METRICS):
        out["macro"][m] = {"value": _f(macro[j]), **({"ci95": [_f(mlo[j]), _f(mhi[j])]} if n_boot else {})}
    out["bootstrap"] = {"resamples": n_boot, "stratified_by": "label combination", "seed": seed,
                        "method": "empirical (point - quantiles of metric* - point)"}
    return out


def _f(v) -> float | None:
    v = float(v)
    return None if np.isnan(v) else round(v, 6)
