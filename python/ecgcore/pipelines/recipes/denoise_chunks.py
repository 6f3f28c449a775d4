"""The denoiser's input and output around its network (SPEC §2.2), in NumPy only: shared by the denoiser's
training and evaluation, ``ecgcore infer`` and ``ecgcore serve`` (which run the exported graph without torch).

Pipeline: z-score the whole signal (population std; std 0 → 1), cut it into 1300-sample chunks, zero-pad
the last short chunk, run the network on ``(n_chunks, 1, 1300)``, drop the padding, concatenate, and —
unlike the seed, which answers in z-score units — map the result back to the input's scale
(``y * std + mean``). ``seed_compat=True`` keeps the seed's z-score output.

Optional guard (a card's ``preprocessing.guard``, :func:`filter_guard`): the network's output is blended, second by
second, with the classical zero-phase band-pass of its input, in proportion to how much of their difference the
network's own error floor explains, so that clean stretches get (almost) the filter and noisy ones the network.

Optional pre-filter (a card's ``preprocessing.prefilter``, :func:`highpass_prefilter`): a zero-phase Butterworth
high-pass of the whole signal before the z-score. Strong baseline wander otherwise dominates the z-score's standard
deviation, so the network sees a shrunken ECG on a large drift and flattens the QRS complexes; the denoiser's target
is the clean ECG band-passed 0.5-45 Hz, so removing what lies below 0.5 Hz first loses nothing it should keep. The
input's mean is restored with its scale.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CHUNK_SIZE", "FS", "chunk", "denoise_array", "filter_guard", "highpass_prefilter", "restore_scale", "unchunk",
           "zscore"]

#: The denoiser's rate (Hz) and window: 10 s at 130 Hz, what the seed trains on and its API accepts.
FS = 130.0
CHUNK_SIZE = 1300


def _as_signal(signal) -> np.ndarray:
    x = np.asarray(signal)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"the ECG signal must hold real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.ndim != 1:
        raise ValueError(f"the ECG signal must be 1-D (n_samples,), got shape {x.shape}")
    if x.size == 0:
        raise ValueError("the ECG signal is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("the ECG signal contains NaN or infinite samples")
    return x


def zscore(signal) -> tuple[np.ndarray, float, float]:
    """``(x - mean) / std`` over the whole signal, as the seed does (``np.std``, ddof 0; std 0 → 1).

    Parameters
    ----------
    signal : (n_samples,) array

    Returns
    -------
    z : (n_samples,) float64, mean : float, std : float
    """
    x = _as_signal(signal)
    mean = float(x.mean())
    std = float(x.std())
    if std == 0.0:
        std = 1.0
    return (x - mean) / std, mean, std


def chunk(z: np.ndarray, size: int = CHUNK_SIZE) -> np.ndarray:
    """Cut ``(n,)`` into ``(ceil(n / size), 1, size)`` float32 chunks, the last one zero-padded."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 1:
        raise ValueError(f"chunk() takes a 1-D signal, got shape {z.shape}")
    n_chunks = -(-z.size // size)
    out = np.zeros((n_chunks, 1, size), dtype=np.float32)
    out.reshape(-1)[: z.size] = z
    return out


def unchunk(chunks: np.ndarray, n_samples: int) -> np.ndarray:
    """Inverse of :func:`chunk`: ``(n_chunks, 1, size)`` or ``(n_chunks, size)`` → ``(n_samples,)``."""
    chunks = np.asarray(chunks)
    flat = chunks.reshape(chunks.shape[0], -1).reshape(-1)
    if flat.size < n_samples:
        raise ValueError(f"{chunks.shape} chunks hold fewer than {n_samples} samples")
    return flat[:n_samples]


def restore_scale(y: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Map a z-score-unit output back to the input's units: ``y * std + mean``."""
    return np.asarray(y, dtype=np.float64) * std + mean


def filter_guard(x: np.ndarray, y: np.ndarray, *, fs: float = FS, kappa: float, segment_s: float = 1.0,
                 band=(0.5, 40.0), order: int = 3, power: float = 1.0) -> np.ndarray:
    """Blend a denoiser's output ``y`` with the band-pass of its input ``x``: ``y + g * (b - y)``, ``b`` the zero-phase
    Butterworth ``band`` of ``x``.

    Per segment of ``segment_s`` seconds, ``g = clip(kappa * P_y / mean((b - y_b)^2), 0, 1) ** power`` with ``y_b``
    the same band-pass of ``y`` and ``P_y`` its (mean-removed) power in the segment: ``b - y_b`` holds the in-band
    noise the network removed plus the network's own in-band error, and ``kappa * P_y`` estimates that error (its
    floor relative to the output's power, calibrated on training records). Where the removed part is no larger than
    the network's own error (clean or nearly clean input), ``g`` is near 1 and the filter's output is kept; where it
    is much larger (noise), ``g`` is near 0. This is the Wiener weight between two estimates with independent errors. ``g`` is interpolated linearly between
    segment centres, so the output has no steps.

    Parameters
    ----------
    x, y : (n,) input and network output in the same units (z-scores inside :func:`denoise_array`)
    fs : sampling rate in Hz
    kappa : the network's error power relative to its output power (0 turns the guard off)
    segment_s : seconds per weight
    band, order : the band-pass (the denoiser card's Butterworth baseline: 0.5-40 Hz, order 3)
    power : exponent on the clipped weight (below 1 leans towards the filter; 1 is the Wiener weight)

    Returns
    -------
    (n,) float64
    """
    from ...dsp import bandpass

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got {x.shape} and {y.shape}")
    if not kappa >= 0.0:
        raise ValueError(f"kappa must be >= 0, got {kappa!r}")
    if not power > 0.0:
        raise ValueError(f"power must be > 0, got {power!r}")
    n = x.size
    seg = max(1, int(round(segment_s * fs)))
    if kappa == 0.0 or n < 2 * seg:
        return y
    def bp(v):
        return bandpass(v, fs=fs, low=float(band[0]), high=float(band[1]), order=int(order))

    b = bp(x)
    d = b - y
    yb = bp(y)  # the weight compares in band: the network keeps what lies below the band, the filter does not
    k = -(-n // seg)
    pad = k * seg - n
    yp = np.pad(yb, (0, pad), mode="edge").reshape(k, seg)
    dp = np.pad(b - yb, (0, pad), mode="edge").reshape(k, seg)
    p_y = yp.var(axis=1)
    p_d = np.mean(dp * dp, axis=1)
    g = np.clip(kappa * p_y / np.maximum(p_d, 1e-12 * np.maximum(p_y, 1e-30)), 0.0, 1.0) ** power
    centres = (np.arange(k) + 0.5) * seg - 0.5
    return y + np.interp(np.arange(n, dtype=np.float64), centres, g) * d


def highpass_prefilter(x, *, fs: float = FS, highpass_hz: float = 0.5, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth high-pass along the last axis (``sosfiltfilt``, odd edge extension): a whole 1-D
    signal at inference, or rows of training windows ``(b, n)``.

    Signals too short for the forward-backward edge padding (a few samples) lose only their mean.

    Parameters
    ----------
    x : (n,) or (b, n) finite real samples
    fs : the sampling rate in Hz
    highpass_hz : cut-off in Hz (below ``fs / 2``)
    order : Butterworth order

    Returns
    -------
    float64 array of x's shape, mean close to 0 along the last axis
    """
    from ...dsp import butter, sosfiltfilt

    if np.ndim(x) == 1:
        x = _as_signal(x)
    else:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[-1] == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"highpass_prefilter takes finite (n,) or (b, n) samples, got shape {x.shape}")
    if not 0.0 < float(highpass_hz) < fs / 2:
        raise ValueError(f"highpass_hz must lie in (0, fs/2 = {fs / 2:g}) Hz, got {highpass_hz!r}")
    sos = butter(int(order), float(highpass_hz), "highpass", fs=float(fs))
    if x.shape[-1] <= 3 * (2 * sos.shape[0] + 1):
        return x - x.mean(axis=-1, keepdims=True)
    return sosfiltfilt(sos, x, axis=-1)


def denoise_array(signal, run: Callable[[np.ndarray], np.ndarray], *, seed_compat: bool = False,
                  batch_size: int = 64, size: int = CHUNK_SIZE, guard: dict | None = None,
                  fs: float = FS, prefilter: dict | None = None) -> np.ndarray:
    """Denoise an arbitrary-length 1-D signal with ``run`` (a network on ``(batch, 1, size)`` float32).

    Parameters
    ----------
    signal : (n_samples,) ECG at 130 Hz, any unit
    run : callable mapping ``(b, 1, size)`` float32 to ``(b, 1, size)`` (torch module wrapper or an
        onnxruntime session wrapper)
    seed_compat : return z-score units as the seed API did, instead of the input's units
    batch_size : chunks per call of ``run``
    guard : keyword arguments of :func:`filter_guard` (``kappa`` at least), applied in z-score units; None: off
    fs : the signal's rate (the model's, 130 Hz), for the guard's and the pre-filter's filters
    prefilter : keyword arguments of :func:`highpass_prefilter` (``highpass_hz``, ``order``), applied before the
        z-score; the input's own mean is restored with the scale. None: off

    Returns
    -------
    (n_samples,) float64 denoised signal
    """
    if prefilter:
        x0 = _as_signal(signal)
        z, _, std = zscore(highpass_prefilter(x0, fs=fs, **prefilter))
        mean = float(x0.mean())
    else:
        z, mean, std = zscore(signal)
    x = chunk(z, size)
    outs = [np.asarray(run(x[i: i + batch_size])) for i in range(0, x.shape[0], batch_size)]
    y = unchunk(np.concatenate(outs, axis=0), z.size).astype(np.float64)
    if guard:
        y = filter_guard(z, y, fs=fs, **guard)
    return y if seed_compat else restore_scale(y, mean, std)
