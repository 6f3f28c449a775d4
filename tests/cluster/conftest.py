"""Real feature rows for the clustering tests: MFCC (13 + deltas = 39) of MIT-BIH lead 0.

Until the C++ MFCC lands, the rows come from librosa: 0.5 s frames (180 samples at 360 Hz),
hop 0.25 s, 23 mel bands up to Nyquist. They are cached per session under a pytest tmp dir.
"""
from __future__ import annotations

import numpy as np
import pytest

DEFAULT_RECORDS = ("100", "106", "119", "208", "233")  # normal, PVCs, bigeminy, fusion, mixed
FRAMES_PER_RECORD = 4000  # 5 x 4000 = 20,000 rows by default


def mfcc_rows(mitdb_dir, record: str, frames: int | None = None) -> np.ndarray:
    import librosa
    import wfdb

    sampto = None if frames is None else (frames + 1) * 90 + 90
    x = wfdb.rdrecord(str(mitdb_dir / record), channels=[0], sampto=sampto).p_signal[:, 0]
    m = librosa.feature.mfcc(y=x, sr=360, n_mfcc=13, n_fft=180, hop_length=90, n_mels=23, fmax=180,
                             center=False)
    f = np.vstack([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)]).T
    return np.ascontiguousarray(f[:frames] if frames else f, dtype=np.float64)


@pytest.fixture(scope="session")
def mitdb_mfcc(mitdb_dir, tmp_path_factory):
    """(features (20000, 39) float64, record id of every row)."""
    cache = tmp_path_factory.getbasetemp() / "mitdb_mfcc_20k.npz"
    if not cache.exists():
        parts = [mfcc_rows(mitdb_dir, r, FRAMES_PER_RECORD) for r in DEFAULT_RECORDS]
        rec = np.concatenate([np.full(len(p), int(r)) for p, r in zip(parts, DEFAULT_RECORDS)])
        np.savez(cache, x=np.concatenate(parts), rec=rec)
    with np.load(cache) as z:
        return z["x"], z["rec"]


@pytest.fixture(scope="session")
def mfcc_dir(mitdb_dir, tmp_path_factory):
    """A FEATURES_DIR of per-record .npy files (float32 [rows, 39]) for the CLI."""
    d = tmp_path_factory.mktemp("features")
    for r in ("100", "106", "119", "208"):
        np.save(d / f"{r}.npy", mfcc_rows(mitdb_dir, r, 1500).astype(np.float32))
    return d


@pytest.fixture(scope="session")
def all_rows(mitdb_dir, mitdb_records):
    """120,000 shuffled float32 rows from all 48 records (for the slow tests)."""
    x = np.concatenate([mfcc_rows(mitdb_dir, r) for r in mitdb_records]).astype(np.float32)
    return np.ascontiguousarray(x[np.random.default_rng(0).permutation(len(x))[:120_000]])
