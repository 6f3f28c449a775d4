"""``ecgcore enroll / verify / revoke``: cancelable ECG verification on onnxruntime + the C++ core (no MLX).

- Two template-protection schemes (``--scheme``):

  * ``grp-iom`` (default, :mod:`.protect`): the network embeds each 5-s window under a fixed public key (the
    all-zero key: the embedding's key-independent part), the template is the direction of the mean unit window
    embedding, hashed by the subject's keyed Gaussian-random-projection Index-of-Max transform; only the 512
    indices (0..15) are stored, compared by the share of equal indices; for a model whose card names a cohort
    (``score_norm``: the bundled ``heartid-beats``) that share is cohort-normalised at verification time
    (:func:`.protect.cohort_normalise`, the cohort hashed under the probe's key; nothing more is stored).
  * ``seed``: the seed's key-in-the-network scheme (the subject's key is the network's second input; the
    template is the mean embedding), kept to reproduce the seed. Linkable by anyone holding the model (issue 23).

- The template store is an embedded SQLite file (default: ``heartid.sqlite`` in the user's data directory,
  ``$ECGCORE_HEARTID_STORE`` overrides). It holds only protected templates and the scheme that made them, never
  ECG samples, never keys.
- Keys are 100 random bits from :mod:`secrets`, kept in a key file apart from the store (mode 0600). They are
  never printed or logged.
- ``revoke`` deletes the template (the revocation is recorded) and, with ``--key-file``, replaces the key with a
  fresh one and keeps a salted SHA-256 digest of the old key, so that key is refused from then on (enrol) and
  never accepted (verify); with ``--record`` too it re-enrols at once.
"""
from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

from ._evaluate import similarity, template
from .keys import bits_to_key
from .preprocess import record_windows

SCHEMES = ("grp-iom", "seed")
DEFAULT_SCHEME = "grp-iom"
#: the bundled model each scheme uses when none is named: grp-iom hashes the beat-lda embedding (``heartid-beats``,
#: :mod:`.beats`); the seed scheme needs the seed network, whose second input is the key (``heartid``)
DEFAULT_MODELS = {"grp-iom": "heartid-beats", "seed": "heartid"}
DEFAULT_MODEL = DEFAULT_MODELS[DEFAULT_SCHEME]


def default_model(scheme: str = DEFAULT_SCHEME) -> str:
    """The bundled model ``enroll``/``verify`` use under ``scheme`` when no ``--model`` is given."""
    if scheme not in DEFAULT_MODELS:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    return DEFAULT_MODELS[scheme]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates (
    subject TEXT PRIMARY KEY,
    template BLOB NOT NULL,
    dim INTEGER NOT NULL,
    score TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    n_windows INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    enrolled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    subject TEXT NOT NULL,
    generation INTEGER NOT NULL,
    revoked_at REAL NOT NULL,
    key_salt BLOB,
    key_digest BLOB
);
"""


def default_store() -> Path:
    """``$ECGCORE_HEARTID_STORE``, else ``heartid.sqlite`` in the platform's per-user data folder."""
    env = os.environ.get("ECGCORE_HEARTID_STORE")
    if env:
        return Path(env)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ecgcore" / "heartid.sqlite"


