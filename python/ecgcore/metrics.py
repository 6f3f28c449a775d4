"""Evaluation metrics for beat, rhythm and identity models, in NumPy only (no framework, no scikit-learn).

Classification, from a confusion matrix (rows = truth, columns = prediction):

* :func:`confusion_matrix` (optionally weighted, e.g. a stratified subset with N beats reweighted);
* per class: :func:`sensitivity` (Se, recall), :func:`positive_predictivity` (+P, precision),
  :func:`specificity`, :func:`f1_score`; overall :func:`accuracy` and :func:`cohen_kappa`;
* the AAMI :func:`j_index` and :func:`jk_index` of Mondéjar-Guerra et al. 2019.

Scores of a binary problem (ties handled as scikit-learn does):

* :func:`roc_curve`, :func:`roc_auc`, :func:`precision_recall_curve`, :func:`average_precision` (PR-AUC);
* :func:`det_curve` and :func:`eer` for verification (genuine and impostor similarity scores);
* :func:`bootstrap_ci`: percentile or basic bootstrap interval of any statistic, seeded, optionally stratified.

Reference: scikit-learn 1.9 (``sklearn.metrics``), equal within 1e-12 on random and tied inputs
(``tests/test_metrics.py``). Where scikit-learn raises or warns for an undefined value (a class never
predicted, only one class present), these functions return NaN (or ``zero_division``) silently.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

__all__ = [
    "accuracy", "average_precision", "bootstrap_ci", "cohen_kappa", "confusion_matrix", "det_curve", "eer",
    "f1_score", "j_index", "jk_index", "positive_predictivity", "pr_auc", "precision_recall_curve", "roc_auc",
    "roc_curve", "sensitivity", "specificity",
]

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # NumPy < 2 has only trapz


# --------------------------------------------------------------------------------------------- confusion matrix

def confusion_matrix(y_true, y_pred, *, n_classes: int | None = None, labels=None, sample_weight=None) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class.

    Parameters
    ----------
    y_true, y_pred : (n,) class labels.
    n_classes : the labels are ``0 .. n_classes - 1``.
    labels : (k,) the labels, in row/column order (not with ``n_classes``). Default: every label seen, sorted.
    sample_weight : (n,) or None.

    Returns
    -------
    (k, k) int64 counts, or float64 sums when the weights are not integers (as ``sklearn.metrics.confusion_matrix``).
    Samples whose label is not among ``labels`` are left out.
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if n_classes is not None and labels is not None:
        raise ValueError("give n_classes or labels, not both")
    if labels is None:
        labels = np.arange(n_classes) if n_classes is not None else np.unique(np.concatenate([y_true, y_pred]))
    labels = np.asarray(labels)
    k = labels.size
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]

    def index(y):
        pos = np.clip(np.searchsorted(sorted_labels, y), 0, max(k - 1, 0))
        valid = sorted_labels[pos] == y if k else np.zeros(y.shape, bool)
        return order[pos], valid

    it, vt = index(y_true)
    ip, vp = index(y_pred)
    keep = vt & vp
    if sample_weight is None:
        w = np.ones(y_true.size, np.int64)
    else:
        w = np.asarray(sample_weight).ravel()
        if w.size != y_true.size:
            raise ValueError(f"sample_weight has {w.size} values for {y_true.size} labels")
        w = w.astype(np.int64 if w.dtype.kind in "biu" else np.float64)
    cm = np.zeros((k, k), w.dtype)
    np.add.at(cm, (it[keep], ip[keep]), w[keep])
    return cm


def _ratio(num, den, zero_division: float) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.full(np.broadcast(num, den).shape, zero_division, np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def sensitivity(cm, *, zero_division: float = np.nan) -> np.ndarray:
    """Se (recall) per class, TP / (TP + FN): (k,) from a (k, k) confusion matrix; ``zero_division`` for a class
    without true samples."""
    cm = np.asarray(cm)
    return _ratio(np.diag(cm), cm.sum(1), zero_division)


def positive_predictivity(cm, *, zero_division: float = np.nan) -> np.ndarray:
    """+P (precision) per class, TP / (TP + FP): (k,); ``zero_division`` for a class never predicted."""
    cm = np.asarray(cm)
    return _ratio(np.diag(cm), cm.sum(0), zero_division)


def specificity(cm, *, zero_division: float = np.nan) -> np.ndarray:
    """Sp per class, TN / (TN + FP): (k,) (one class against the rest)."""
    cm = np.asarray(cm, np.float64)
    tp, row, col = np.diag(cm), cm.sum(1), cm.sum(0)
    tn = cm.sum() - row - col + tp
    return _ratio(tn, tn + col - tp, zero_division)


def f1_score(cm, *, zero_division: float = np.nan) -> np.ndarray:
    """F1 per class, 2 TP / (2 TP + FP + FN) (the harmonic mean of Se and +P): (k,)."""
    cm = np.asarray(cm)
    return _ratio(2 * np.diag(cm), cm.sum(1) + cm.sum(0), zero_division)


def accuracy(cm) -> float:
    """Fraction of samples on the diagonal (NaN for an empty matrix)."""
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def cohen_kappa(cm) -> float:
    """Cohen's κ = (p_o - p_e) / (1 - p_e), p_e = Σ_i row_i · col_i / n² (Cohen 1960); NaN when undefined.

    Reference: ``sklearn.metrics.cohen_kappa_score``, equal within 1e-12.
    """
    cm = np.asarray(cm, np.float64)
    total = cm.sum()
    if total <= 0:
        return float("nan")
    po = np.trace(cm) / total
    pe = float((cm.sum(0) * cm.sum(1)).sum() / total ** 2)
    return float((po - pe) / (1 - pe)) if pe != 1 else float("nan")


def j_index(cm, *, s: int = 1, v: int = 2) -> float:
    """j = Se_S + Se_V + +P_S + +P_V (0 .. 4) of an AAMI confusion matrix (N, S, V, F, Q order: S = 1, V = 2);
    an undefined ratio counts 0."""
    se, ppv = sensitivity(cm), positive_predictivity(cm)
    return float(sum(0.0 if np.isnan(x) else float(x) for x in (se[s], ppv[s], se[v], ppv[v])))


def jk_index(cm, *, s: int = 1, v: int = 2) -> float:
    """jκ = κ / 2 + j / 8 (0 .. 1 for κ >= 0), the index Mondéjar-Guerra et al. rank AAMI classifiers by.

    Reference: V. Mondéjar-Guerra, J. Novo, J. Rouco, M. G. Penedo, M. Ortega, "Heartbeat classification fusing
    temporal and morphological information of ECGs via ensemble of classifiers", Biomedical Signal Processing and
    Control 47 (2019) 41-48, and the authors' code (github.com/mondejar/ecg-classification,
    ``python/evaluation_AAMI.py``: ``Ijk = 0.5 * kappa + 0.125 * Ij``). Their code also leaves V beats called F
    out of FP_V (the EC57 exception); this function does not, so the value is that of the plain matrix.
    """
    return 0.5 * cohen_kappa(cm) + j_index(cm, s=s, v=v) / 8.0


# --------------------------------------------------------------------------------------------- scores and curves

def _binary(y_true, what: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true).ravel()
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError(f"{what} must be binary (0/1 or bool); got values {np.unique(y)[:5].tolist()}")
        y = y == 1
    return y


def _clf_curve(y_true, y_score, sample_weight):
    """(fps, tps, thresholds) at each distinct score, thresholds decreasing; as sklearn's
    ``confusion_matrix_at_thresholds`` (zero-weight samples dropped, stable descending order, float64 sums)."""
    y = _binary(y_true)
    s = np.asarray(y_score, np.float64).ravel()
    if s.size != y.size:
        raise ValueError(f"y_true has {y.size} values but y_score has {s.size}")
    if not np.isfinite(s).all():
        raise ValueError("y_score contains NaN or infinite values")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, np.float64).ravel()
        if w.size != y.size:
            raise ValueError(f"sample_weight has {w.size} values for {y.size} scores")
        keep = w != 0
        y, s, w = y[keep], s[keep], w[keep]
    order = np.argsort(-s, kind="stable")
    y, s = y[order].astype(np.float64), s[order]
    idx = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.zeros(0, np.intp)
    if w is None:
        tps = np.cumsum(y, dtype=np.float64)[idx]
        fps = 1 + idx.astype(np.float64) - tps
    else:
        w = w[order]
        tps = np.cumsum(y * w, dtype=np.float64)[idx]
        fps = np.cumsum((1 - y) * w, dtype=np.float64)[idx]
    return fps, tps, s[idx]


def _keep_corners(fps, tps, thresholds, corner):
    keep = np.flatnonzero(np.r_[True, corner, True])
    return fps[keep], tps[keep], thresholds[keep]


def roc_curve(y_true, y_score, *, sample_weight=None, drop_intermediate: bool = True):
    """ROC curve of binary targets and scores.

    Parameters
    ----------
    y_true : (n,) 0/1 or bool; y_score : (n,) higher = more likely positive; sample_weight : (n,) or None.
    drop_intermediate : leave out points collinear with their neighbours (the area is unchanged).

    Returns
    -------
    fpr, tpr, thresholds : (m,) each; thresholds decreasing from ``inf`` (the curve starts at (0, 0)); a rate
    whose class is absent is NaN. Reference: ``sklearn.metrics.roc_curve``.
    """
    fps, tps, thr = _clf_curve(y_true, y_score, sample_weight)
    if drop_intermediate and fps.size > 2:
        fps, tps, thr = _keep_corners(fps, tps, thr, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)))
    fps, tps, thr = np.r_[0.0, fps], np.r_[0.0, tps], np.r_[np.inf, thr]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thr


def roc_auc(y_true, y_score, *, sample_weight=None) -> float:
    """Area under the ROC curve (trapezoids; tied scores count ½, as Mann-Whitney U); NaN when only one class is
    present. Reference: ``sklearn.metrics.roc_auc_score``."""
    fpr, tpr, _ = roc_curve(y_true, y_score, sample_weight=sample_weight)
    if np.isnan(fpr[-1]) or np.isnan(tpr[-1]):
        return float("nan")
    return float(_trapezoid(tpr, fpr))


def precision_recall_curve(y_true, y_score, *, sample_weight=None, drop_intermediate: bool = False):
    """Precision-recall curve.

    Returns
    -------
    precision, recall : (m + 1,) with the final point (1, 0) appended, recall decreasing;
    thresholds : (m,) increasing. Without positives recall is NaN.
    Reference: ``sklearn.metrics.precision_recall_curve``.
    """
    fps, tps, thr = _clf_curve(y_true, y_score, sample_weight)
    if drop_intermediate and fps.size > 2:
        fps, tps, thr = _keep_corners(fps, tps, thr, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])))
    precision = _ratio(tps, tps + fps, 0.0)
    recall = tps / tps[-1] if tps.size and tps[-1] > 0 else np.full(tps.shape, np.nan)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1]


def average_precision(y_true, y_score, *, sample_weight=None) -> float:
    """Average precision AP = Σ_n (R_n - R_{n-1}) P_n, the step-wise area under the precision-recall curve (no
    interpolation); NaN without positives. Reference: ``sklearn.metrics.average_precision_score``."""
    precision, recall, _ = precision_recall_curve(y_true, y_score, sample_weight=sample_weight)
    if np.isnan(recall[0]):
        return float("nan")
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


pr_auc = average_precision  #: alias: the PR-AUC reported by the model families is the average precision


# --------------------------------------------------------------------------------------------- verification

def det_curve(genuine, impostor):
    """False accept and false reject rates at every threshold (accept when score >= t; scores are similarities).

    Parameters
    ----------
    genuine : (n_g,) scores of mated pairs; impostor : (n_i,) scores of non-mated pairs.

    Returns
    -------
    far, frr, thresholds : (m,) each, thresholds increasing over every distinct score and ``inf`` (FAR 0, FRR 1).
    FAR(t) = P(impostor >= t), FRR(t) = P(genuine < t). Reference: ``sklearn.metrics.det_curve`` (genuine =
    positive class), whose points are a subset of these.
    """
    g = np.sort(np.asarray(genuine, np.float64).ravel())
    i = np.sort(np.asarray(impostor, np.float64).ravel())
    if g.size == 0 or i.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    t = np.unique(np.concatenate([g, i, [np.inf]]))
    frr = np.searchsorted(g, t, side="left") / g.size
    far = (i.size - np.searchsorted(i, t, side="left")) / i.size
    return far, frr, t


def eer(genuine, impostor) -> tuple[float, float]:
    """Equal error rate and the threshold there: where FAR and FRR cross, linearly interpolated between the two
    thresholds around the crossing (see :func:`det_curve` for the rates)."""
    far, frr, t = det_curve(genuine, impostor)
    d = far - frr  # decreasing in t
    k = int(np.argmax(d <= 0))
    if k == 0:
        return float((far[0] + frr[0]) / 2), float(t[0])
    d0, d1 = d[k - 1], d[k]
    w = d0 / (d0 - d1) if d0 != d1 else 0.5
    rate = (1 - w) * (far[k - 1] + frr[k - 1]) / 2 + w * (far[k] + frr[k]) / 2
    hi = t[k] if np.isfinite(t[k]) else t[k - 1]
    return float(rate), float((1 - w) * t[k - 1] + w * hi)


# --------------------------------------------------------------------------------------------- bootstrap

def _nanquantile(a, q, axis=0):
    with warnings.catch_warnings():  # an all-NaN slice (a class absent from every resample) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(a, q, axis=axis)


def bootstrap_ci(statistic: Callable, *samples, n_resamples: int = 1000, confidence: float = 0.95,
                 method: str = "percentile", strata=None, seed: int = 0):
    """Bootstrap confidence interval of ``statistic(*samples)``.

    Parameters
    ----------
    statistic : function of the samples (resampled together, row-wise) returning a number or an array.
    samples : arrays with the same first dimension n (e.g. ``y_true, y_score``).
    n_resamples : bootstrap resamples; confidence : e.g. 0.95.
    method : ``"percentile"`` (the quantiles of the resampled statistic) or ``"basic"`` (the reverse-percentile,
        a.k.a. empirical bootstrap: ``[point - q_hi(d), point - q_lo(d)]``, ``d = statistic* - point``).
    strata : (n,) labels or None; rows are resampled with replacement within each stratum (keeps the class
        prevalences of the test set).
    seed : seed of ``numpy.random.default_rng``; the same seed gives the same interval.

    Returns
    -------
    low, high : shaped like the statistic; NaN resamples (an undefined metric) are ignored.
    """
    if not samples:
        raise ValueError("bootstrap_ci needs at least one sample array")
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"samples must have the same length; got {[len(a) for a in arrays]}")
    if method not in ("percentile", "basic"):
        raise ValueError(f"method must be 'percentile' or 'basic', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if strata is None:
        groups = [np.arange(n)]
    else:
        strata = np.asarray(strata)
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} labels for {n} rows")
        groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    rng = np.random.default_rng(seed)
    point = np.asarray(statistic(*arrays), np.float64)
    stats = np.empty((n_resamples,) + point.shape)
    for b in range(n_resamples):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        stats[b] = statistic(*(a[idx] for a in arrays))
    q_lo, q_hi = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    if method == "percentile":
        return _nanquantile(stats, q_lo), _nanquantile(stats, q_hi)
    deltas = stats - point
    return point - _nanquantile(deltas, q_hi), point - _nanquantile(deltas, q_lo)
