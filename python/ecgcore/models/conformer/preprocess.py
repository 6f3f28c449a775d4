"""Network inputs for any ECG from a model card's ``preprocessing`` alone (NumPy + the C++ core, no TensorFlow).

This is the inference-time twin of the ``tfrecords`` recipe + :mod:`.data`: the same beat cut, |Morlet|
scalograms, 3-beat sequences labelled by their last beat, per-column normalisation and (if the card has them)
RR features, so that ``ecgcore infer`` can classify the beats of any record with ``model.onnx``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sequence_inputs"]


def sequence_inputs(signal, r_peaks, preprocessing: dict, *, fs: float | None = None,
                    workers: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Feeds for ``model.onnx`` and, for each sequence, the index (into ``r_peaks``) of the beat it classifies.

    Parameters
    ----------
    signal : (n_samples,) one lead in physical units (the card's ``lead``), at the card's ``fs``.
    r_peaks : (n_beats,) increasing R-peak sample indices (reference annotations or detections).
    preprocessing : ``card.preprocessing`` of a ``beats-aami`` model.
    fs : the signal's sampling rate; must equal the card's (the network was trained at 360 Hz).

    Returns
    -------
    feeds : ``{"scalograms": (n_seq, 3, 32, 187, 1) float32[, "rr": (n_seq, 3, k) float32]}`` (k: 4 / 7 columns
        for the card's ``rr-intervals-v1`` / ``-v2``, 14 / 12 / 14 for ``rr-morph-v3`` / ``-v4`` / ``-v5``)
    beat_index : (n_seq,) int64 index into ``r_peaks`` of each sequence's last beat (the classified one).
        Beats too close to the record's ends are dropped (as in training); the first two kept beats have no
        sequence of their own.
    """
    from ...dsp import beat_sequences, morlet_scalogram, segment_beats
    from ...pipelines.recipes.beats_scalograms import beat_side_features

    pre = preprocessing
    if fs is not None and abs(float(fs) - float(pre["fs"])) > 1e-6:
        raise ValueError(f"signal is at {fs} Hz but the model needs {pre['fs']} Hz; resample it first")
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"signal must be one lead (n_samples,), got shape {x.shape}")
    r = np.asarray(r_peaks, dtype=np.int64)
    before, after, length = int(pre["before"]), int(pre["after"]), int(pre["sequence_length"])
    # Training kept beats with before < R < n - after (strict on the left, as the seed).
    keep = np.flatnonzero((r > before) & (r < len(x) - after))
    beats, kept = segment_beats(x, r[keep], before=before, after=after, edge="drop", workers=workers)
    idx = keep[kept]
    lo, hi = pre["scales"]
    scal = morlet_scalogram(beats.astype(np.float32), np.arange(int(lo), int(hi) + 1, dtype=np.float64),
                            pre["wavelet"], workers=workers)
    seqs, last = beat_sequences(scal, idx, length=length)
    mean = np.asarray(pre["normalization"]["mean"], np.float32)
    scale = np.asarray(pre["normalization"]["scale"], np.float32)
    feeds = {"scalograms": ((seqs - mean) / scale)[..., None].astype(np.float32)}
    if "rr_features" in pre:
        rr_pre = pre["rr_features"]
        feats = beat_side_features(rr_pre.get("function", "rr-intervals-v1"), r[idx], fs=float(pre["fs"]), signal=x)
        feats = (feats - np.asarray(rr_pre["mean"])) / np.asarray(rr_pre["scale"])
        win = np.arange(len(seqs))[:, None] + np.arange(length)[None, :]
        feeds["rr"] = feats[win].astype(np.float32)
    return feeds, last.astype(np.int64)
