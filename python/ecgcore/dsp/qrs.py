"""QRS width of short ECG windows: the median, over a window's beats, of how long the QRS slope stays high.

This is the measure behind the ``qrs-width`` prior of the attention classifier (issue 21): a bundle-branch block
widens every QRS complex to 120 ms or more, in any patient, so the width carries across patients where a network
trained on two patients of each block type does not.

Definition (per beat, R-peak ``r`` from :func:`ecgcore.dsp.detect_r_peaks`): ``d`` = the absolute first
difference (``numpy.gradient``) smoothed by a centred moving average of ``smooth`` seconds (5 samples at 360 Hz);
within ``r`` ± ``half_window`` s, the width is the time from the first to the last sample where ``d`` exceeds
``frac`` of its maximum there. A window's value is the median over the beats whose ±``half_window`` span lies
inside the window; NaN when there is none.
"""
from __future__ import annotations

import numpy as np

from .peaks import detect_r_peaks


def _moving_average(d: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of odd length ``k`` along the last axis, zero-padded at the ends (as
    ``numpy.convolve(.., mode="same")``)."""
    if k <= 1:
        return d
    pad = k // 2
    c = np.cumsum(np.pad(d, [(0, 0)] * (d.ndim - 1) + [(pad + 1, pad)]), axis=-1)
    return (c[..., k:] - c[..., :-k]) / k


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
        Threads of the R-peak detection.

    Returns
    -------
    float64 array of shape (n_windows,) (a scalar array for one window): milliseconds, NaN for a window without
    a complete beat.
    """
    arr = np.asarray(x, dtype=np.float64)
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
    d = _moving_average(np.abs(np.gradient(arr, axis=-1)) if n >= 2 else np.zeros_like(arr), k)
    out = np.full(n_win, np.nan)
    offsets = np.arange(-h, h)
    for i, p in enumerate(peaks):
        p = np.asarray(p, dtype=np.int64)
        p = p[(p - h >= 0) & (p + h < n)]
        if not len(p):
            continue
        seg = d[i][p[:, None] + offsets]                      # (beats, 2h)
        above = seg > frac * seg.max(axis=1, keepdims=True)
        first = above.argmax(axis=1)
        last = 2 * h - 1 - above[:, ::-1].argmax(axis=1)
        ok = above.any(axis=1)
        if ok.any():
            out[i] = float(np.median((last - first)[ok])) / fs * 1000.0
    return out[0] if single else out
