"""Quality scores against scikit-learn on real MIT-BIH MFCC rows, float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from ecgcore.cluster import (KMeans, calinski_harabasz, davies_bouldin, normalized_mutual_info, purity,
                             silhouette)

REL = 1e-6


@pytest.fixture(scope="module")
def clustered(mitdb_mfcc):
    X, rec = mitdb_mfcc
    labels = KMeans(12, random_state=0, max_iter=50).fit(X).labels_
    return X, labels, rec


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_davies_bouldin_and_calinski_harabasz(clustered, dtype):
    X, labels, _ = clustered
    Xd = X.astype(dtype)
    # Computed in float64 whatever the input: compare with scikit-learn on the float64 values.
    ref = Xd.astype(np.float64)
    assert davies_bouldin(Xd, labels) == pytest.approx(metrics.davies_bouldin_score(ref, labels), rel=REL)
    assert calinski_harabasz(Xd, labels) == pytest.approx(metrics.calinski_harabasz_score(ref, labels), rel=REL)


def test_scores_accept_any_label_values(clustered):
    X, labels, _ = clustered
    named = np.array([f"c{v}" for v in labels])
    assert davies_bouldin(X, named) == pytest.approx(metrics.davies_bouldin_score(X, named), rel=REL)
    assert calinski_harabasz(X, labels * 7 + 3) == pytest.approx(metrics.calinski_harabasz_score(X, labels), rel=REL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silhouette_sampled_like_sklearn(clustered, dtype):
    X, labels, _ = clustered
    Xd = X.astype(dtype)
    got = silhouette(Xd, labels, sample_size=3000, random_state=5)
    ref = metrics.silhouette_score(Xd.astype(np.float64), labels, sample_size=3000, random_state=5)
    assert got == pytest.approx(ref, rel=REL)


def test_silhouette_full_small(clustered):
    X, labels, _ = clustered
    X, labels = X[:1500], labels[:1500]
    assert silhouette(X, labels) == pytest.approx(metrics.silhouette_score(X, labels), rel=REL)
    # A singleton cluster scores 0, as in scikit-learn.
    lab = labels.copy()
    lab[0] = 99
    assert silhouette(X, lab) == pytest.approx(metrics.silhouette_score(X, lab), rel=REL)


def test_degenerate_scores_follow_sklearn():
    X = np.repeat(np.arange(4.0)[:, None], 3, axis=0) * np.ones((1, 2))
    lab = np.repeat(np.arange(4), 3)
    assert calinski_harabasz(X, lab) == metrics.calinski_harabasz_score(X, lab) == 1.0
    assert davies_bouldin(X, lab) == pytest.approx(metrics.davies_bouldin_score(X, lab))


def test_score_errors(clustered):
    X, labels, _ = clustered
    with pytest.raises(ValueError, match="Valid values are 2"):
        davies_bouldin(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="one entry per row"):
        calinski_harabasz(X, labels[:-1])
    with pytest.raises(ValueError, match="euclidean"):
        silhouette(X, labels, metric="cosine")
    with pytest.raises(ValueError, match="sample_size"):
        silhouette(X, labels, sample_size=0)


def test_nmi_and_purity_against_record_ids(clustered):
    _, labels, rec = clustered
    for method in ("arithmetic", "geometric", "min", "max"):
        assert normalized_mutual_info(rec, labels, average_method=method) == pytest.approx(
            metrics.normalized_mutual_info_score(rec, labels, average_method=method), rel=1e-10)
    c = metrics.cluster.contingency_matrix(rec, labels)
    assert purity(rec, labels) == pytest.approx(c.max(axis=0).sum() / c.sum(), rel=1e-12)
    assert normalized_mutual_info(rec, rec) == pytest.approx(1.0)
    assert normalized_mutual_info([1, 1, 1], [2, 2, 2]) == metrics.normalized_mutual_info_score([1, 1, 1], [2, 2, 2])
    assert normalized_mutual_info([1, 1, 2, 2], [1, 1, 1, 1]) == 0.0
