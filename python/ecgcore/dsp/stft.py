"""Short-time Fourier transform (C++ core) in the conventions of scipy, torch and mlx_stft.

References and tolerances (checked by the test suite on MIT-BIH signals, float64 input; float32 input is
transformed in float64 and rounded, so it agrees to float32 precision):

* ``convention="scipy"``: ``scipy.signal.stft(x, nperseg=win_length, noverlap=win_length - hop, nfft=n_fft,
  window=..., boundary="zeros" if center else None, padded=True)[2]``, within 1e-10 of scipy relative to the
  largest magnitude.
* ``convention="torch"``: ``torch.stft(x, n_fft, hop, win_length, window, center, pad_mode="reflect",
  return_complex=True)`` -- frames of ``n_fft`` samples, window centred in the frame, no scaling (checked against a
  NumPy transcription of torch's definition; torch itself is not a dependency).
* ``convention="mlx"``: ``mlx_stft.STFT`` v0.1.1 -- frames of ``n_fft``, window at the start of the frame,
  ``n_fft // 2`` zeros on both sides; :func:`db_spectrogram`'s defaults are the HeartID seed's exact setting.

``output`` selects ``"complex"``, ``"magnitude"``, ``"power"`` (``|X|**2``) or ``"db"``
(``20 log10(|X| + db_offset)``, with ``top_db`` flooring each row and frequency bin at its maximum over frames
minus ``top_db``, as mlx_stft does).
"""
from __future__ import annotations

import numpy as np

from .._native import core, threads

__all__ = ["stft", "db_spectrogram", "heartid_stft", "get_window"]

_CONVENTIONS = ("scipy", "torch", "mlx")


def get_window(window, length: int) -> np.ndarray:
    """Window of ``length`` samples: an array, or ``"hann"`` (periodic, scipy/torch default),
    ``"hann_symmetric"``, ``"hamming"`` (periodic), ``"hamming_symmetric"``, ``"boxcar"``."""
    if not isinstance(window, str):
        w = np.asarray(window, dtype=np.float64)
        if w.shape != (length,):
            raise ValueError(f"window must have shape ({length},), got {w.shape}")
        return w
    if length < 1:
        raise ValueError("window length must be positive")
    name = window.lower()
    if name in ("boxcar", "ones", "rectangular"):
        return np.ones(length)
    symmetric = name.endswith("_symmetric")
    base = name.removesuffix("_symmetric")
    if base not in ("hann", "hamming"):
        raise ValueError(f"unknown window {window!r}: use 'hann', 'hamming' (optionally '_symmetric'), 'boxcar' "
                         "or an array")
    if length == 1:
        return np.ones(1)
    denom = length - 1 if symmetric else length
    phase = 2.0 * np.pi * np.arange(length) / denom
    a = 0.5 if base == "hann" else 0.54
    return a - (1.0 - a) * np.cos(phase)


