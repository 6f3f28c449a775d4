"""Fast Fourier transforms of any length on the C++ core (mixed radix 2/3/4/odd + Bluestein).

Each function matches its :mod:`numpy.fft` namesake within 1e-12 relative to the largest output magnitude
(float64; the test suite checks lengths 1 to 12,014 including large primes). float32 input is transformed in
float64 and returned as complex64/float32. Every axis other than ``axis`` is a batch dimension processed in
parallel (``workers`` threads, default all cores) with the GIL released.
"""
from __future__ import annotations

import numpy as np

from .._native import core, threads

__all__ = ["rfft", "irfft", "fft", "ifft"]


def _last(x, axis):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    return np.moveaxis(x, axis, -1)


def _positive(n, name):
    if n is None:
        return 0
    if int(n) != n or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def rfft(x, n: int | None = None, *, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """Real FFT, ``x : (..., n_samples)`` -> ``(..., n // 2 + 1)`` (``numpy.fft.rfft(x, n, axis)``)."""
    x = _last(x, axis)
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"rfft needs real input, got dtype {x.dtype}")
    out = core.rfft(x, _positive(n, "n"), threads(workers))
    return np.moveaxis(out, -1, axis)


def irfft(x, n: int | None = None, *, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """Inverse real FFT, ``(..., n_bins)`` -> ``(..., n)`` with ``n = 2 (n_bins - 1)`` by default
    (``numpy.fft.irfft(x, n, axis)``)."""
    x = _last(x, axis)
    out = core.irfft(x, _positive(n, "n"), threads(workers))
    return np.moveaxis(out, -1, axis)


def fft(x, n: int | None = None, *, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """Complex FFT over ``axis`` (``numpy.fft.fft(x, n, axis)``)."""
    x = _last(x, axis)
    out = core.fft(x, _positive(n, "n"), False, threads(workers))
    return np.moveaxis(out, -1, axis)


def ifft(x, n: int | None = None, *, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """Inverse complex FFT over ``axis``, scaled by 1/n (``numpy.fft.ifft(x, n, axis)``)."""
    x = _last(x, axis)
    out = core.fft(x, _positive(n, "n"), True, threads(workers))
    return np.moveaxis(out, -1, axis)