class TemplateStore:
    """SQLite store of protected templates; each write is one transaction."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path))
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a HeartID template store (SQLite): {exc}") from None

    def close(self):
        self.db.close()

    def get(self, subject: str) -> dict | None:
        row = self.db.execute("SELECT template, dim, score, model_sha256, n_windows, generation, enrolled_at "
                              "FROM templates WHERE subject = ?", (subject,)).fetchone()
        if row is None:
            return None
        dtype = np.uint8 if str(row[2]).startswith("grp-iom") else np.float64
        return {"template": np.frombuffer(row[0], dtype).copy(), "dim": row[1], "score": row[2],
                "model_sha256": row[3], "n_windows": row[4], "generation": row[5], "enrolled_at": row[6]}

    def generation(self, subject: str) -> int:
        row = self.db.execute("SELECT MAX(generation) FROM revocations WHERE subject = ?", (subject,)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def last_revocation(self, subject: str) -> float | None:
        row = self.db.execute("SELECT MAX(revoked_at) FROM revocations WHERE subject = ?", (subject,)).fetchone()
        return row[0]

    def put(self, subject: str, tmpl: np.ndarray, score: str, model_sha: str, n_windows: int) -> int:
        gen = self.generation(subject)
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (subject, np.ascontiguousarray(tmpl).tobytes(), int(tmpl.size), score, model_sha,
                             int(n_windows), gen, time.time()))
        return gen

    def revoke(self, subject: str, old_bits: np.ndarray | None = None) -> bool:
        """Delete ``subject``'s template; with the old key's bits, remember a salted digest of that key so it
        can never be enrolled or verified again (a 100-bit random key cannot be recovered from it)."""
        cur = self.get(subject)
        if cur is None:
            return False
        salt = digest = None
        if old_bits is not None:
            salt = os.urandom(16)
            digest = _key_digest(salt, old_bits)
        with self.db:
            self.db.execute("DELETE FROM templates WHERE subject = ?", (subject,))
            self.db.execute("INSERT INTO revocations VALUES (?, ?, ?, ?, ?)",
                            (subject, cur["generation"], time.time(), salt, digest))
        return True

    def key_revoked(self, subject: str, bits: np.ndarray) -> bool:
        rows = self.db.execute("SELECT key_salt, key_digest FROM revocations WHERE subject = ? AND "
                               "key_digest IS NOT NULL", (subject,)).fetchall()
        return any(_key_digest(salt, bits) == d for salt, d in rows)


def _key_digest(salt: bytes, bits: np.ndarray) -> bytes:
    return hashlib.sha256(salt + np.packbits(np.asarray(bits, np.uint8), bitorder="little").tobytes()).digest()


class Verifier:
    """The exported HeartID graph + its card under one protection scheme: record -> protected template / probe.

    ``scheme="grp-iom"``: threshold from the card's ``config.verification.schemes["grp-iom-v1"]``; ``"seed"``: the
    card's ``config.verification.threshold`` and score; ``threshold`` overrides the card's (calibration).
    ``self.score`` names what a stored template is (the IoM scheme's version, or the seed scheme's score kind) and
    is kept with every template. When that scheme entry holds ``score_norm`` (``{"kind": "adaptive-t-norm",
    "top_k", "cohort": FILE, "cohort_sha256"}``), grp-iom scores are cohort-normalised (:func:`.protect.
    cohort_normalise`; the cohort's embeddings are FILE, a ``.npy`` beside the graph): :meth:`compare` then needs
    the probe's key.
    """

    def __init__(self, model: str | os.PathLike | None = None, threads: int = 1, scheme: str = DEFAULT_SCHEME,
                 threshold: float | None = None, score_norm: bool = True):
        import onnxruntime as ort

        from ...export import resolve_model
        from .protect import SCHEME as IOM_SCHEME

        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.onnx_path, self.card = resolve_model(default_model(scheme) if model is None else model)
        if self.card.preprocessing.get("kind") != "heartid":
            raise ValueError(f"{self.onnx_path}: not a HeartID model (preprocessing kind "
                             f"{self.card.preprocessing.get('kind')!r})")
        if scheme == "seed" and "key" not in {i.get("name") for i in self.card.inputs}:
            raise ValueError(f"{self.onnx_path}: this model takes no key; the seed scheme needs the seed network "
                             f"(--model {DEFAULT_MODELS['seed']})")
        v = self.card.config.get("verification", {})
        self.scheme = scheme
        if scheme == "seed":
            if "threshold" not in v:
                raise ValueError(f"{self.onnx_path}: the model card has no config.verification.threshold")
            self.threshold, self.score = float(v["threshold"]), v.get("score", "euclidean")
        else:
            sv = v.get("schemes", {}).get(IOM_SCHEME, {})
            if "threshold" not in sv and threshold is None:
                raise ValueError(f"{self.onnx_path}: the model card has no {IOM_SCHEME} threshold "
                                 f"(config.verification.schemes); use --scheme seed")
            self.threshold, self.score = float(sv.get("threshold", 0.0)), IOM_SCHEME
        self.score_norm = None if scheme == "seed" or not score_norm else sv.get("score_norm")
        self.cohort = None if self.score_norm is None else self._load_cohort(self.score_norm)
        if threshold is not None:
            self.threshold = float(threshold)
        self.key_size = int(self.card.config.get("key_size", 100))
        self.options = {k: val for k, val in self.card.preprocessing.items() if k != "kind"}
        self.sha256 = hashlib.sha256(Path(self.onnx_path).read_bytes()).hexdigest()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.onnx_path), so, providers=["CPUExecutionProvider"])
        self.has_key_input = "key" in {i.name for i in self.session.get_inputs()}
        self._projections: dict[bytes, np.ndarray] = {}
        self._cohort_hashes: dict[bytes, np.ndarray] = {}
        self._probe_norms: dict[bytes, tuple[float, float]] = {}

    def _load_cohort(self, norm: dict) -> np.ndarray:
        """The card's cohort embeddings (c, d) as unit rows, checked against the card (kind, file, digest)."""
        if norm.get("kind") != "adaptive-t-norm":
            raise ValueError(f"{self.onnx_path}: unknown score_norm kind {norm.get('kind')!r} (adaptive-t-norm)")
        name = str(norm.get("cohort", ""))
        if not name or Path(name).name != name:
            raise ValueError(f"{self.onnx_path}: score_norm.cohort must name a file beside the graph, got {name!r}")
        path = Path(self.onnx_path).parent / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the cohort file named by the card's score_norm is missing")
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != norm.get("cohort_sha256"):
            raise ValueError(f"{path}: its SHA-256 differs from the card's score_norm.cohort_sha256")
        c = np.load(io.BytesIO(raw), allow_pickle=False)  # the bytes that were checked, not a second read
        if c.ndim != 2 or c.shape[0] < 2 or not np.all(np.isfinite(c)):
            raise ValueError(f"{path}: a cohort must be a finite (persons, dims) array, got shape {c.shape}")
        d = self.card.config.get("embedding_size", (self.card.outputs or [{}])[0].get("shape", [None, None])[-1])
        if d is None or c.shape[1] != int(d):
            raise ValueError(f"{path}: cohort embeddings have {c.shape[1]} dims, the model's {d}")
        k = norm.get("top_k")
        if k is not None and not (isinstance(k, int) and 2 <= k <= c.shape[0]):
            raise ValueError(f"{self.onnx_path}: score_norm.top_k must be an integer in 2..{c.shape[0]}, got {k!r}")
        from .protect import unit

        return unit(np.asarray(c, np.float64))

    @staticmethod
    def _cached(cache: dict, key: bytes, make, size: int):
        """``cache[key]``, made by ``make()`` when missing; the ``size`` most recently used entries are kept."""
        v = cache.pop(key, None)
        if v is None:
            v = make()
        cache[key] = v
        while len(cache) > size:
            cache.pop(next(iter(cache)))
        return v

    def _projections_of(self, bits: np.ndarray, dim: int) -> np.ndarray:
        """The key's (m, q, dim) projections, cached for a few (key, dim) pairs."""
        from .protect import projections

        kb = np.asarray(bits, np.uint8).tobytes() + f"|{dim}".encode()
        return self._cached(self._projections, kb, lambda: projections(bits, dim), 24)

    def windows(self, records, fs: float | None = None) -> np.ndarray:
        """The network inputs of one record (or several) as the card's preprocessing makes them: (n, 1000) z-scored
        5-s windows (seed network), or (n, input_size) median-beat groups (beat-lda: 174 samples for the default
        cut, 187 for the bundled model's)."""
        if isinstance(records, (str, os.PathLike)):
            records = [records]
        return np.concatenate([record_windows(r, self.options, fs=fs) for r in records])

    def embed(self, windows: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        """(n, D) network embeddings of ``windows`` under ``key`` ((1, K) float); ``None``: the public all-zero
        key, i.e. the embedding's key-independent part (the IoM scheme's input)."""
        x = np.asarray(windows, np.float32)
        if not self.has_key_input:
            if key is not None:
                raise ValueError(f"{self.onnx_path}: this model takes no key")
            return self.session.run(None, {"ecg": x})[0]
        k = np.zeros((1, self.key_size), np.float32) if key is None else np.asarray(key, np.float32).reshape(1, -1)
        return self.session.run(None, {"ecg": x, "key": k})[0]

    def protect(self, emb: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Protected template / probe from window embeddings: IoM indices (m,) uint8, or the seed's mean (D,)."""
        if self.scheme == "seed":
            return template(emb, self.score)
        from .protect import iom_hash

        return iom_hash(template(emb, "cosine"), W=self._projections_of(bits, emb.shape[-1]))

    def vector(self, records, bits: np.ndarray, fs: float | None = None) -> tuple[np.ndarray, int]:
        """(protected template or probe, number of 5-s windows) of one record (or several) under the key ``bits``."""
        w = self.windows(records, fs)
        emb = self.embed(w, bits_to_key(bits) if self.scheme == "seed" else None)
        return self.protect(emb, bits), len(w)

    def compare(self, tmpl: np.ndarray, probe: np.ndarray, bits: np.ndarray | None = None) -> float:
        """The score of ``probe`` against ``tmpl`` (accept when ``>= self.threshold``). grp-iom: the share of equal
        indices, cohort-normalised when the card says so (then ``bits``, the key the probe was hashed under, is
        needed: the cohort is hashed under it)."""
        s = self.raw_compare(tmpl, probe)
        if self.score_norm is None:
            return s
        if bits is None:
            raise ValueError("this model's grp-iom scores are cohort-normalised (card score_norm): compare needs the "
                             "key the probe was hashed under")
        mu, sd = self.probe_norm(probe, bits)
        return (s - mu) / sd

    def raw_compare(self, tmpl: np.ndarray, probe: np.ndarray) -> float:
        """The comparison anyone holding two templates can make, without keys: the scheme's score before any cohort
        normalisation (grp-iom: the share of equal indices). Linkage and unlinkability are measured on it."""
        if self.scheme == "seed":
            return float(similarity(tmpl, probe, self.score))
        from .protect import iom_similarity

        return float(iom_similarity(tmpl, probe))

    def probe_norm(self, probe: np.ndarray, bits: np.ndarray) -> tuple[float, float]:
        """(μ_K, σ_K) of ``probe``'s top-K shares against the cohort hashed under ``bits`` (:func:`.protect.
        cohort_stats`), remembered per (probe, key): a probe scored against many templates is normalised once.
        The cohort's hashes are kept for the last few keys."""
        from .protect import cohort_stats, iom_hash

        kb = np.asarray(bits, np.uint8).tobytes()
        top_k = self.score_norm.get("top_k")
        memo = hashlib.sha256(kb + np.asarray(probe, np.uint8).tobytes() + f"|{top_k}".encode()).digest()

        def stats():
            ch = self._cached(self._cohort_hashes, kb,
                              lambda: iom_hash(self.cohort, W=self._projections_of(bits, self.cohort.shape[1])), 24)
            mu, sd = cohort_stats(probe, ch, top_k)
            return float(mu[0]), float(sd[0])

        return self._cached(self._probe_norms, memo, stats, 200_000)


def enrol_record(store: TemplateStore, ver: Verifier, subject: str, record, bits, fs) -> tuple[int, int]:
    """Store the template of ``record`` under the key ``bits`` for ``subject``; returns (template generation,
    windows)."""
    tmpl, n = ver.vector(record, bits, fs)
    return store.put(subject, tmpl, ver.score, ver.sha256, n), n