def stft(x, *, n_fft: int = 256, hop: int | None = None, win_length: int | None = None, window="hann",
         center: bool = True, pad_mode: str | None = None, convention: str = "scipy", pad_end: bool = True,
         onesided: bool = True,
         scaling: str | None = "default", fs: float = 1.0, output: str = "complex", db_offset: float = 1e-5,
         top_db: float | None = None, axis: int = -1, workers: int | None = None) -> np.ndarray:
    """Short-time Fourier transform.

    Parameters
    ----------
    x : (..., n_samples) real array (float32 stays float32 on output).
    n_fft : FFT length (>= win_length).
    hop : frame step; default ``win_length - win_length // 2`` (scipy) or ``n_fft // 4`` (torch, mlx).
    win_length : window length; default ``n_fft``.
    window : name (see :func:`get_window`) or array of ``win_length`` samples.
    center : scipy: ``boundary="zeros"`` (``win_length // 2`` zeros each side); torch/mlx: pad ``n_fft // 2``.
    pad_mode : extension when centring: ``"zeros"``, ``"reflect"`` or ``"edge"``; default ``"zeros"`` (scipy,
        mlx) or ``"reflect"`` (torch).
    convention : ``"scipy"``, ``"torch"`` or ``"mlx"`` (see the module docstring).
    pad_end : scipy only: append zeros so that the last frame is complete (scipy's ``padded``).
    onesided : ``n_fft // 2 + 1`` frequency bins, else ``n_fft`` (negative frequencies after the positive ones).
    scaling : ``"spectrum"`` (divide by ``sum(window)``, scipy's default), ``"psd"`` (divide by
        ``sqrt(fs * sum(window**2))``) or None; ``"default"`` is ``"spectrum"`` for scipy and None otherwise.
    fs : sampling rate, used only by ``scaling="psd"``.
    output : ``"complex"``, ``"magnitude"``, ``"power"`` or ``"db"``.
    db_offset, top_db : dB conversion ``20 log10(|X| + db_offset)`` and optional floor at max - ``top_db``.
    axis : time axis of ``x``.
    workers : threads (None: all cores).

    Returns
    -------
    (..., n_freqs, n_frames) complex or real array (time axis moved last, frequencies before frames).
    """
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension (..., n_samples)")
    if np.iscomplexobj(x):
        raise ValueError("stft needs a real signal")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"x must be real numbers, got dtype {x.dtype}")
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    n_fft = int(n_fft)
    if n_fft < 1:
        raise ValueError(f"n_fft must be positive, got {n_fft}")
    win_length = n_fft if win_length is None else int(win_length)
    if not 1 <= win_length <= n_fft:
        raise ValueError(f"win_length must be in 1..n_fft ({n_fft}), got {win_length}")
    if hop is None:
        hop = win_length - win_length // 2 if convention == "scipy" else max(n_fft // 4, 1)
    hop = int(hop)
    if hop < 1:
        raise ValueError(f"hop must be positive, got {hop}")
    if pad_mode is None:
        pad_mode = "reflect" if convention == "torch" else "zeros"
    w = get_window(window, win_length)
    if scaling == "default":
        scaling = "spectrum" if convention == "scipy" else None
    if scaling == "spectrum":
        w = w / w.sum()
    elif scaling == "psd":
        w = w / np.sqrt(fs * np.sum(w * w))
    elif scaling is not None:
        raise ValueError(f"scaling must be 'spectrum', 'psd' or None, got {scaling!r}")

    buf = np.zeros(n_fft)
    if convention == "scipy":
        frame = win_length
        buf[:win_length] = w
        pad = win_length // 2 if center else 0
        n_ext = n + 2 * pad
        if n_ext < frame:
            raise ValueError(f"signal of {n} samples is shorter than one window of {frame}")
        if pad_end:  # scipy's padded=True: zeros appended so that the last frame is complete
            n_ext += (-(n_ext - frame) % hop) % frame
        n_frames = (n_ext - frame) // hop + 1
    else:
        frame = n_fft
        if convention == "torch":
            left = (n_fft - win_length) // 2
            buf[left:left + win_length] = w
        else:
            buf[:win_length] = w
        pad = n_fft // 2 if center else 0
        n_ext = n + 2 * pad
        if n_ext < frame:
            raise ValueError(f"signal of {n} samples (padded to {n_ext}) is shorter than one frame of {frame}")
        if convention == "torch" and pad_mode == "reflect" and pad >= n:
            raise ValueError(f"reflect padding of {pad} needs more than {pad} samples, got {n}")
        n_frames = (n_ext - frame) // hop + 1
    return core.stft(x, buf, hop, n_frames, pad, pad_mode, bool(onesided), output, float(db_offset),
                     -1.0 if top_db is None else float(top_db), threads(workers))


def db_spectrogram(x, *, n_fft: int = 1000, win_length: int = 500, hop: int = 250, top_db: float | None = 80.0,
                   axis: int = -1, workers: int | None = None) -> np.ndarray:
    """dB magnitude spectrogram in mlx_stft's convention, by default the HeartID seed's:
    ``mlx_stft.STFT(n_fft=1000, win_length=500, hop_length=250, return_db=True, onesided=True)`` (SPEC 1.2).

    Symmetric Hann of ``win_length`` zero-padded at the end to ``n_fft``, ``n_fft // 2`` zeros on both sides of
    the signal, hop ``hop``, ``20 log10(|X| + 1e-5)`` floored at each bin's maximum over frames minus ``top_db``.
    Reference: :func:`stft` with ``convention="mlx"``, ``output="db"`` (mlx_stft v0.1.1 within 1e-10).

    Parameters
    ----------
    x : (..., n_samples) ECG windows (the seed uses 1000 samples -> 5 frames).

    Returns
    -------
    (..., n_fft // 2 + 1, n_frames) dB spectrogram; HeartID's 501 features are its mean over the last axis.
    """
    return stft(x, n_fft=n_fft, win_length=win_length, hop=hop, window="hann_symmetric", center=True,
                pad_mode="zeros", convention="mlx", output="db", db_offset=1e-5, top_db=top_db, axis=axis,
                workers=workers)


#: Former name of :func:`db_spectrogram` (its defaults are the HeartID seed's setting); kept as an alias.
heartid_stft = db_spectrogram
