"""The one GIL-release probe of the test suite: does a kernel let other Python threads run while it works?"""
from __future__ import annotations

import threading
import time


def main_thread_stall(fn) -> tuple[float, float]:
    """Run ``fn()`` in a thread while this thread ticks; return (kernel seconds, longest gap between ticks).

    If ``fn`` holds the GIL for its whole run, this thread cannot tick and the longest gap is about the kernel
    time; with the GIL released the gap stays near the interpreter's switch interval.
    """
    done = threading.Event()
    failure = []

    def work():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            failure.append(exc)
        finally:
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
    if failure:
        raise failure[0]
    return time.perf_counter() - start, gap


def releases_gil(fn, min_seconds: float = 0.05) -> bool:
    """True when this thread kept running Python (no stall over half the call) while ``fn`` ran in another."""
    elapsed, stall = main_thread_stall(fn)
    if elapsed < min_seconds:
        raise AssertionError(f"kernel call too short ({elapsed:.3f} s) for a meaningful GIL check")
    return stall < 0.5 * elapsed
