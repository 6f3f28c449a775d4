"""k-means with scikit-learn's method names over ecgcore's C++ kernels, plus .npz model files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._fs import atomic_write
from .._native import core, threads
from .._version import __version__

__all__ = ["KMeans", "l2_normalize", "load_model", "save_model"]

MODEL_FORMAT = "ecgcore.kmeans/1"


def _rows(X, name: str = "X", dtype=None) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, n_features), got an array with {X.ndim} dimensions")
    if dtype is not None:
        return np.ascontiguousarray(X, dtype=dtype)
    return np.ascontiguousarray(X, dtype=np.float32 if X.dtype == np.float32 else np.float64)


def l2_normalize(X, *, workers: int | None = None) -> np.ndarray:
    """Rows divided by their Euclidean norm (all-zero rows stay zero).

    Parameters
    ----------
    X : (n_samples, n_features) array, float32 or float64

    Returns
    -------
    (n_samples, n_features) array of X's float dtype

    Notes
    -----
    Reference: ``sklearn.preprocessing.Normalizer(norm="l2")``; equal within 1 ulp-scale (1e-6
    relative for float32, 1e-12 for float64).
    """
    return core.l2_normalize_rows(_rows(X), threads(workers))


def _resolve_seed(random_state) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().entropy % (1 << 63))
    if isinstance(random_state, (int, np.integer)):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 1 << 63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    raise ValueError(f"random_state must be None, an int or a numpy Generator/RandomState, got {random_state!r}")


class KMeans:
    """k-means clustering: k-means++ seeding, Lloyd iterations, and mini-batch ``partial_fit``.

    Parameters
    ----------
    n_clusters : int
    init : {"k-means++", "random"} or (n_clusters, n_features) array
        "k-means++" is scikit-learn's greedy variant (2 + ln k local trials); "random" picks
        distinct rows. An array is used as given (``n_init`` is then 1).
    n_init : int
        Restarts of ``fit`` with different seeds; the lowest inertia wins.
    max_iter : int
        Lloyd iterations per restart.
    tol : float
        Stop when the summed squared center shift is <= tol * mean(var(X, axis=0)).
    random_state : None, int, numpy Generator or RandomState
        Same seed -> same centers and labels for any ``workers`` (the seed used is in ``seed_``).
    normalize : bool
        L2-normalise rows (scikit-learn ``Normalizer``) before fitting AND before every
        ``predict``/``transform``/``partial_fit``, so that labels match the fit (HuBERT-ECG
        fitted on normalised rows but predicted on raw ones; SPEC 5.3).
    compute_labels : bool
        After each ``partial_fit``, set ``labels_``/``inertia_`` for the batch under the updated
        centers (an extra pass, as in scikit-learn's MiniBatchKMeans).
    workers : int, optional
        Threads (None = all cores).

    Attributes
    ----------
    cluster_centers_ : (n_clusters, n_features) array
    labels_ : (n_samples,) int32 array (of the last ``fit``/``partial_fit`` batch)
    inertia_ : float
        Sum of squared distances of the rows (of that batch) to their centers.
    n_iter_ : int
        Lloyd iterations of the best restart (``fit``), or mini-batch steps (``partial_fit``).
    counts_ : (n_clusters,) float64 array
        Rows each center has absorbed (mini-batch learning rates; set by ``fit`` too).
    seed_ : int

    Notes
    -----
    Reference: ``sklearn.cluster.KMeans(algorithm="lloyd")`` and ``MiniBatchKMeans.partial_fit``
    (``reassignment_ratio=0``). From the same initial centers the labels are identical and the
    inertia equal within 1e-9 relative (float64) or 1e-4 (float32); k-means++ uses ecgcore's
    own generator, so with the same seed value the inertia is comparable (within ~1 %), not
    identical. Empty clusters during ``fit`` are re-seeded with the rows farthest from their
    centers (scikit-learn's rule); during ``partial_fit`` a center that gets no rows stays put.
    """

    def __init__(self, n_clusters: int = 8, *, init="k-means++", n_init: int = 1, max_iter: int = 300,
                 tol: float = 1e-4, random_state=None, normalize: bool = False, compute_labels: bool = True,
                 workers: int | None = None):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.normalize = normalize
        self.compute_labels = compute_labels
        self.workers = workers

    # ------------------------------------------------------------------ helpers
    def _check_params(self):
        if int(self.n_clusters) < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        if int(self.n_init) < 1:
            raise ValueError(f"n_init must be >= 1, got {self.n_init}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")
        if not float(self.tol) >= 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if isinstance(self.init, str) and self.init not in ("k-means++", "random"):
            raise ValueError(f"init must be 'k-means++', 'random' or an array of centers, got {self.init!r}")

    def _prepare(self, X, fitting: bool) -> np.ndarray:
        if fitting and not hasattr(self, "cluster_centers_"):
            X = _rows(X)
        else:
            self._check_fitted()
            X = _rows(X, dtype=self.cluster_centers_.dtype)
            if X.shape[1] != self.cluster_centers_.shape[1]:
                raise ValueError(
                    f"X has {X.shape[1]} features but the model was fitted on {self.cluster_centers_.shape[1]}")
        if self.normalize:
            X = core.l2_normalize_rows(X, threads(self.workers))
        return X

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise ValueError("this KMeans is not fitted yet: call fit or partial_fit first")

    def _initial_centers(self, X: np.ndarray, seed: int) -> np.ndarray:
        k = int(self.n_clusters)
        if X.shape[0] < k:
            raise ValueError(f"n_samples={X.shape[0]} should be >= n_clusters={k}")
        if not isinstance(self.init, str):
            init = _rows(self.init, "init", dtype=X.dtype)
            if init.shape != (k, X.shape[1]):
                raise ValueError(f"init must have shape ({k}, {X.shape[1]}), got {init.shape}")
            return core.l2_normalize_rows(init, threads(self.workers)) if self.normalize else init.copy()
        if self.init == "random":
            rows = np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)
            return X[np.sort(rows)].copy()
        centers, _ = core.kmeans_plusplus(X, k, seed, 0, threads(self.workers))
        return centers

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None) -> "KMeans":
        """Lloyd k-means on all rows of X : (n_samples, n_features); returns self."""
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported")
        self._check_params()
        for attr in ("cluster_centers_",):
            self.__dict__.pop(attr, None)
        X = self._prepare(X, fitting=True)
        self.seed_ = _resolve_seed(self.random_state)
        n_init = 1 if not isinstance(self.init, str) else int(self.n_init)
        seeds = [self.seed_] if n_init == 1 else [
            int(s) for s in np.random.SeedSequence(self.seed_).generate_state(n_init, dtype=np.uint64) >> np.uint64(1)]
        best = None
        for seed in seeds:
            init = self._initial_centers(X, seed)
            centers, labels, inertia, n_iter = core.kmeans_lloyd(
                X, init, int(self.max_iter), float(self.tol), threads(self.workers))
            if best is None or inertia < best[2]:
                best = (centers, labels, inertia, n_iter)
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        self.counts_ = np.bincount(self.labels_, minlength=int(self.n_clusters)).astype(np.float64)
        self.n_features_in_ = X.shape[1]
        self.n_steps_ = 0
        return self

    def partial_fit(self, X, y=None, sample_weight=None) -> "KMeans":
        """One mini-batch step on X : (batch_rows, n_features); returns self.

        The first call seeds the centers from this batch (so it needs >= n_clusters rows);
        stream files one batch at a time for data that does not fit in memory.
        """
        if sample_weight is not None:
            raise ValueError("sample_weight is not supported")
        first = not hasattr(self, "cluster_centers_")
        if first:
            self._check_params()
        X = self._prepare(X, fitting=True)
        if first:
            self.seed_ = _resolve_seed(self.random_state)
            self.cluster_centers_ = self._initial_centers(X, self.seed_)
            self.counts_ = np.zeros(int(self.n_clusters), dtype=np.float64)
            self.n_steps_ = 0
            self.n_features_in_ = X.shape[1]
        centers, counts, labels, inertia = core.kmeans_minibatch_update(
            X, self.cluster_centers_, self.counts_, threads(self.workers))
        self.cluster_centers_, self.counts_ = centers, counts
        self.n_steps_ += 1
        self.n_iter_ = self.n_steps_
        if self.compute_labels:
            self.labels_, self.inertia_ = core.kmeans_assign(X, centers, threads(self.workers))
        else:
            self.labels_, self.inertia_ = labels, inertia
        return self

    # ------------------------------------------------------------------ using
    def predict(self, X) -> np.ndarray:
        """Index of the nearest center of each row: X (n_samples, n_features) -> (n_samples,) int32."""
        X = self._prepare(X, fitting=False)
        return core.kmeans_assign(X, self.cluster_centers_, threads(self.workers))[0]

    def transform(self, X) -> np.ndarray:
        """Euclidean distances to every center: X (n_samples, n_features) -> (n_samples, n_clusters)."""
        X = self._prepare(X, fitting=False)
        return core.kmeans_distances(X, self.cluster_centers_, False, threads(self.workers))

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).labels_

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def inertia(self, X) -> float:
        """Sum of squared distances of the rows of X to their nearest centers."""
        X = self._prepare(X, fitting=False)
        return float(core.kmeans_assign(X, self.cluster_centers_, threads(self.workers))[1])

    def score(self, X, y=None) -> float:
        """Opposite of the inertia of X (scikit-learn's convention: higher is better)."""
        return -self.inertia(X)

    # ------------------------------------------------------------------ files
    def save(self, path, *, features_kind: str | None = None) -> Path:
        """Write the model to ``path`` (.npz) atomically; see :func:`save_model`."""
        return save_model(self, path, features_kind=features_kind)

    @classmethod
    def load(cls, path) -> "KMeans":
        return load_model(path)

    def __repr__(self) -> str:
        return (f"KMeans(n_clusters={self.n_clusters}, init={self.init if isinstance(self.init, str) else 'array'!r}, "
                f"n_init={self.n_init}, max_iter={self.max_iter}, tol={self.tol}, "
                f"random_state={self.random_state}, normalize={self.normalize})")


def save_model(model: KMeans, path, *, features_kind: str | None = None) -> Path:
    """Save a fitted :class:`KMeans` as ``.npz``: centers, counts and a JSON metadata record.

    Metadata: format, k, dims, normalize, features_kind, seed, inertia, n_iter, n_steps, dtype,
    ecgcore version. The file is written to a temporary name and renamed (no torn files).
    """
    model._check_fitted()
    path = Path(path)
    kind = features_kind if features_kind is not None else getattr(model, "features_kind_", None)
    meta = {
        "format": MODEL_FORMAT,
        "n_clusters": int(model.cluster_centers_.shape[0]),
        "n_features": int(model.cluster_centers_.shape[1]),
        "normalize": bool(model.normalize),
        "features_kind": kind,
        "seed": int(model.seed_),
        "inertia": float(getattr(model, "inertia_", float("nan"))),
        "n_iter": int(getattr(model, "n_iter_", 0)),
        "n_steps": int(getattr(model, "n_steps_", 0)),
        "max_iter": int(model.max_iter),
        "tol": float(model.tol),
        "dtype": str(model.cluster_centers_.dtype),
        "ecgcore_version": __version__,
    }
    with atomic_write(path, mode=0o600) as tmp, open(tmp, "wb") as fh:  # 0600 as before
        np.savez(fh, cluster_centers=model.cluster_centers_, counts=model.counts_, metadata=np.array(json.dumps(meta)))
    return path


def load_model(path) -> KMeans:
    """Read a model written by :func:`save_model`; ``metadata_`` holds its metadata record."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"k-means model not found: {path}")
    with np.load(path, allow_pickle=False) as z:
        missing = {"cluster_centers", "counts", "metadata"} - set(z.files)
        if missing:
            raise ValueError(f"{path} is not an ecgcore k-means model (missing {sorted(missing)})")
        meta = json.loads(str(z["metadata"]))
        centers, counts = z["cluster_centers"], z["counts"]
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path}: unknown model format {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
    model = KMeans(meta["n_clusters"], normalize=meta["normalize"], random_state=meta["seed"],
                   max_iter=meta.get("max_iter", 300), tol=meta.get("tol", 1e-4))
    model.cluster_centers_ = np.ascontiguousarray(centers)
    model.counts_ = np.asarray(counts, dtype=np.float64)
    model.seed_ = meta["seed"]
    model.inertia_ = meta["inertia"]
    model.n_iter_ = meta["n_iter"]
    model.n_steps_ = meta["n_steps"]
    model.n_features_in_ = meta["n_features"]
    model.features_kind_ = meta["features_kind"]
    model.metadata_ = meta
    return model
