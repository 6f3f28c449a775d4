"""Noise-stress mixing with the MIT-BIH Noise Stress Test Database (NSTDB), as PhysioNet's ``nst`` does it.

A noise record (``bw`` baseline wander, ``ma`` muscle artefact, ``em`` electrode motion) is scaled so that
the signal-to-noise ratio of the sum equals the requested value, then added to a clean ECG:
``noisy = clean + a * noise`` with ``a = sqrt(P_signal / (P_noise * 10**(snr_db / 10)))``. Powers are
mean squares of the mean-removed signals, measured per block (``nst`` uses 2-minute blocks; ecgcore's
denoise-pairs recipe uses each 10 s pair as its own block so every pair has exactly its nominal SNR).
"""
from __future__ import annotations

import numpy as np

__all__ = ["NOISE_TYPES", "noise_scale", "mix_at_snr", "snr_db"]

NOISE_TYPES = ("bw", "ma", "em")


def _power(x: np.ndarray, axis=-1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.mean((x - x.mean(axis=axis, keepdims=True)) ** 2, axis=axis)


def noise_scale(clean, noise, snr: float, axis: int = -1) -> np.ndarray:
    """Gain ``a`` that puts ``a * noise`` at ``snr`` dB below ``clean`` (per row along ``axis``)."""
    ps, pn = _power(clean, axis), _power(noise, axis)
    if np.any(pn <= 0):
        raise ValueError("the noise segment is constant (zero power): cannot scale it to an SNR")
    return np.sqrt(ps / (pn * 10.0 ** (snr / 10.0)))


def mix_at_snr(clean, noise, snr: float, axis: int = -1) -> np.ndarray:
    """``clean + a * noise`` with ``a`` from :func:`noise_scale`; shapes must match."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} segments must have the same shape")
    a = np.expand_dims(noise_scale(clean, noise, snr, axis), axis)
    return clean + a * (noise - noise.mean(axis=axis, keepdims=True))


def snr_db(clean, noisy, axis: int = -1) -> np.ndarray:
    """SNR of ``noisy`` relative to the reference ``clean``: 10 log10(P_clean / P_(noisy - clean))."""
    clean = np.asarray(clean, dtype=np.float64)
    err = np.asarray(noisy, dtype=np.float64) - clean
    return 10.0 * np.log10(_power(clean, axis) / _power(err, axis))
