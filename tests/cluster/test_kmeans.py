"""k-means: parity with scikit-learn on real MIT-BIH MFCC rows, determinism, batches, dtypes, errors."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.cluster import MiniBatchKMeans
from sklearn.preprocessing import Normalizer

from ecgcore import _core
from ecgcore.cluster import KMeans, l2_normalize, load_model, save_model

DTYPES = [np.float32, np.float64]
# Same initial centers -> same labels; inertia agrees to float rounding of the two dtypes.
INERTIA_RTOL = {np.float32: 1e-4, np.float64: 1e-9}


@pytest.fixture(scope="module")
def rows(mitdb_mfcc):
    return mitdb_mfcc[0]


def _init(X, k, seed=0):
    return _core.kmeans_plusplus(X, k, seed)[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [8, 40])
def test_lloyd_matches_sklearn_from_same_init(rows, dtype, k):
    X = rows.astype(dtype)
    init = _init(X, k)
    ours = KMeans(k, init=init, max_iter=100).fit(X)
    ref = SkKMeans(k, init=init, n_init=1, max_iter=100, algorithm="lloyd").fit(X)
    assert ours.cluster_centers_.dtype == dtype
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=INERTIA_RTOL[dtype])
    agree = np.mean(ours.labels_ == ref.labels_)
    # float32 near-ties break differently over many iterations (paths drift apart slightly);
    # a single step agrees on all but a handful of rows.
    assert agree >= (1.0 if dtype == np.float64 else 0.99), agree
    one = KMeans(k, init=init, max_iter=1).fit(X)
    ref_one = SkKMeans(k, init=init, n_init=1, max_iter=1, algorithm="lloyd").fit(X)
    assert np.mean(one.labels_ == ref_one.labels_) >= (1.0 if dtype == np.float64 else 0.9995)
    if dtype == np.float64:
        assert ours.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-9)


def test_kmeanspp_quality_close_to_sklearn(rows):
    # Different generators pick different seeds; over 3 restarts the optimum found is comparable.
    ours = KMeans(20, n_init=3, random_state=0).fit(rows)
    ref = SkKMeans(20, n_init=3, random_state=0, algorithm="lloyd").fit(rows)
    assert abs(ours.inertia_ / ref.inertia_ - 1) < 0.02


def test_kmeanspp_returns_rows_and_distinct_indices(rows):
    centers, idx = _core.kmeans_plusplus(rows, 30, 5)
    assert len(set(idx.tolist())) == 30
    np.testing.assert_array_equal(centers, rows[idx])


@pytest.mark.parametrize("dtype", DTYPES)
def test_minibatch_matches_sklearn_partial_fit(rows, dtype):
    X = rows.astype(dtype)
    init = _init(X, 16, seed=3)
    ours = KMeans(16, init=init)
    ref = MiniBatchKMeans(16, init=init, n_init=1, reassignment_ratio=0.0, batch_size=2000)
    for batch in np.array_split(X, 10):
        ours.partial_fit(batch)
        ref.partial_fit(batch)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=tol, atol=tol * 10)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=tol)
    np.testing.assert_array_equal(ours.counts_, ref._counts)


def test_minibatch_inertia_not_worse_than_sklearn_one_pass(rows):
    # HuBERT-ECG's recipe: one shuffled pass of partial_fit on L2-normalised rows.
    order = np.random.default_rng(0).permutation(len(rows))
    ours = KMeans(20, random_state=42, normalize=True)
    ref = MiniBatchKMeans(20, random_state=42, n_init=1, reassignment_ratio=0.0, batch_size=2000)
    Xn = Normalizer().fit_transform(rows)
    for idx in np.array_split(order, 10):
        ours.partial_fit(rows[idx])
        ref.partial_fit(Xn[idx])
    ours_sse = ours.inertia(rows)
    ref_sse = ((Xn - ref.cluster_centers_[ref.predict(Xn)]) ** 2).sum()
    assert ours_sse <= ref_sse * 1.05


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_and_transform_match_sklearn(rows, dtype):
    X = rows.astype(dtype)
    ours = KMeans(25, random_state=1, max_iter=20).fit(X)
    ref = SkKMeans(25, init=ours.cluster_centers_, n_init=1, max_iter=1)
    ref.cluster_centers_ = ours.cluster_centers_.copy()
    ref._n_threads, ref._n_features_out = 1, 25
    ref.n_features_in_ = X.shape[1]
    assert np.mean(ours.predict(X) == ref.predict(X)) >= 0.9999
    scale = np.abs(ref.transform(X)).max()
    np.testing.assert_allclose(ours.transform(X), ref.transform(X), rtol=0,
                               atol=(1e-4 if dtype == np.float32 else 1e-9) * scale)
    sq = _core.kmeans_distances(X, ours.cluster_centers_, True)
    np.testing.assert_allclose(np.sqrt(sq), ours.transform(X), rtol=1e-5, atol=1e-5 * scale)


def test_normalize_applies_at_fit_and_predict(rows):
    ours = KMeans(12, random_state=2, normalize=True).fit(rows)
    np.testing.assert_array_equal(ours.predict(rows), ours.labels_)
    Xn = Normalizer().fit_transform(rows)
    np.testing.assert_allclose(l2_normalize(rows), Xn, rtol=1e-12, atol=1e-15)
    # The same fit as scikit-learn on Normalizer output, from the same seeding.
    ref = SkKMeans(12, init=_core.kmeans_plusplus(Xn, 12, ours.seed_)[0], n_init=1, algorithm="lloyd").fit(Xn)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    zero = np.zeros((1, rows.shape[1]))
    np.testing.assert_array_equal(l2_normalize(zero), zero)


@pytest.mark.parametrize("workers", [1, 2])
def test_deterministic_across_threads_and_runs(rows, workers):
    X = rows.astype(np.float32)
    ref = KMeans(30, random_state=7, n_init=2, workers=1).fit(X)
    got = KMeans(30, random_state=7, n_init=2, workers=workers).fit(X)
    np.testing.assert_array_equal(got.cluster_centers_, ref.cluster_centers_)
    np.testing.assert_array_equal(got.labels_, ref.labels_)
    assert got.inertia_ == ref.inertia_ and got.n_iter_ == ref.n_iter_
    mb_ref, mb = KMeans(30, random_state=7, workers=1), KMeans(30, random_state=7, workers=workers)
    for batch in np.array_split(X, 4):
        mb_ref.partial_fit(batch)
        mb.partial_fit(batch)
    np.testing.assert_array_equal(mb.cluster_centers_, mb_ref.cluster_centers_)
    np.testing.assert_array_equal(mb.transform(X[:500]), mb_ref.transform(X[:500]))


def test_kernels_deterministic_across_threads_at_size(rows):
    # Small kernels run on one thread whatever `workers` says (a thread needs ~2^24 multiply-adds
    # to pay for itself); 60,000 rows x 64 centers is large enough for two threads in every kernel.
    X = np.tile(rows, (3, 1)).astype(np.float32)
    X += np.random.default_rng(0).normal(0, 1e-3, X.shape).astype(np.float32)
    init = _init(X, 64)
    one = _core.kmeans_lloyd(X, init, 8, 0.0, 1)
    two = _core.kmeans_lloyd(X, init, 8, 0.0, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(_core.kmeans_plusplus(X, 64, 5, 0, 1)[1], _core.kmeans_plusplus(X, 64, 5, 0, 2)[1])
    for fn in (lambda w: _core.kmeans_assign(X, init, w),
               lambda w: (_core.kmeans_distances(X, init, True, w),),
               lambda w: _core.kmeans_minibatch_update(X, init, np.zeros(64), w)):
        for a, b in zip(fn(1), fn(2)):
            np.testing.assert_array_equal(a, b)


def test_different_seeds_differ(rows):
    a = KMeans(10, random_state=1, max_iter=1).fit(rows)
    b = KMeans(10, random_state=2, max_iter=1).fit(rows)
    assert not np.array_equal(a.cluster_centers_, b.cluster_centers_)


def test_batch_consistency(rows):
    km = KMeans(15, random_state=0, max_iter=30).fit(rows)
    parts = np.array_split(rows, 7)
    np.testing.assert_array_equal(km.predict(rows), np.concatenate([km.predict(p) for p in parts]))
    np.testing.assert_array_equal(km.transform(rows), np.concatenate([km.transform(p) for p in parts]))
    assert km.inertia(rows) == pytest.approx(sum(km.inertia(p) for p in parts), rel=1e-12)
    assert km.inertia(rows) == pytest.approx(km.inertia_, rel=1e-12)


def test_empty_cluster_is_relocated_like_sklearn(rows):
    X = rows[:3000]
    init = _init(X, 10)
    init[3] = X.max(axis=0) * 50  # far from every row: empty after the first assignment
    ours = KMeans(10, init=init, max_iter=50).fit(X)
    ref = SkKMeans(10, init=init, n_init=1, max_iter=50, algorithm="lloyd").fit(X)
    assert np.bincount(ours.labels_, minlength=10).min() > 0
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)


def test_minibatch_center_without_rows_stays(rows):
    X = rows[:2000]
    init = _init(X, 6)
    init[2] = X.max(axis=0) * 50
    km = KMeans(6, init=init).partial_fit(X)
    np.testing.assert_array_equal(km.cluster_centers_[2], init[2])
    assert km.counts_[2] == 0 and km.counts_.sum() == len(X)


def test_save_load_roundtrip(rows, tmp_path):
    km = KMeans(9, random_state=4, normalize=True).fit(rows)
    path = save_model(km, tmp_path / "km.npz", features_kind="mfcc")
    back = load_model(path)
    assert back.metadata_["n_clusters"] == 9 and back.metadata_["n_features"] == 39
    assert back.metadata_["normalize"] is True and back.metadata_["features_kind"] == "mfcc"
    assert back.metadata_["seed"] == 4 == back.seed_
    np.testing.assert_array_equal(back.cluster_centers_, km.cluster_centers_)
    np.testing.assert_array_equal(back.predict(rows), km.predict(rows))
    back.partial_fit(rows[:1000])  # a loaded model keeps streaming
    assert back.counts_.sum() == km.counts_.sum() + 1000


def test_bad_model_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an ecgcore k-means model"):
        load_model(tmp_path / "other.npz")


def test_bad_arguments(rows):
    with pytest.raises(ValueError, match="n_samples=5 should be >= n_clusters=10"):
        KMeans(10).fit(rows[:5])
    with pytest.raises(ValueError, match="init must have shape"):
        KMeans(4, init=np.zeros((3, 39))).fit(rows)
    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(0).fit(rows)
    with pytest.raises(ValueError, match="init must be"):
        KMeans(3, init="kmeans").fit(rows)
    bad = rows[:100].copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        KMeans(3).fit(bad)
    with pytest.raises(ValueError, match="not fitted"):
        KMeans(3).predict(rows)
    km = KMeans(3, random_state=0).fit(rows[:500])
    with pytest.raises(ValueError, match="features"):
        km.predict(rows[:10, :20])
    with pytest.raises(ValueError, match="shape"):
        km.predict(rows[0])
    with pytest.raises(ValueError, match="max_iter"):
        _core.kmeans_lloyd(rows, rows[:3], 0)
    with pytest.raises(ValueError, match="n_clusters"):
        _core.kmeans_plusplus(rows[:3], 4, 0)


def test_gil_released_during_fit(rows):
    """While a single-threaded fit runs in another thread, this thread keeps running Python."""
    X = np.tile(rows, (3, 1)).astype(np.float32)
    init = _init(X, 64)
    ticks, box = [], {}

    def work():
        t = time.perf_counter()
        _core.kmeans_lloyd(X, init, 60, 0.0, 1)
        box["span"] = (t, time.perf_counter())

    th = threading.Thread(target=work)
    th.start()
    while th.is_alive():
        ticks.append(time.perf_counter())
    th.join()
    t0, t1 = box["span"]
    inside = [t for t in ticks if t0 <= t <= t1]
    assert t1 - t0 > 0.05, "kernel too short to observe"
    gaps = np.diff([t0, *inside, t1])
    # Holding the GIL would freeze this loop for the whole call; allow scheduler hiccups.
    assert gaps.max() < 0.5 * (t1 - t0), (gaps.max(), t1 - t0)
