"""Shared helpers for the beats tests: MIT-BIH records read with wfdb (the reference reader), a GIL probe."""
from __future__ import annotations

import threading
import time
from functools import lru_cache

import numpy as np
import pytest
import wfdb


@lru_cache(maxsize=None)
def _load(path: str):
    rec = wfdb.rdrecord(path)
    ann = wfdb.rdann(path, "atr")
    lead = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
    return rec.p_signal[:, lead].copy(), np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol), rec


@pytest.fixture(scope="session")
def load_mitdb(mitdb_dir):
    """load_mitdb("100") -> (MLII signal float64, annotation samples, symbols, wfdb.Record)."""
    return lambda name: _load(str(mitdb_dir / name))


def _max_main_thread_stall(fn) -> tuple[float, float]:
    """Run fn() in a thread while this thread ticks; return (kernel seconds, longest gap between ticks).

    If fn holds the GIL for its whole run, this thread cannot tick and the longest gap is about the
    kernel time; with the GIL released the gap stays near the interpreter switch interval.
    """
    done = threading.Event()

    def work():
        fn()
        done.set()

    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    last = time.perf_counter()
    gap = 0.0
    while not done.is_set():
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
        sum(range(200))  # some bytecode between ticks
    t.join()
    return time.perf_counter() - start, gap


@pytest.fixture(scope="session")
def gil_stall():
    """gil_stall(fn) -> (kernel seconds, longest stall of the main thread while fn ran in another thread)."""
    return _max_main_thread_stall
