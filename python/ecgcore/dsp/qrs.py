"""QRS width of short ECG windows: the median, over a window's beats, of how long the QRS slope stays high.

This is the measure behind the ``qrs-width`` prior of the attention classifier (issue 21): a bundle-branch block
widens every QRS complex (clinically to 120 ms or more) in any patient, so a width measure can carry across patients
where a network trained on two patients of each block type does not.

Definition (per beat, R-peak ``r`` from :func:`ecgcore.dsp.detect_r_peaks`, ``h = round(half_window * fs)``):
``d`` = the absolute first difference (``numpy.gradient``) smoothed by a centred moving average of odd length
``round(smooth * fs)`` samples (5 at 360 Hz; zero beyond the ends); over the ``2h`` samples ``r - h .. r + h - 1``,
the width is ``last - first`` samples, ``first`` and ``last`` being the first and last sample where ``d`` exceeds
``frac`` of its maximum there, in ms. A window's value is the median over the beats with ``r - h >= 0`` and
``r + h < n``; NaN when there is none. The kernel is C++ (``cpp/src/qrs_width.cpp``), rows in parallel.

It is **not** the clinical QRS duration: the slope envelope starts and ends inside the QRS onset and offset, noise and
large P or T waves widen it, and its scale is its own (the first minutes of MIT-BIH 100, 101 and 112 measure 44-67 ms,
of the bundle-branch-block records 124, 118 and 109 106-136 ms; a Gaussian pulse of sd 20 ms measures about 106 ms).
Thresholds on it must be learnt (as ``attach_width_prior`` does), not taken from the clinical 120 ms.
"""
from __future__ import annotations

import numpy as np

from .._native import core
from .peaks import detect_r_peaks


def qrs_width(x, *, fs: float, frac: float = 0.15, half_window: float = 0.15, smooth: float = 0.014,
              peaks=None, workers: int | None = None) -> np.ndarray:
    """Median QRS width (ms) of each window.

    Parameters
    ----------
    x : array_like, (n_samples,) or (n_windows, n_samples)
        Windows of one lead, any unit (the measure is scale-free), e.g. the ``segments`` recipe's filtered,
        z-scored windows.
    fs : float
        Sampling rate in Hz.
    frac : float
        Fraction of the beat's largest smoothed slope that delimits the QRS (0 < frac < 1).
    half_window : float
        Seconds either side of the R-peak searched for the QRS.
    smooth : float
        Seconds of the moving average applied to the absolute slope.
    peaks : sequence of arrays, optional
        R-peak sample indices per window; detected with :func:`detect_r_peaks` when not given.
    workers : int, optional
        Threads of the R-peak detection and of the width kernel (default: all cores).

    Returns
    -------
    float64 array of shape (n_windows,) (a scalar array for one window): milliseconds, NaN for a window without
    a complete beat.
    """
    arr = np.asarray(x)
    arr = np.ascontiguousarray(arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64))
    single = arr.ndim == 1
    if single:
        arr = arr[None]
    if arr.ndim != 2:
        raise ValueError(f"expected (n_samples,) or (n_windows, n_samples), got shape {np.shape(x)}")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    fs = float(fs)
    h = int(round(half_window * fs))
    if h < 1:
        raise ValueError(f"half_window {half_window} s is under one sample at {fs} Hz")
    n_win, n = arr.shape
    if peaks is None:
        peaks = detect_r_peaks(arr, fs=fs, workers=workers) if n_win else []
        if n_win == 1 and not isinstance(peaks, list):
            peaks = [peaks]
    if len(peaks) != n_win:
        raise ValueError(f"{len(peaks)} peak arrays for {n_win} windows")
    k = max(1, int(round(smooth * fs)) | 1)  # odd
    peaks = [np.asarray(p, dtype=np.int64).reshape(-1) for p in peaks]
    offsets = np.zeros(n_win + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in peaks])
    flat = np.concatenate(peaks) if n_win else np.zeros(0, np.int64)
    # The C++ kernel (cpp/src/qrs_width.cpp): widths in samples, rows in parallel.
    out = core.qrs_width(arr, flat, offsets, h, k, float(frac), workers=int(workers or 0)) / fs * 1000.0
    return out[0] if single else out
