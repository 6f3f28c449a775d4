"""Clustering quality scores: internal (Davies-Bouldin, Calinski-Harabasz, silhouette) in C++,
external (NMI, purity) against known labels such as AAMI beat classes."""
from __future__ import annotations

import numpy as np

from .._native import core, threads

__all__ = ["davies_bouldin", "calinski_harabasz", "silhouette", "normalized_mutual_info", "purity"]


def _rows(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got an array with {X.ndim} dimensions")
    if X.dtype != np.float32:
        X = X.astype(np.float64, copy=False)
    return X


def _encoded(X, labels):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise ValueError(
            f"labels must be 1-D with one entry per row of X ({X.shape[0]}), got shape {labels.shape}")
    classes, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64, copy=False).ravel(), len(classes)


def davies_bouldin(X, labels, *, workers: int | None = None) -> float:
    """Davies-Bouldin index (lower is better).

    Parameters
    ----------
    X : (n_samples, n_features) array, float32 or float64
    labels : (n_samples,) array of cluster labels (any values; 2 to n_samples - 1 distinct)
    workers : int, optional
        Threads (None = all cores).

    Returns
    -------
    float

    Notes
    -----
    Reference: ``sklearn.metrics.davies_bouldin_score``; equal within 1e-6 relative (computed in
    float64 whatever the input dtype, so float32 input matches scikit-learn on ``X.astype(float64)``).
    """
    X = _rows(X)
    codes, k = _encoded(X, labels)
    return float(core.davies_bouldin(X, codes, k, threads(workers)))


def calinski_harabasz(X, labels, *, workers: int | None = None) -> float:
    """Calinski-Harabasz index (variance ratio; higher is better).

    Parameters
    ----------
    X : (n_samples, n_features) array, float32 or float64
    labels : (n_samples,) array of cluster labels (2 to n_samples - 1 distinct)
    workers : int, optional

    Returns
    -------
    float

    Notes
    -----
    Reference: ``sklearn.metrics.calinski_harabasz_score``; equal within 1e-6 relative (float64
    accumulation).
    """
    X = _rows(X)
    codes, k = _encoded(X, labels)
    return float(core.calinski_harabasz(X, codes, k, threads(workers)))


def _random_state(random_state):
    # scikit-learn's check_random_state, so that a sampled silhouette picks the same rows.
    if random_state is None or random_state is np.random:
        return np.random.mtrand._rand
    if isinstance(random_state, (int, np.integer)):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {random_state!r}")


def silhouette(X, labels, *, metric: str = "euclidean", sample_size: int | None = None,
               random_state=None, workers: int | None = None) -> float:
    """Mean silhouette coefficient, optionally on a random sample of rows.

    Parameters
    ----------
    X : (n_samples, n_features) array, float32 or float64
    labels : (n_samples,) array of cluster labels
    metric : {"euclidean"}
    sample_size : int, optional
        Score a random subset of this many rows (the full score is O(n_samples^2)).
    random_state : None, int or numpy.random.RandomState
        Chooses the subset exactly as scikit-learn does (``permutation(n)[:sample_size]``).
    workers : int, optional

    Returns
    -------
    float

    Notes
    -----
    Reference: ``sklearn.metrics.silhouette_score`` (same sample for the same random_state); equal
    within 1e-6 relative. Distances are exact Euclidean in float64.
    """
    if metric != "euclidean":
        raise ValueError(f"only metric='euclidean' is implemented, got {metric!r}")
    X = _rows(X)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != X.shape[0]:
        raise ValueError(
            f"labels must be 1-D with one entry per row of X ({X.shape[0]}), got shape {labels.shape}")
    if sample_size is not None:
        sample_size = int(sample_size)
        if not 1 <= sample_size <= X.shape[0]:
            raise ValueError(f"sample_size must be between 1 and n_samples ({X.shape[0]}), got {sample_size}")
        idx = _random_state(random_state).permutation(X.shape[0])[:sample_size]
        X, labels = X[idx], labels[idx]
    codes, k = _encoded(X, labels)
    return float(np.mean(core.silhouette_samples(X, codes, k, threads(workers))))


def _contingency(labels_true, labels_pred) -> np.ndarray:
    labels_true = np.asarray(labels_true).ravel()
    labels_pred = np.asarray(labels_pred).ravel()
    if labels_true.shape != labels_pred.shape:
        raise ValueError(
            f"labels_true and labels_pred must have the same length, got {labels_true.size} and {labels_pred.size}")
    _, t = np.unique(labels_true, return_inverse=True)
    _, p = np.unique(labels_pred, return_inverse=True)
    n_t = int(t.max()) + 1 if t.size else 0
    n_p = int(p.max()) + 1 if p.size else 0
    return np.bincount(t.ravel() * n_p + p.ravel(), minlength=n_t * n_p).reshape(n_t, n_p).astype(np.float64)


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0]
    if counts.size <= 1:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels_true, labels_pred, *, average_method: str = "arithmetic") -> float:
    """Normalized mutual information between known classes (e.g. AAMI) and cluster labels.

    Parameters
    ----------
    labels_true, labels_pred : (n_samples,) arrays
    average_method : {"arithmetic", "geometric", "min", "max"}

    Returns
    -------
    float in [0, 1]

    Notes
    -----
    Reference: ``sklearn.metrics.normalized_mutual_info_score`` (natural log, same limit cases);
    equal within 1e-10.
    """
    c = _contingency(labels_true, labels_pred)
    if c.shape[0] == c.shape[1] and c.shape[0] in (0, 1):
        return 1.0
    n = c.sum()
    pi, pj = c.sum(axis=1), c.sum(axis=0)
    mi = 0.0
    if pi.size > 1 and pj.size > 1:
        nz = c > 0
        outer = np.outer(pi, pj)[nz]
        mi = float(np.clip(((c[nz] / n) * np.log(c[nz] * n / outer)).sum(), 0.0, None))
    if mi == 0.0:
        return 0.0
    h_true, h_pred = _entropy(pi), _entropy(pj)
    if average_method == "arithmetic":
        norm = (h_true + h_pred) / 2
    elif average_method == "geometric":
        norm = np.sqrt(h_true * h_pred)
    elif average_method == "min":
        norm = min(h_true, h_pred)
    elif average_method == "max":
        norm = max(h_true, h_pred)
    else:
        raise ValueError("average_method must be 'min', 'geometric', 'arithmetic' or 'max'")
    return float(mi / max(norm, np.finfo(np.float64).eps))


def purity(labels_true, labels_pred) -> float:
    """Cluster purity: the fraction of rows whose cluster's majority class is their own class.

    Parameters
    ----------
    labels_true, labels_pred : (n_samples,) arrays

    Returns
    -------
    float in (0, 1]

    Notes
    -----
    Reference: Manning et al., Introduction to Information Retrieval, sec. 16.3 (exact).
    """
    c = _contingency(labels_true, labels_pred)
    if c.size == 0:
        raise ValueError("purity needs at least one labelled row")
    return float(c.max(axis=0).sum() / c.sum())
