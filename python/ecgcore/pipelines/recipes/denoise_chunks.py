"""The denoiser's input and output around its network (SPEC §2.2), in NumPy only: shared by the denoiser's
training and evaluation, ``ecgcore infer`` and ``ecgcore serve`` (which run the exported graph without torch).

Pipeline: z-score the whole signal (population std; std 0 → 1), cut it into 1300-sample chunks, zero-pad
the last short chunk, run the network on ``(n_chunks, 1, 1300)``, drop the padding, concatenate, and —
unlike the seed, which answers in z-score units — map the result back to the input's scale
(``y * std + mean``). ``seed_compat=True`` keeps the seed's z-score output.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CHUNK_SIZE", "FS", "chunk", "denoise_array", "restore_scale", "unchunk", "zscore"]

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


def denoise_array(signal, run: Callable[[np.ndarray], np.ndarray], *, seed_compat: bool = False,
                  batch_size: int = 64, size: int = CHUNK_SIZE) -> np.ndarray:
    """Denoise an arbitrary-length 1-D signal with ``run`` (a network on ``(batch, 1, size)`` float32).

    Parameters
    ----------
    signal : (n_samples,) ECG at 130 Hz, any unit
    run : callable mapping ``(b, 1, size)`` float32 to ``(b, 1, size)`` (torch module wrapper or an
        onnxruntime session wrapper)
    seed_compat : return z-score units as the seed API did, instead of the input's units
    batch_size : chunks per call of ``run``

    Returns
    -------
    (n_samples,) float64 denoised signal
    """
    z, mean, std = zscore(signal)
    x = chunk(z, size)
    outs = [np.asarray(run(x[i: i + batch_size])) for i in range(0, x.shape[0], batch_size)]
    y = unchunk(np.concatenate(outs, axis=0), z.size).astype(np.float64)
    return y if seed_compat else restore_scale(y, mean, std)
