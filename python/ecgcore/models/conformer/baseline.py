"""A simple baseline for the AAMI beat classifier: RR intervals and a few morphology features, logistic regression.

What the network's card compares itself with, in the spirit of de Chazal et al. (2004) and Mondéjar-Guerra et al.
(2019): per beat (the annotated beats the ``tfrecords`` recipe keeps: an AAMI class of the model's labelling and a
full 93-sample window on each side), from MLII band-passed 0.5–40 Hz:

* the same four RR features as the network's ``rr`` input (``rr-intervals-v1``: pre, post and local RR over the
  record's average, and that average in s);
* 13 samples of the beat from −200 to +400 ms every 50 ms, minus the beat's PR-level baseline (mean over −250 …
  −150 ms), divided by the record's median R amplitude;
* QRS width: the time within ±150 ms around R during which |x| exceeds half the beat's peak |x| (s);
* the beat's peak |x| over ±100 ms divided by the record's median (amplitude relative to the patient's own).

Standardised on the training beats, then a multinomial logistic regression with balanced class weights
(scikit-learn, no tuning). Trained on DS1, scored on every DS2 beat (inter-patient protocol).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["beat_features", "FEATURE_NAMES", "fit_baseline", "evaluate_baseline"]

_OFFSETS_S = np.round(np.arange(-0.2, 0.4001, 0.05), 3)
FEATURE_NAMES = (["pre_rr/avg", "post_rr/avg", "local_rr/avg", "avg_rr_s"] + [f"x({t:+.2f}s)" for t in _OFFSETS_S]
                 + ["qrs_width_s", "r_amp/median"])
CLASSES = ("N", "S", "V", "F", "Q")


def beat_features(record_path, *, variant: str = "conformer", before: int = 93, after: int = 93,
                  lead: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 19) float64, labels (n,) int class index) of one annotated record's kept beats."""
    from ...datasets.mitdb import aami_labels
    from ...dsp import bandpass
    from ...io import read_record
    from ...pipelines.recipes.beats_scalograms import rr_features_for_beats

    rec = read_record(record_path)
    ann = rec.annotations
    if ann is None:
        raise ValueError(f"{record_path}: no reference annotations")
    fs = float(rec.fs)
    cls = aami_labels(ann.symbol, variant)
    keep = (cls != "") & (ann.sample > before) & (ann.sample < rec.n_samples - after)
    r = ann.sample[keep].astype(np.int64)
    y = np.array([CLASSES.index(c) for c in cls[keep]], np.int64)
    x = bandpass(np.asarray(rec.signal[:, lead], np.float64), fs=fs, low=0.5, high=40.0, order=3)
    n = x.size

    def at(idx):
        return x[np.clip(idx, 0, n - 1)]

    base_idx = r[:, None] + np.arange(int(-0.25 * fs), int(-0.15 * fs))[None, :]
    base = at(base_idx).mean(1)
    win = r[:, None] + np.arange(-int(0.1 * fs), int(0.1 * fs) + 1)[None, :]
    seg = np.abs(at(win) - base[:, None])
    peak = seg.max(1)
    ref_amp = float(np.median(peak)) or 1.0
    shape = (at(r[:, None] + np.round(_OFFSETS_S * fs).astype(np.int64)[None, :]) - base[:, None]) / ref_amp
    wide = r[:, None] + np.arange(-int(0.15 * fs), int(0.15 * fs) + 1)[None, :]
    width = (np.abs(at(wide) - base[:, None]) > 0.5 * peak[:, None]).sum(1) / fs
    rr = rr_features_for_beats(r, fs=fs).astype(np.float64)
    feats = np.column_stack([rr, shape, width, peak / ref_amp])
    return feats, y


def _stack(records_dir, records, variant):
    xs, ys = [], []
    for rec in records:
        f, y = beat_features(Path(records_dir) / rec, variant=variant)
        xs.append(f)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def fit_baseline(records_dir, records, *, variant: str = "conformer", seed: int = 42):
    """A fitted scikit-learn pipeline (StandardScaler → LogisticRegression, balanced) on ``records``' beats."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _stack(records_dir, records, variant)
    clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=3000, C=1.0,
                                                             random_state=seed))
    clf.fit(x, y)
    return clf


def evaluate_baseline(records_dir, train_records=None, test_records=None, *, variant: str = "conformer") -> dict:
    """Fit on ``train_records`` (default DS1), score every beat of ``test_records`` (default DS2): AAMI figures."""
    from ...datasets.mitdb import DS1, DS2
    from .metrics import aami_metrics, confusion

    train_records = list(train_records or DS1)
    test_records = list(test_records or DS2)
    t0 = time.time()
    clf = fit_baseline(records_dir, train_records, variant=variant)
    x, y = _stack(records_dir, test_records, variant)
    pred = clf.predict(x)
    cm = confusion(y, pred)
    m = aami_metrics(cm)
    m.update(confusion=cm.tolist(), model="RR (4) + morphology (15) features, standardised, logistic regression "
             "(balanced class weights)", features=FEATURE_NAMES, train_records=train_records,
             test_records=test_records, beats="reference annotations", seconds=time.time() - t0)
    return m
