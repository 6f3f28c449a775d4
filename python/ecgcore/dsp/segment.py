"""Cutting ECG signals into beats and windows (C++ core), with the labels and RR features that go with them.

* :func:`segment_beats`: fixed windows around R-peaks (default 93 + 1 + 93 = 187 samples, the Conformer
  seed's beats, SPEC §4.2), edge policy ``drop``/``pad``, indices of the kept beats; optional resampling.
* :func:`segment_windows` + :func:`window_labels`: 10 s windows with 50 % overlap and the attention
  seed's majority labels (SPEC §3.1).
* :func:`beat_sequences`: consecutive-beat sequences labelled by their last beat (SPEC §4.3).
* :func:`rr_features`: pre-, post-, local and average RR intervals (de Chazal et al., IEEE TBME 2004).

Reference and tolerance: cutting is a copy, equal bit for bit to NumPy slicing ``x[r - before : r + after + 1]``
(tested on every beat of all 48 MIT-BIH records); RR features equal ``np.diff`` arithmetic to 1e-12 s.
"""
from __future__ import annotations

import numpy as np

from .._native import core, threads

__all__ = ["segment_beats", "segment_windows", "window_labels", "beat_sequences", "rr_features",
           "ATTENTION_NORMAL", "ATTENTION_ABNORMAL"]

# The attention seed's label sets (SPEC §3.1); every other symbol is ignored.
ATTENTION_NORMAL = frozenset("N.")
ATTENTION_ABNORMAL = frozenset("LRBAaJSVrFejnE/fQ?")


