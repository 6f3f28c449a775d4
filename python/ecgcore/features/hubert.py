"""HuBERT-ECG iteration-1 shard features (SPEC 5.2): 16 time-frequency statistics, 39 Kaldi MFCCs or the
29-dim mixed descriptor for each of the 93 shards of a 5-second 12-lead ECG.

Reference: ``dumping.py`` of HuBERT-ECG. The statistics match NumPy/SciPy (``np.min`` ... ``scipy.stats.skew``,
``scipy.stats.kurtosis``, ``np.abs(np.fft.fft(x))**2 / n``) within 1e-9 relative (float64); the MFCCs match a NumPy
transcription of torchaudio's Kaldi MFCC (see :mod:`ecgcore.features.mfcc`).

The seed computes the MFCC of each shard as one Kaldi frame (frame length = the shard), so its deltas and
delta-deltas are identically zero. ``deltas="seed"`` reproduces that; ``deltas="across_shards"`` (recommended)
computes ``compute_deltas`` (window 5) along the 93 shards instead, which is what the 39-dim layout was meant to carry.
Undefined statistics (crest factor, skewness, kurtosis of a constant shard) are 0, as in the NaN-safe fork.
"""
from __future__ import annotations

import numpy as np

from .._native import core, threads
from .mfcc import mfcc

__all__ = ["shard_features", "hubert_shard_features", "hubert_shards", "shard_statistics", "N_SHARDS"]

N_SHARDS = 93
_KINDS = {"timefreq": 16, "mfcc": 39, "mixed": 29}
_DURATION_S = 5  # the seed keeps data[:, :2500] at 500 Hz


