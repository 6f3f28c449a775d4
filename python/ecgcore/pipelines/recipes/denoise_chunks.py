"""The denoiser's input and output around its network (SPEC §2.2), in NumPy only: shared by the denoiser's
training and evaluation, ``ecgcore infer`` and ``ecgcore serve`` (which run the exported graph without torch).

Pipeline: z-score the whole signal (population std; std 0 → 1), cut it into 1300-sample chunks, zero-pad
the last short chunk, run the network on ``(n_chunks, 1, 1300)``, drop the padding, concatenate, and —
unlike the seed, which answers in z-score units — map the result back to the input's scale
(``y * std + mean``). ``seed_compat=True`` keeps the seed's z-score output.

Optional guard (a card's ``preprocessing.guard``): the network's output is blended, second by second, with the
classical zero-phase band-pass of its input, so that clean stretches get (almost) the filter and noisy ones the
network. Two forms: :func:`filter_guard` (``kappa``: the share of the removed part the network's own error floor
explains) and :func:`learned_guard` (``"kind": "logistic"``: the network also runs on the negated input, and a
logistic model on per-second features, among them the two passes' disagreement, gives the weight; fitted on PTB-XL
people the network never saw by ``tools/denoiser_guard.py --kind logistic``).

Optional pre-filter (a card's ``preprocessing.prefilter``, :func:`highpass_prefilter`): a zero-phase Butterworth
high-pass of the whole signal before the z-score. Strong baseline wander otherwise dominates the z-score's standard
deviation, so the network sees a shrunken ECG on a large drift and flattens the QRS complexes; the denoiser's target
is the clean ECG band-passed 0.5-45 Hz, so removing what lies below 0.5 Hz first loses nothing it should keep. The
input's mean is restored with its scale.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CHUNK_SIZE", "FS", "GUARD_FEATURES", "chunk", "denoise_array", "filter_guard", "guard_design", "guard_features",
           "highpass_prefilter", "learned_guard", "restore_scale", "unchunk", "zscore"]

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
    p_y = _segments(yb, seg, k).var(axis=1)
    p_d = _segment_power(b - yb, seg, k)
    g = np.clip(kappa * p_y / np.maximum(p_d, 1e-12 * np.maximum(p_y, 1e-30)), 0.0, 1.0) ** power
    return _blend(y, d, g, seg)


def _segments(v: np.ndarray, seg: int, k: int) -> np.ndarray:
    """``v`` as ``(k, seg)`` segments, the last one edge-padded."""
    return np.pad(v, (0, k * seg - v.size), mode="edge").reshape(k, seg)


def _segment_power(v: np.ndarray, seg: int, k: int) -> np.ndarray:
    """Mean square of ``v`` per segment."""
    return np.mean(_segments(v, seg, k) ** 2, axis=1)


def _blend(y: np.ndarray, d: np.ndarray, g: np.ndarray, seg: int) -> np.ndarray:
    """``y + g * d`` with the per-segment weights ``g`` interpolated linearly between segment centres (no steps)."""
    centres = (np.arange(g.size) + 0.5) * seg - 0.5
    return y + np.interp(np.arange(y.size, dtype=np.float64), centres, g) * d


#: The learned guard's per-segment features (:func:`guard_features`), in column order; all are logarithms of mean
#: powers in the segment. ``P_y``: the (band-passed, mean-removed) output; ``r``: what the output removed in band.
GUARD_FEATURES = ("log P_r / P_y: removed in-band power relative to the output",
                  "log P_x,hf / P_y: the input's 20-40 Hz power relative to the output (muscle noise)",
                  "log P_r,hf / P_r: the removed part's 20-40 Hz share",
                  "log P_r,lf / P_r: the removed part's 0.5-4 Hz share (wander, motion)",
                  "log P_dis / P_y: the sign-flip passes' disagreement relative to the output (the network's doubt)",
                  "log P_y: the output's power in z-score units")


#: What a card's learned guard may carry beside its model: the fit's record (see tools/denoiser_guard.py).
_GUARD_RECORD_KEYS = frozenset({"features", "l2", "snr_weights", "converged", "objective"})


def guard_features(z: np.ndarray, y: np.ndarray, y_flip: np.ndarray, *, fs: float = FS, segment_s: float = 1.0,
                   band=(0.5, 40.0), order: int = 3, smooth_segments: int = 5, b: np.ndarray | None = None
                   ) -> np.ndarray:
    """The learned guard's inputs: per ``segment_s`` segment, the :data:`GUARD_FEATURES` and their centred moving
    average over ``smooth_segments`` segments (edges repeat the end values).

    Parameters
    ----------
    z : (n,) the network's input (z-score units)
    y, y_flip : (n,) the network's output for ``z``, and minus its output for ``-z`` (the same estimate if the network
        were odd; their difference measures its doubt)
    fs, segment_s, band, order : the rate, the segment length and the band-pass of :func:`filter_guard`
    smooth_segments : width of the moving average (odd; 1: none)
    b : the ``band`` band-pass of ``z`` when the caller has it already (None: computed here)

    Returns
    -------
    (ceil(n / segment), 2 * len(GUARD_FEATURES)) float64: the features, then their moving averages
    """
    from scipy.ndimage import uniform_filter1d

    from ...dsp import bandpass

    z, y, y_flip = (np.asarray(v, dtype=np.float64) for v in (z, y, y_flip))
    if not (z.shape == y.shape == y_flip.shape) or z.ndim != 1:
        raise ValueError(f"z, y and y_flip must be 1-D of one length, got {z.shape}, {y.shape}, {y_flip.shape}")
    seg = max(1, int(round(segment_s * fs)))
    k = -(-z.size // seg)
    lo, hi = float(band[0]), float(band[1])

    def bp(v, a=lo, b=hi):
        return bandpass(v, fs=fs, low=a, high=b, order=int(order))

    ym = 0.5 * (y + y_flip)
    yb = bp(ym)
    r = (bp(z) if b is None else np.asarray(b, dtype=np.float64)) - yb
    eps = 1e-12
    p_y = _segments(yb, seg, k).var(axis=1) + eps
    p_r = _segment_power(r, seg, k) + eps
    f = np.stack([np.log(p_r / p_y),
                  np.log((_segment_power(bp(z, 20.0, hi), seg, k) + eps) / p_y),
                  np.log((_segment_power(bp(r, 20.0, hi), seg, k) + eps) / p_r),
                  np.log((_segment_power(bp(r, lo, 4.0), seg, k) + eps) / p_r),
                  np.log((_segment_power(0.5 * (y - y_flip), seg, k) + eps) / p_y),
                  np.log(p_y)], axis=1)
    w = max(1, int(smooth_segments))
    return np.concatenate([f, uniform_filter1d(f, w, axis=0, mode="nearest")], axis=1)


def guard_design(features: np.ndarray, quadratic: bool = True) -> np.ndarray:
    """The logistic model's inputs: the features, and their squares when ``quadratic``."""
    f = np.asarray(features, dtype=np.float64)
    return np.concatenate([f, f * f], axis=1) if quadratic else f


