"""Full-size checks on every MIT-BIH record (slow): >= 100,000 MFCC rows, k = 100."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans

from ecgcore.cluster import KMeans, calinski_harabasz, davies_bouldin

pytestmark = pytest.mark.slow


def test_inertia_within_one_percent_of_sklearn_and_not_worse_than_minibatch(all_rows):
    ours = KMeans(100, random_state=0).fit(all_rows)
    ref = SkKMeans(100, random_state=0, n_init=1, algorithm="lloyd").fit(all_rows)
    assert abs(ours.inertia_ / ref.inertia_ - 1) < 0.01
    mb = MiniBatchKMeans(100, random_state=0, n_init=1, batch_size=9300, reassignment_ratio=0.0).fit(all_rows)
    mb_sse = float(((all_rows - mb.cluster_centers_[mb.predict(all_rows)]) ** 2).sum())
    assert ours.inertia_ <= mb_sse


def test_determinism_and_scores_at_scale(all_rows):
    a = KMeans(100, random_state=3, workers=1, max_iter=40).fit(all_rows)
    b = KMeans(100, random_state=3, workers=2, max_iter=40).fit(all_rows)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    from sklearn import metrics

    ref = all_rows.astype(np.float64)
    assert davies_bouldin(all_rows, a.labels_) == pytest.approx(metrics.davies_bouldin_score(ref, a.labels_), rel=1e-6)
    assert calinski_harabasz(all_rows, a.labels_) == pytest.approx(
        metrics.calinski_harabasz_score(ref, a.labels_), rel=1e-6)