def shard_statistics(x, *, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """The 16 HuBERT-ECG statistics of each segment, ``x : (..., n_samples)`` -> ``(..., 16)``.

    Order: min, max, mean, RMS, variance, std, power, peak, peak-to-peak, crest factor, skewness, kurtosis
    (biased, Fisher), then max, sum, mean and variance of ``|FFT(x)|**2 / n``.
    """
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (..., n_samples)")
    return core.shard_statistics(np.moveaxis(x, axis, -1), threads(workers))


def _trim(lead_index: int, fs: int) -> slice:
    if fs == 100:
        return slice(2, -2)
    if fs == 50:
        return slice(1, -1)
    return slice(2, -2) if lead_index % 2 == 0 else slice(2, -3)  # 500 Hz


def hubert_shards(ecg, *, fs: int = 100, input_fs: float = 500.0, workers: int | None = None) -> np.ndarray:
    """Cut a 12-lead ECG into the seed's 93 shards.

    Parameters
    ----------
    ecg : (12, n_samples) ECG at ``input_fs`` (lead-major, as the seed's ``.npy`` files), at least 5 s long.
    fs : shard sampling rate, 500, 100 or 50 Hz (shards of 322, 64 or 32 samples).
    input_fs : sampling rate of ``ecg``; it is decimated by ``input_fs / fs`` per lead
        (``scipy.signal.decimate`` semantics via :func:`ecgcore.dsp.decimate`).

    Returns
    -------
    (93, shard_length) float64.
    """
    from ..dsp import decimate  # the filter domain; imported here to keep module import light

    fs = int(fs)
    if fs not in (500, 100, 50):
        raise ValueError(f"fs must be 500, 100 or 50 Hz (the seed's shard layouts), got {fs}")
    ecg = np.asarray(ecg, dtype=np.float64)
    if ecg.ndim != 2 or ecg.shape[0] != 12:
        raise ValueError(f"ecg must have shape (12, n_samples) (lead-major), got {ecg.shape}")
    n_keep = int(round(_DURATION_S * input_fs))
    if ecg.shape[1] < n_keep:
        raise ValueError(f"ecg must hold at least {_DURATION_S} s ({n_keep} samples at {input_fs} Hz), "
                         f"got {ecg.shape[1]}")
    data = ecg[:, :n_keep]
    if np.all(np.isnan(data)):
        raise ValueError("ecg is all NaN")
    q = input_fs / fs
    if abs(q - round(q)) > 1e-9 or round(q) < 1:
        raise ValueError(f"input_fs ({input_fs}) must be an integer multiple of fs ({fs})")
    q = int(round(q))
    if q > 1:
        # scipy's zero-phase decimation turns a lead with any NaN into all NaN (the seed then fills it with the
        # global mean below); ecgcore's decimate refuses NaN, so filter the finite leads and mark the others.
        nan_leads = np.isnan(data).any(axis=1)
        data = decimate(np.where(nan_leads[:, None], 0.0, data), q, axis=-1, workers=workers)
        data[nan_leads] = np.nan
    flat = np.concatenate([data[i, _trim(i, fs)] for i in range(12)])
    if np.isnan(flat).any():
        flat = np.where(np.isnan(flat), np.nanmean(flat), flat)
    if flat.size % N_SHARDS:
        raise ValueError(f"{flat.size} samples after trimming do not split into {N_SHARDS} shards")
    return flat.reshape(N_SHARDS, -1)


def shard_features(ecg, kind: str = "mixed", *, fs: int = 100, input_fs: float = 500.0, deltas: str = "seed",
                   workers: int | None = None) -> np.ndarray:
    """Per-shard statistics and/or MFCCs of the 93 shards of a 5-second 12-lead ECG (:func:`hubert_shards`): the
    HuBERT-ECG iteration-1 features.

    Parameters
    ----------
    ecg : (12, n_samples) ECG at ``input_fs`` (preprocessed as the seed's dataset: band-pass, resample, min-max).
    kind : ``"timefreq"`` (16), ``"mfcc"`` (39 = 13 MFCC + 13 delta + 13 delta-delta) or ``"mixed"``
        (16 statistics + the 13 MFCCs = 29).
    fs : shard sampling rate (500, 100 or 50 Hz).
    input_fs : sampling rate of ``ecg`` (the seed: 500 Hz).
    deltas : ``"seed"`` (one frame per shard: deltas are zero) or ``"across_shards"`` (deltas along the shards).

    Returns
    -------
    (93, F) float32.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    if deltas not in ("seed", "across_shards"):
        raise ValueError(f"deltas must be 'seed' or 'across_shards', got {deltas!r}")
    shards = hubert_shards(ecg, fs=fs, input_fs=input_fs, workers=workers)
    parts = []
    if kind in ("timefreq", "mixed"):
        parts.append(shard_statistics(shards, workers=workers))
    if kind in ("mfcc", "mixed"):
        frame_ms = shards.shape[1] / fs * 1000.0
        # One Kaldi frame per shard (frame length = shard, 100 ms shift), as the seed calls torchaudio.
        order = 2 if (kind == "mfcc" and deltas == "seed") else 0
        m = mfcc(shards, fs=fs, mode="kaldi", n_mfcc=13, deltas=order, frame_length_ms=frame_ms,
                 frame_shift_ms=100.0, workers=workers)[..., 0]
        if kind == "mfcc" and deltas == "across_shards":
            m = np.concatenate([m, _deltas_along_shards(m)], axis=1)
        parts.append(m if kind == "mfcc" else m[:, :13])
    out = np.concatenate(parts, axis=1).astype(np.float32)
    assert out.shape == (N_SHARDS, _KINDS[kind])
    return out


#: Former name of :func:`shard_features`; kept as an alias.
hubert_shard_features = shard_features


def _deltas_along_shards(m: np.ndarray) -> np.ndarray:
    """Kaldi deltas (window 5) and delta-deltas of (93, 13) MFCCs along the shard axis -> (93, 26)."""
    d1 = core.deltas(m.T, "kaldi", 5, 1)
    d2 = core.deltas(m.T, "kaldi", 5, 2)
    return np.concatenate([d1.T, d2.T], axis=1)
