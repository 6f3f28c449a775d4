"""Helpers for the time-frequency tests: MIT-BIH beats/windows as the seeds cut them; the GIL check is tests/gil.py."""
from __future__ import annotations


import numpy as np
import wfdb

HALF = 187 // 2  # the Conformer seed's beat window: 93 before R, R, 93 after


def mitdb_beats(mitdb_dir, record: str, limit: int | None = None) -> np.ndarray:
    """Beats of lead 0 (mV, raw) around every annotated beat, as the Conformer seed cuts them."""
    rec = wfdb.rdrecord(str(mitdb_dir / record), channels=[0])
    ann = wfdb.rdann(str(mitdb_dir / record), "atr")
    sig = rec.p_signal[:, 0]
    beat_symbols = set("NLRejnBAaJSVEF/fQ?")
    r = [s for s, sym in zip(ann.sample, ann.symbol) if sym in beat_symbols and HALF < s < len(sig) - HALF]
    if limit is not None:
        r = r[:limit]
    return np.stack([sig[s - HALF:s + HALF + 1] for s in r])


def mitdb_windows(mitdb_dir, record: str, seconds: float = 10.0, count: int | None = None) -> np.ndarray:
    """Non-overlapping windows of both leads, (count * 2, seconds * 360)."""
    rec = wfdb.rdrecord(str(mitdb_dir / record))
    n = int(seconds * rec.fs)
    sig = rec.p_signal.T
    k = sig.shape[1] // n if count is None else count
    return sig[:, :k * n].reshape(2, k, n).reshape(-1, n)


from gil import releases_gil  # noqa: E402,F401  (re-exported: the tests import it from here)
