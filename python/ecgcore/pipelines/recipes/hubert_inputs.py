"""HuBERT-ECG model input of one record (SPEC 5.1), in NumPy + ``ecgcore.dsp`` only: what ``ecgcore infer`` feeds a
model card whose preprocessing kind is ``hubert-features``, and what the HuBERT training builds its inputs with.

The per-record transform is the ``hubert-features`` recipe's (zero-phase Butterworth band-pass 0.05-47 Hz of order 4,
FFT resample to 500 Hz, per-lead min-max to [-1, 1] with eps 1e-8, first 5 s, leads zero-filled up to 12), then the
seed's model-input step: the leads are flattened lead-major (12 x 2500 = 30,000 samples) and the **flattened** vector
is decimated by 5 (``scipy.signal.decimate`` semantics) to 6000 = 12 leads x 5 s x 100 Hz.
"""
from __future__ import annotations

import numpy as np

__all__ = ["PREPROCESSING", "STANDARD_LEADS", "build_input", "standardise"]

STANDARD_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

# The card's ``preprocessing`` dict (``kind`` = the recipe whose per-record transform this is).
PREPROCESSING: dict = {
    "kind": "hubert-features",
    "band": [0.05, 47.0],
    "order": 4,
    "resample_fs": 500.0,
    "scaling": "minmax[-1,1]",
    "eps": 1e-8,
    "seconds": 5.0,
    "offset_s": 0.0,
    "decimate": 5,
    "model_fs": 100,
    "leads": list(STANDARD_LEADS),
    "n_leads": 12,
    "input_fs": 500.0,
    "layout": "lead-major flattened, then decimated as one vector",
}


def _reorder(signal: np.ndarray, names, n_leads: int) -> np.ndarray:
    """Standard 12-lead order when the record names its leads so; else the record's order. Zero-fill to n_leads."""
    if names is not None and len(names) == signal.shape[0]:
        up = [str(n).upper() for n in names]
        if set(up) <= set(STANDARD_LEADS) and len(set(up)) == len(up):
            out = np.zeros((n_leads, signal.shape[1]), dtype=signal.dtype)
            for i, n in enumerate(up):
                j = STANDARD_LEADS.index(n)
                if j < n_leads:
                    out[j] = signal[i]
            return out
    if signal.shape[0] > n_leads:
        raise ValueError(f"{signal.shape[0]} leads, more than the model's {n_leads}")
    if signal.shape[0] < n_leads:
        signal = np.concatenate([signal, np.zeros((n_leads - signal.shape[0], signal.shape[1]), signal.dtype)])
    return signal


def standardise(signal, fs: float, *, band=(0.05, 47.0), order: int = 4, resample_fs: float = 500.0,
                eps: float = 1e-8, workers: int | None = None) -> np.ndarray:
    """The ``hubert-features`` per-record transform: band-pass, FFT resample to ``resample_fs``, min-max to [-1, 1].

    Parameters
    ----------
    signal : (leads, samples) float array at ``fs``.

    Returns
    -------
    (leads, round(samples * resample_fs / fs)) float64.
    """
    from ...dsp import bandpass, resample

    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] > x.shape[1]:
        raise ValueError(f"expected a (leads, samples) ECG, got shape {x.shape}")
    if not np.isfinite(x).all():
        # The seed replaces NaNs by the mean of the valid samples (per record).
        finite = np.isfinite(x)
        if not finite.any():
            raise ValueError("the ECG has no finite sample")
        x = np.where(finite, x, x[finite].mean())
    low, high = band
    x = bandpass(x, fs=fs, low=low, high=min(high, 0.45 * fs), order=int(order), workers=workers)
    if fs != resample_fs:
        x = resample(x, int(round(x.shape[1] * resample_fs / fs)), workers=workers)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return 2.0 * (x - lo) / (hi - lo + eps) - 1.0


def build_input(signal, fs: float, *, leads=None, preprocessing: dict | None = None, seconds: float | None = None,
                workers: int | None = None) -> np.ndarray:
    """One model input from a raw ECG.

    Parameters
    ----------
    signal : (leads, samples) raw ECG at ``fs`` (any unit).
    leads : lead names of ``signal`` (reordered to I, II, III, aVR, aVL, aVF, V1-V6 when they are those names).
    preprocessing : the card's dict (default :data:`PREPROCESSING`).
    seconds : override the window length (10 s windows feed test-time augmentation crops).

    Returns
    -------
    (n_leads * seconds * model_fs,) float32, lead-major.
    """
    from ...dsp import decimate

    p = {**PREPROCESSING, **(preprocessing or {})}
    seconds = float(p["seconds"] if seconds is None else seconds)
    x = standardise(signal, fs, band=p["band"], order=p["order"], resample_fs=p["resample_fs"], eps=p["eps"],
                    workers=workers)
    rfs = float(p["resample_fs"])
    start, n = int(round(float(p["offset_s"]) * rfs)), int(round(seconds * rfs))
    if x.shape[1] < start + n:
        raise ValueError(f"ECG too short: {x.shape[1] / rfs:.2f} s at {rfs:g} Hz, the model takes {seconds:g} s "
                         f"from {float(p['offset_s']):g} s")
    x = _reorder(x[:, start:start + n], leads, int(p["n_leads"]))
    q = int(p["decimate"])
    return decimate(x.reshape(-1), q, workers=workers).astype(np.float32)