def _as_float(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype in (np.float32, np.float64):
        return x
    if x.dtype.kind in "iub":
        return x.astype(np.float64)
    raise ValueError(f"x must hold real numbers (float32 or float64), got dtype {x.dtype}")


def _as_peaks(r_peaks) -> np.ndarray:
    r = np.asarray(r_peaks)
    if r.ndim != 1:
        raise ValueError(f"r_peaks must be a 1-D array of sample indices, got shape {r.shape}")
    if r.size and r.dtype.kind not in "iu":
        raise ValueError(f"r_peaks must be integer sample indices, got dtype {r.dtype}")
    return r.astype(np.int64, copy=False)


def _count(name: str, value) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative whole number of samples, got {value!r}")
    return int(value)


def segment_beats(x, r_peaks, *, before: int = 93, after: int = 93, edge: str = "drop", pad_value: float = 0.0,
                  axis: int = -1, fs: float | None = None, target_fs: float | None = None,
                  workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut fixed windows around R-peaks.

    Parameters
    ----------
    x : array_like, shape (..., n_samples)
        One lead, or several leads (any leading shape) that share the R-peaks.
    r_peaks : array_like of int, shape (n_peaks,)
        R-peak sample indices in ``x`` (at ``fs``).
    before, after : int
        Samples kept before and after the R sample (at ``target_fs`` when resampling); a beat has
        ``before + 1 + after`` samples with the R sample at index ``before``.
    edge : {"drop", "pad"}
        Beats whose window runs past an end of the signal are dropped, or padded with ``pad_value``.
    axis : int
        Time axis of ``x``.
    fs, target_fs : float, optional
        Resample ``x`` from ``fs`` to ``target_fs`` first (``ecgcore.dsp.resample_poly``, Kaiser
        anti-aliasing), R-peaks are mapped to ``round(r * target_fs / fs)``.
    workers : int, optional
        Threads; default all cores.

    Returns
    -------
    beats : ndarray, shape (..., n_kept, before + 1 + after), dtype of ``x`` (float32/float64)
    kept : int64 ndarray, shape (n_kept,)
        Index into ``r_peaks`` of each beat (source beat kept for its label).
    """
    arr = _as_float(x)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension (n_samples)")
    arr = np.moveaxis(arr, axis, -1)
    peaks = _as_peaks(r_peaks)
    before, after = _count("before", before), _count("after", after)
    if target_fs is not None:
        if fs is None:
            raise ValueError("resampling needs both fs and target_fs")
        from .filter import resample_poly, resample_ratio

        up, down = resample_ratio(float(fs), float(target_fs))
        n_in = arr.shape[-1]
        arr = resample_poly(arr, up, down, workers=workers)
        peaks = np.rint(peaks * (up / down)).astype(np.int64)
        if peaks.size and (peaks.min() < 0 or peaks.max() >= arr.shape[-1]):
            raise ValueError(f"R-peaks must lie inside the signal (0..{n_in - 1} at {fs} Hz)")
    lead_shape = arr.shape[:-1]
    rows = np.ascontiguousarray(arr.reshape(-1, arr.shape[-1]))
    beats, kept = core.segment_beats(rows, peaks, before, after, edge, float(pad_value), threads(workers))
    return beats.reshape(lead_shape + beats.shape[1:]), kept


def segment_windows(x, *, size: int = 3600, step: int = 1800, axis: int = -1,
                    workers: int | None = None) -> np.ndarray:
    """Sliding windows: starts ``0, step, 2 step, ... <= n_samples - size`` (the attention seed: 3600/1800).

    Parameters
    ----------
    x : array_like, shape (..., n_samples)
    size, step : int
        Window length and hop in samples.

    Returns
    -------
    windows : ndarray, shape (..., n_windows, size)
    """
    arr = np.moveaxis(_as_float(x), axis, -1)
    if arr.ndim == 0:
        raise ValueError("x must have at least one dimension (n_samples)")
    if int(size) != size or size < 1 or int(step) != step or step < 1:
        raise ValueError(f"size and step must be positive whole numbers of samples, got {size!r}, {step!r}")
    lead_shape = arr.shape[:-1]
    rows = np.ascontiguousarray(arr.reshape(-1, arr.shape[-1]))
    out = core.segment_windows(rows, int(size), int(step), threads(workers))
    return out.reshape(lead_shape + out.shape[1:])


def window_labels(sample, symbol, *, n_samples: int, size: int = 3600, step: int = 1800) -> np.ndarray:
    """Majority labels of sliding windows, exactly as the attention seed defines them (SPEC §3.1).

    A window ``[start, start + size)`` counts the annotations inside it: normal ``{N, .}`` and abnormal
    ``{L R B A a J S V r F e j n E / f Q ?}``; other symbols are ignored. The label is 1 (abnormal) iff
    abnormal > normal; ties and windows without beats are 0.

    Parameters
    ----------
    sample, symbol : annotation sample indices and symbols (e.g. ``wfdb.rdann(...).sample/.symbol``)
    n_samples : length of the signal the windows were cut from

    Returns
    -------
    labels : int64 ndarray, shape (n_windows,)
    """
    sample = np.asarray(sample, dtype=np.int64)
    symbol = np.asarray(symbol)
    if sample.shape != symbol.shape or sample.ndim != 1:
        raise ValueError("sample and symbol must be 1-D and of the same length")
    if int(size) != size or size < 1 or int(step) != step or step < 1:
        raise ValueError(f"size and step must be positive whole numbers of samples, got {size!r}, {step!r}")
    n_win = 0 if n_samples < size else (int(n_samples) - size) // step + 1
    starts = np.arange(n_win, dtype=np.int64) * step
    normal = np.fromiter((s in ATTENTION_NORMAL for s in symbol), dtype=bool, count=symbol.size)
    abnormal = np.fromiter((s in ATTENTION_ABNORMAL for s in symbol), dtype=bool, count=symbol.size)

    def count_in(mask):
        pos = np.sort(sample[mask])
        return np.searchsorted(pos, starts + size, side="left") - np.searchsorted(pos, starts, side="left")

    return (count_in(abnormal) > count_in(normal)).astype(np.int64)


def beat_sequences(beats, labels, *, length: int = 3, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive-beat sequences labelled by their last beat (the Conformer seed, SPEC §4.3).

    Parameters
    ----------
    beats : array_like, shape (n_beats, ...)
        Beats (or per-beat features such as scalograms) of one record, in time order.
    labels : array_like, shape (n_beats,)
    length, stride : int
        Beats per sequence and step between sequence starts (seed: 3 and 1).

    Returns
    -------
    sequences : ndarray, shape (n_sequences, length, ...), ``sequences[i] = beats[i*stride : i*stride+length]``
    labels : ndarray, shape (n_sequences,), the label of each sequence's last beat.
        A record with fewer than ``length`` beats gives zero sequences.
    """
    beats = np.asarray(beats)
    labels = np.asarray(labels)
    if beats.ndim < 1 or labels.shape != beats.shape[:1]:
        raise ValueError(f"labels must have one entry per beat: beats {beats.shape}, labels {labels.shape}")
    if int(length) != length or length < 1 or int(stride) != stride or stride < 1:
        raise ValueError(f"length and stride must be positive integers, got {length!r}, {stride!r}")
    n = beats.shape[0]
    n_seq = 0 if n < length else (n - length) // stride + 1
    idx = np.arange(n_seq)[:, None] * stride + np.arange(length)[None, :]
    return beats[idx], labels[idx[:, -1]] if n_seq else labels[:0]


def rr_features(r_peaks, *, fs: float, local_beats: int = 10) -> np.ndarray:
    """RR-interval features of each beat, in seconds (de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7), 2004).

    Parameters
    ----------
    r_peaks : array_like of int, shape (n_peaks,), strictly increasing
    fs : float
        Sampling rate in Hz.
    local_beats : int
        The local RR is the mean pre-RR of this many beats ending at the current one.

    Returns
    -------
    features : float64 ndarray, shape (n_peaks, 4)
        Columns: pre-RR, post-RR (NaN for the first / last beat), local RR, record-average RR.
    """
    peaks = _as_peaks(r_peaks)
    if fs is None or not fs > 0:
        raise ValueError(f"fs must be a positive sampling rate, got {fs!r}")
    if int(local_beats) != local_beats or local_beats < 1:
        raise ValueError(f"local_beats must be a positive integer, got {local_beats!r}")
    return core.rr_features(peaks, float(fs), int(local_beats))
