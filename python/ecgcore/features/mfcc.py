"""Mel-frequency cepstral coefficients with deltas (C++ core).

Two modes:

* ``mode="librosa"`` -- ``librosa.feature.mfcc(y=x, sr=fs, n_mfcc, n_fft, hop_length, win_length, n_mels, fmin,
  fmax, htk, lifter)`` (power mel spectrogram, ``power_to_db`` with ``top_db=80``, DCT-II ortho), deltas from
  ``librosa.feature.delta(width=9, order=1/2)``. Difference by design: the 80 dB floor is taken per signal; librosa
  called on a batch takes the maximum over the whole batch, so call librosa per signal to compare. Tolerance checked
  on MIT-BIH windows: 1e-6 of the largest coefficient magnitude (librosa keeps its filterbank in float32).
* ``mode="kaldi"`` -- ``torchaudio.compliance.kaldi.mfcc`` (DC removal, pre-emphasis 0.97, Povey window, FFT padded
  to a power of two, Kaldi mel banks from 20 Hz to Nyquist, natural log floored at float32 eps, orthonormal DCT,
  cepstral lifter 22, ``snip_edges=True``, no dither, ``use_energy=False``) with deltas from
  ``torchaudio.functional.compute_deltas(win_length=5)`` (replicated edges, delta-delta = delta of delta).
  Checked against a float64 NumPy transcription of the Kaldi formulas (torchaudio computes in float32) within 1e-9.

Shapes follow librosa: ``(..., n_mfcc * (1 + delta_order), n_frames)`` (torchaudio's Kaldi output is the transpose).
Every axis other than the time axis is a batch dimension processed in parallel with the GIL released.
"""
from __future__ import annotations

import numpy as np

from .._native import core, threads

__all__ = ["mfcc", "mfcc_deltas", "mel_filterbank"]


def _signal(x, axis):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (..., n_samples)")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"x must be real numbers, got dtype {x.dtype}")
    return np.moveaxis(x, axis, -1)


def mfcc(x, *, fs: float, n_mfcc: int = 13, deltas: bool | int = True, mode: str = "librosa",
         n_mels: int | None = None, fmin: float | None = None, fmax: float | None = None,
         lifter: float | None = None, delta_width: int | None = None,
         n_fft: int = 2048, hop: int = 512, win_length: int | None = None, center: bool = True, htk: bool = False,
         top_db: float | None = 80.0,
         frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, round_to_power_of_two: bool = True,
         preemphasis: float = 0.97, remove_dc_offset: bool = True,
         axis: int = -1, workers: int | None = None) -> np.ndarray:
    """MFCCs with optional deltas and delta-deltas.

    Parameters
    ----------
    x : (..., n_samples) real signals.
    fs : sampling rate in Hz (keyword-only).
    n_mfcc : cepstral coefficients kept (13).
    deltas : True or 2 -> ``[mfcc, delta, delta-delta]`` (39 rows for 13 MFCCs); 1 -> ``[mfcc, delta]``;
        False or 0 -> MFCCs only.
    mode : ``"librosa"`` or ``"kaldi"`` (see the module docstring).
    n_mels : mel bands; default 128 (librosa) or 23 (Kaldi).
    fmin, fmax : band edges in Hz; default 0 / Nyquist (librosa) or 20 / Nyquist (Kaldi; a non-positive fmax is an
        offset from Nyquist, as in Kaldi).
    lifter : cepstral lifter; default 0 (librosa: off) or 22 (Kaldi).
    delta_width : delta window; default 9 (librosa Savitzky-Golay, needs at least 9 frames) or 5 (Kaldi).
    n_fft, hop, win_length, center, htk, top_db : librosa framing and scaling (ignored in Kaldi mode).
    frame_length_ms, frame_shift_ms, round_to_power_of_two, preemphasis, remove_dc_offset : Kaldi framing
        (ignored in librosa mode); frame sizes in samples are ``int(fs * ms * 0.001)`` as in torchaudio.
    axis : time axis of ``x``.
    workers : threads (None: all cores).

    Returns
    -------
    (..., n_mfcc * (1 + n_delta_orders), n_frames); float32 input gives float32, anything else float64.
    """
    if mode not in ("librosa", "kaldi"):
        raise ValueError(f"mode must be 'librosa' or 'kaldi', got {mode!r}")
    if not fs > 0:
        raise ValueError(f"fs must be positive, got {fs!r}")
    order = 2 if deltas is True else (0 if deltas is False else int(deltas))
    if order not in (0, 1, 2):
        raise ValueError(f"deltas must be True/False or 0, 1, 2, got {deltas!r}")
    kaldi = mode == "kaldi"
    n_mels = (23 if kaldi else 128) if n_mels is None else int(n_mels)
    fmin = (20.0 if kaldi else 0.0) if fmin is None else float(fmin)
    fmax = 0.0 if fmax is None else float(fmax)
    lifter = (22.0 if kaldi else 0.0) if lifter is None else float(lifter)
    delta_width = (5 if kaldi else 9) if delta_width is None else int(delta_width)
    frame_length = int(fs * frame_length_ms * 0.001)
    frame_shift = int(fs * frame_shift_ms * 0.001)
    x = _signal(x, axis)
    return core.mfcc(x, mode, float(fs), int(n_mfcc), n_mels, fmin, fmax, lifter, order, delta_width,
                     int(n_fft), int(hop), 0 if win_length is None else int(win_length), bool(center), bool(htk),
                     -1.0 if top_db is None else float(top_db), frame_length, frame_shift,
                     bool(round_to_power_of_two), float(preemphasis), bool(remove_dc_offset), threads(workers))


def mel_filterbank(*, fs: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
                   mode: str = "librosa", htk: bool = False) -> np.ndarray:
    """Mel filterbank ``(n_mels, n_fft // 2 + 1)``: ``librosa.filters.mel(sr=fs, n_fft, n_mels, fmin, fmax, htk)``
    (Slaney norm) or Kaldi's triangular mel banks (``mode="kaldi"``, Nyquist bin weight 0)."""
    return core.mel_filterbank(mode, float(fs), int(n_fft), int(n_mels), float(fmin),
                               0.0 if fmax is None else float(fmax), bool(htk))


def mfcc_deltas(c, *, order: int = 1, mode: str = "librosa", width: int | None = None, axis: int = -1) -> np.ndarray:
    """Deltas of ``c : (..., n_frames)`` along ``axis``: ``librosa.feature.delta(c, width=9, order)`` or
    (``mode="kaldi"``) ``torchaudio.functional.compute_deltas(c, win_length=5)`` (order 2 = delta of delta)."""
    if mode not in ("librosa", "kaldi"):
        raise ValueError(f"mode must be 'librosa' or 'kaldi', got {mode!r}")
    width = (5 if mode == "kaldi" else 9) if width is None else int(width)
    c = np.moveaxis(np.asarray(c, dtype=np.float64), axis, -1)
    return np.moveaxis(core.deltas(c, mode, width, int(order)), -1, axis)
