"""k-means on real features: ecgcore vs scikit-learn KMeans (lloyd), MiniBatchKMeans and faiss.

Rows: librosa MFCC (13 + deltas = 39) of MIT-BIH lead 0, 0.5 s frames every 0.25 s, all 48
records (346,608 rows); the first 120,000 rows of a seeded shuffle are clustered (float32).
Run: PYTHONPATH=python python -m pytest benchmarks/bench_kmeans.py --benchmark-only -q
Each benchmark records the final inertia in extra_info; quality is asserted against scikit-learn.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from ecgcore import _core
from ecgcore.cluster import KMeans

N_ROWS = 120_000
MAX_ITER = 25  # fixed iteration budget (tol=0) for the speed comparison: same work for everyone
CACHE = Path(tempfile.gettempdir()) / "ecgcore-bench" / "mitdb_mfcc39.npy"  # built once, reused


def _mfcc(mitdb_dir, record):
    import librosa
    import wfdb

    x = wfdb.rdrecord(str(mitdb_dir / record), channels=[0]).p_signal[:, 0]
    m = librosa.feature.mfcc(y=x, sr=360, n_mfcc=13, n_fft=180, hop_length=90, n_mels=23, fmax=180, center=False)
    return np.vstack([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)]).T


@pytest.fixture(scope="session")
def features(mitdb_dir, mitdb_records):
    if not CACHE.exists():
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.save(CACHE, np.concatenate([_mfcc(mitdb_dir, r) for r in mitdb_records]).astype(np.float32))
    x = np.load(CACHE)
    return np.ascontiguousarray(x[np.random.default_rng(0).permutation(len(x))[:N_ROWS]])


@pytest.fixture(scope="session", params=[100, 500])
def k_init(request, features):
    k = request.param
    return k, _core.kmeans_plusplus(features, k, 0)[0]


def _record(benchmark, inertia, **extra):
    benchmark.extra_info["inertia"] = float(inertia)
    benchmark.extra_info.update(extra)


# ---- Lloyd iterations from the same initial centers (fixed iteration count) ---------------------
def test_lloyd_ecgcore(benchmark, features, k_init):
    k, init = k_init
    benchmark.group = f"kmeans-lloyd-k{k}"
    km = benchmark.pedantic(lambda: KMeans(k, init=init, max_iter=MAX_ITER, tol=0).fit(features), rounds=3)
    _record(benchmark, km.inertia_)


def test_lloyd_sklearn(benchmark, features, k_init):
    from sklearn.cluster import KMeans as SkKMeans

    k, init = k_init
    benchmark.group = f"kmeans-lloyd-k{k}"
    km = benchmark.pedantic(lambda: SkKMeans(k, init=init, n_init=1, max_iter=MAX_ITER, tol=0,
                                             algorithm="lloyd").fit(features), rounds=3)
    ours = KMeans(k, init=init, max_iter=MAX_ITER, tol=0).fit(features)
    _record(benchmark, km.inertia_)
    assert abs(ours.inertia_ / km.inertia_ - 1) < 0.01


def test_lloyd_faiss(benchmark, features, k_init):
    faiss = pytest.importorskip("faiss")
    k, init = k_init
    benchmark.group = f"kmeans-lloyd-k{k}"

    def run():
        f = faiss.Kmeans(features.shape[1], k, niter=MAX_ITER, seed=0, max_points_per_centroid=10**9)
        f.train(features, init_centroids=init)
        return f

    f = benchmark.pedantic(run, rounds=3)
    _record(benchmark, f.index.search(features, 1)[0].sum())


# ---- whole fit as a user runs it (k-means++ + Lloyd to convergence) ------------------------------
@pytest.mark.parametrize("k", [100, 500])
def test_fit_ecgcore(benchmark, features, k):
    benchmark.group = f"kmeans-fit-k{k}"
    km = benchmark.pedantic(lambda: KMeans(k, random_state=0).fit(features), rounds=1)
    _record(benchmark, km.inertia_, n_iter=km.n_iter_)


@pytest.mark.parametrize("k", [100, 500])
def test_fit_sklearn(benchmark, features, k):
    from sklearn.cluster import KMeans as SkKMeans

    benchmark.group = f"kmeans-fit-k{k}"
    km = benchmark.pedantic(lambda: SkKMeans(k, random_state=0, n_init=1, algorithm="lloyd").fit(features),
                            rounds=1)
    _record(benchmark, km.inertia_, n_iter=km.n_iter_)
    ours = KMeans(k, random_state=0).fit(features)
    assert ours.inertia_ <= km.inertia_ * 1.01


@pytest.mark.parametrize("k", [100, 500])
def test_fit_sklearn_minibatch(benchmark, features, k):
    from sklearn.cluster import MiniBatchKMeans

    benchmark.group = f"kmeans-fit-k{k}"
    km = benchmark.pedantic(lambda: MiniBatchKMeans(k, random_state=0, n_init=1, batch_size=9300,
                                                    reassignment_ratio=0.0).fit(features), rounds=1)
    inertia = float(((features - km.cluster_centers_[km.predict(features)]) ** 2).sum())
    _record(benchmark, inertia)
    ours = KMeans(k, random_state=0).fit(features)
    assert ours.inertia_ <= inertia


@pytest.mark.parametrize("k", [100, 500])
def test_fit_faiss(benchmark, features, k):
    faiss = pytest.importorskip("faiss")
    benchmark.group = f"kmeans-fit-k{k}"

    def run():
        f = faiss.Kmeans(features.shape[1], k, niter=300, seed=0, max_points_per_centroid=10**9)
        f.train(features)
        return f

    f = benchmark.pedantic(run, rounds=1)
    _record(benchmark, f.index.search(features, 1)[0].sum())


# ---- HuBERT-ECG's streaming recipe: one pass of partial_fit over batches of 9300 rows --------------
@pytest.mark.parametrize("k", [100, 500])
def test_partial_fit_ecgcore(benchmark, features, k):
    benchmark.group = f"kmeans-partial-fit-k{k}"

    def run():
        km = KMeans(k, random_state=42, normalize=True, compute_labels=False)
        for i in range(0, len(features), 9300):
            km.partial_fit(features[i:i + 9300])
        return km

    km = benchmark.pedantic(run, rounds=1)
    _record(benchmark, km.inertia(features))


@pytest.mark.parametrize("k", [100, 500])
def test_partial_fit_sklearn(benchmark, features, k):
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.preprocessing import Normalizer

    benchmark.group = f"kmeans-partial-fit-k{k}"
    xn = Normalizer().fit_transform(features)

    def run():
        km = MiniBatchKMeans(k, random_state=42, n_init=1, reassignment_ratio=0.0, batch_size=9300,
                             compute_labels=False)
        for i in range(0, len(xn), 9300):
            km.partial_fit(xn[i:i + 9300])
        return km

    km = benchmark.pedantic(run, rounds=1)
    _record(benchmark, float(((xn - km.cluster_centers_[km.predict(xn)]) ** 2).sum()))