def learned_guard(z: np.ndarray, y: np.ndarray, y_flip: np.ndarray, *, weights, bias: float, center, scale,
                  fs: float = FS, segment_s: float = 1.0, band=(0.5, 40.0), order: int = 3, smooth_segments: int = 5,
                  quadratic: bool = True, kind: str = "logistic", **_card) -> np.ndarray:
    """The learned filter guard: ``m + g * (b - m)`` with ``m = (y + y_flip) / 2`` (the two sign passes averaged) and
    ``b`` the ``band`` Butterworth band-pass of ``z``; per segment ``g = sigmoid(((F - center) / scale) . weights +
    bias)``, ``F`` the :func:`guard_design` of :func:`guard_features`, interpolated linearly between segment centres
    as in :func:`filter_guard`.

    Parameters
    ----------
    z, y, y_flip : see :func:`guard_features`
    weights, bias, center, scale : the fitted logistic model (a card's ``preprocessing.guard``)
    fs, segment_s, band, order, smooth_segments, quadratic : the features' settings, as fitted
    kind : must be ``"logistic"``
    _card : the fit's record a card keeps beside the model (``features``, which must name :data:`GUARD_FEATURES` in
        order, ``l2``, ``snr_weights``, ``converged``, ``objective``); any other key is refused

    Returns
    -------
    (n,) float64 in z's units
    """
    from scipy.special import expit

    from ...dsp import bandpass

    if kind != "logistic":
        raise ValueError(f"learned_guard takes a logistic guard, got kind {kind!r}")
    unknown = set(_card) - _GUARD_RECORD_KEYS
    if unknown:
        raise ValueError(f"unknown learned-guard settings {sorted(unknown)}; known: the keyword arguments and "
                         f"{sorted(_GUARD_RECORD_KEYS)}")
    if "features" in _card and list(_card["features"]) != list(GUARD_FEATURES):
        raise ValueError("the guard was fitted on other features than this version computes "
                         f"({list(_card['features'])} vs {list(GUARD_FEATURES)}); refit it")
    z, y, y_flip = (np.asarray(v, dtype=np.float64) for v in (z, y, y_flip))
    m = 0.5 * (y + y_flip)
    seg = max(1, int(round(segment_s * fs)))
    if z.size < 2 * seg:
        return m
    b = bandpass(z, fs=fs, low=float(band[0]), high=float(band[1]), order=int(order))
    X = guard_design(guard_features(z, y, y_flip, fs=fs, segment_s=segment_s, band=band, order=order,
                                    smooth_segments=smooth_segments, b=b), quadratic)
    w, c, sc = (np.asarray(v, dtype=np.float64) for v in (weights, center, scale))
    if not (w.shape == c.shape == sc.shape == (X.shape[1],)):
        raise ValueError(f"the guard's weights, center and scale must each hold {X.shape[1]} numbers, got "
                         f"{w.shape}, {c.shape}, {sc.shape}")
    return _blend(m, b - m, expit(((X - c) / sc) @ w + float(bias)), seg)


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
    guard : keyword arguments of :func:`filter_guard` (``kappa`` at least), or of :func:`learned_guard` with
        ``"kind": "logistic"`` (the network then also runs on ``-z``), applied in z-score units; None: off
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
    def network(v):
        x = chunk(v, size)
        outs = [np.asarray(run(x[i: i + batch_size])) for i in range(0, x.shape[0], batch_size)]
        return unchunk(np.concatenate(outs, axis=0), v.size).astype(np.float64)

    kind = guard.get("kind", "kappa") if guard else None
    if kind not in (None, "kappa", "logistic"):
        raise ValueError(f"unknown filter guard kind {kind!r}: 'kappa' (filter_guard) or 'logistic' (learned_guard)")
    y = network(z)
    if kind == "logistic":
        y = learned_guard(z, y, -network(-z), fs=fs, **guard)
    elif kind == "kappa":
        y = filter_guard(z, y, fs=fs, **{k: v for k, v in guard.items() if k != "kind"})
    return y if seed_compat else restore_scale(y, mean, std)
