"""The seed's test protocol (SPEC 5.7) in NumPy: per-label AUROC, AUPRC, F1, precision, recall, specificity,
macro scores, and empirical-bootstrap 95 % CIs over stratified resamples.

References: AUROC = ``sklearn.metrics.roc_auc_score`` (ties averaged), AUPRC = ``average_precision_score``
(torcheval's ``binary_auprc`` is the same step-wise sum); thresholded metrics at 0.5 as torchmetrics.
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["auroc", "auprc", "threshold_metrics", "multilabel_report", "bootstrap_ci", "METRICS"]

METRICS = ("auroc", "auprc", "f1", "precision", "recall", "specificity")


def auroc(y, s) -> float:
    """Area under the ROC curve of binary targets ``y`` and scores ``s`` (NaN when one class is absent)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    ss = s[order]
    # average ranks of ties (Mann-Whitney U)
    starts = np.r_[0, np.flatnonzero(np.diff(ss)) + 1]
    ends = np.r_[starts[1:], len(ss)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + b - 1) + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y, s) -> float:
    """Average precision: sum over thresholds of (R_n - R_{n-1}) P_n (NaN without positives)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]  # last index of each distinct score
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def threshold_metrics(y, p, threshold: float = 0.5) -> dict[str, float]:
    """F1, precision, recall (sensitivity) and specificity at ``p >= threshold`` (0 when undefined, as torchmetrics)."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"f1": f1, "precision": prec, "recall": rec, "specificity": spec}


def nanmean(a, axis=None):
    """``np.nanmean`` that returns NaN for an all-NaN slice without warning (a label absent from a small split)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _nanquantile(a, q, axis):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(a, q, axis=axis)


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
    empirical bootstrap), q at (1 -/+ alpha) / 2, clipped to [0, 1].

    Returns
    -------
    lo, hi : (len(METRICS), C) per-label bounds; macro_lo, macro_hi : (len(METRICS),).
    """
    Y, P = np.asarray(Y), np.asarray(P)
    rng = np.random.default_rng(seed)
    point = _per_label(Y, P, threshold)
    macro_point = nanmean(point, axis=1)
    strata = _strata(Y)
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    deltas = np.empty((n,) + point.shape)
    mdeltas = np.empty((n, len(METRICS)))
    for b in range(n):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        t = _per_label(Y[idx], P[idx], threshold)
        deltas[b] = t - point
        mdeltas[b] = nanmean(t, axis=1) - macro_point
    q_lo, q_hi = (1 - alpha) / 2, 1 - (1 - alpha) / 2
    lo = point - _nanquantile(deltas, q_hi, axis=0)
    hi = point - _nanquantile(deltas, q_lo, axis=0)
    mlo = macro_point - _nanquantile(mdeltas, q_hi, axis=0)
    mhi = macro_point - _nanquantile(mdeltas, q_lo, axis=0)
    # The reflected (empirical) interval can leave [0, 1] for a metric near its bound; every metric here lives there.
    return tuple(np.clip(a, 0.0, 1.0) for a in (lo, hi, mlo, mhi))


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
