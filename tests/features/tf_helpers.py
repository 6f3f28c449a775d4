"""Helpers for the time-frequency tests: MIT-BIH beats/windows as the seeds cut them, and a GIL check."""
from __future__ import annotations

import threading
import time

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


def releases_gil(fn, min_iterations: int = 10_000) -> bool:
    """True when a Python loop in this thread keeps running while ``fn`` runs in another thread.

    If the kernel held the GIL, the loop could not advance during the call (a handful of iterations at
    most around its start and end); with the GIL released it advances millions of times.
    """
    done = threading.Event()
    result = {}

    def work():
        try:
            t0 = time.perf_counter()
            fn()
            result["seconds"] = time.perf_counter() - t0
        finally:
            done.set()

    th = threading.Thread(target=work)
    count = 0
    th.start()
    while not done.is_set():
        count += 1
    th.join()
    if result.get("seconds", 0.0) < 0.05:
        raise AssertionError(f"kernel call too short ({result.get('seconds')}) for a meaningful GIL check")
    return count >= min_iterations
