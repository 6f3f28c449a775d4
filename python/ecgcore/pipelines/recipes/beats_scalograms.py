"""``beats-scalograms`` (SPEC §4.2): 187-sample beats and |Morlet| scalograms, one HDF5 per record.

As the Conformer seed: the first channel in physical units, unfiltered; a beat for every reference
annotation whose symbol has an AAMI class (the seed's map: N = N L R e j n B, S = A a J S, V = V E, F = F,
Q = / f Q ?) and whose R-peak satisfies 93 < R < n - 93; samples [R - 93, R + 94); scalogram
|pywt.cwt(beat, 1..32, "morl")| as float32 (32 x 187). Records 102, 104 and 107 are left out by default
(217 is kept), as the seed does.

``<record>.h5``: ``scalograms`` (n, 32, 187) float32, ``beats`` (n, 187) float32, ``r_peaks`` int64,
``labels`` int32 (class index 0-4), ``aami`` (class letters); attributes fs, lead, scales, version.
``metadata.json``: the seed's list of {record_name, beat_index, label}, sorted by record and index.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ..._version import __version__
from ...datasets.mitdb import AAMI_CLASSES, DS1, DS2, aami_labels
from ...dsp import detect_r_peaks, morlet_scalogram, rr_features, segment_beats
from ...io import Record, read_record
from .base import Recipe, RecordResult, wfdb_records, write_json

SEED_EXCLUDED = ("102", "104", "107")


def seed_metadata_json(labels: dict[str, list[int]]) -> str:
    """The seed's ``metadata.json``: ``json.dumps([{record_name, beat_index, label}, ...], indent=4)``.

    ``labels`` maps each record (in file order) to its beats' class indices. The same text as ``json.dumps``,
    byte for byte, without building 100k dicts and running the pure-Python indenting encoder over them.
    """
    parts = []
    for rec, labs in labels.items():
        head = '    {\n        "record_name": ' + json.dumps(rec) + ',\n        "beat_index": '
        parts.extend(f'{head}{i},\n        "label": {int(lab)}\n    }}' for i, lab in enumerate(labs))
    return "[\n" + ",\n".join(parts) + "\n]" if parts else "[]"


def write_h5(path: Path, datasets: dict, attrs: dict) -> None:
    """Datasets (contiguous, uncompressed) and attributes, in insertion order, atomically; no timestamps in the
    file (root group included: ``h5py.File(track_order=True)`` would stamp it), so equal data give equal bytes."""
    import h5py

    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    order = h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED
    fcpl.set_link_creation_order(order)
    fcpl.set_attr_creation_order(order)
    with atomic_write(path) as tmp:
        with h5py.File(h5py.h5f.create(str(tmp).encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)) as h5:
            for name, arr in datasets.items():
                h5.create_dataset(name, data=arr, track_times=False)
            for k, v in attrs.items():
                h5.attrs[k] = v


def transform(rec: Record, options: dict, *, peaks: str = "annotations") -> dict:
    """The per-record transform of this recipe, shared by ``run()`` and ``ecgcore infer``.

    Parameters
    ----------
    rec : the record (signal (n_samples, n_leads) in physical units).
    options : this recipe's options (``before``, ``after``, ``scales``, ``wavelet``, ``lead``, ``variant``;
        ``_threads`` for the C++ kernels).
    peaks : ``"annotations"`` (the seed: reference beats with an AAMI class, an error without a ``.atr``),
        ``"detect"`` (``detect_r_peaks`` on the lead, no labels) or ``"auto"`` (annotations when present).

    Returns
    -------
    dict with ``beats`` (n, before+after+1) float64, ``scalograms`` (n, n_scales, before+after+1) float32,
    ``r_peaks`` (n,) int64, ``labels`` (n,) int32 class index 0-4 (-1 when the peaks were detected),
    ``aami`` (n,) class letters ("" when detected), ``scales`` (n_scales,) float64, ``peaks`` (the source used).
    """
    threads = options.get("_threads", 0)
    before, after = int(options["before"]), int(options["after"])
    lead = int(options["lead"])
    if peaks not in ("annotations", "detect", "auto"):
        raise ValueError(f"peaks must be 'annotations', 'detect' or 'auto', got {peaks!r}")
    if peaks == "auto":
        peaks = "annotations" if rec.annotations is not None else "detect"
    if lead >= rec.n_leads:
        raise ValueError(f"{rec.name}: lead {lead} requested, the record has {rec.n_leads}")
    x = rec.signal[:, lead]
    if peaks == "annotations":
        if rec.annotations is None:
            raise ValueError(f"{rec.name}: no .atr reference annotations")
        ann = rec.annotations
        cls = aami_labels(ann.symbol, options["variant"])
        # The seed keeps 93 < R < n - 93 (strict), one sample stricter on the left than "fits in the record".
        keep = (cls != "") & (ann.sample > before) & (ann.sample < rec.n_samples - after)
        r_peaks, cls = ann.sample[keep], cls[keep]
    else:
        r_peaks = np.asarray(detect_r_peaks(x, fs=rec.fs, workers=threads), dtype=np.int64)
        r_peaks = r_peaks[(r_peaks > before) & (r_peaks < rec.n_samples - after)]
        cls = np.full(r_peaks.size, "", dtype="<U1")
    beats, kept = segment_beats(x, r_peaks, before=before, after=after, edge="drop", workers=threads)
    r_peaks, cls = r_peaks[kept], cls[kept]
    lo, hi = options["scales"]
    scales = np.arange(int(lo), int(hi) + 1, dtype=np.float64)
    scal = morlet_scalogram(beats, scales, options["wavelet"], workers=threads) if len(beats) else \
        np.zeros((0, scales.size, before + after + 1), np.float32)
    labels = np.array([AAMI_CLASSES.index(c) if c else -1 for c in cls], dtype=np.int32)
    return {"beats": beats, "scalograms": scal, "r_peaks": r_peaks, "labels": labels, "aami": cls,
            "scales": scales, "peaks": peaks}


def record_scalograms(in_dir: Path, item: str, options: dict):
    """(record, beats, scalograms, r_peaks, labels, aami letters, scales) of one record, as the seed cuts them."""
    rec = read_record(in_dir / item, workers=options.get("_threads", 0))
    if rec.annotations is None:
        raise ValueError(f"{item}: no .atr reference annotations")
    t = transform(rec, options, peaks="annotations")
    return rec, t["beats"], t["scalograms"], t["r_peaks"], t["labels"], t["aami"], t["scales"]


def rr_features_for_beats(r_peaks, *, fs: float) -> np.ndarray:
    """RR features of the beats at ``r_peaks``: (n, 4) float32 ``[pre/avg, post/avg, local/avg, avg]`` from
    :func:`ecgcore.dsp.rr_features` (RR intervals in s; avg = the record's average RR). Missing pre/post RR take
    the local RR, a missing local RR the mean pre-RR. The Conformer's optional second input (``rr``)."""
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    if r_peaks.size < 2:
        raise ValueError("RR features need at least two beats")
    f = rr_features(r_peaks, fs=fs)
    pre, post, local, avg = f[:, 0], f[:, 1], f[:, 2], f[:, 3]
    local = np.where(np.isnan(local), np.nanmean(pre), local)
    pre = np.where(np.isnan(pre), local, pre)
    post = np.where(np.isnan(post), local, post)
    avg = np.where(np.isnan(avg) | (avg <= 0), np.nanmean(np.diff(r_peaks)) / fs, avg)
    return np.stack([pre / avg, post / avg, local / avg, avg], axis=1).astype(np.float32)


def rr_features_for_beats_v2(r_peaks, *, fs: float, context_beats: int = 10) -> np.ndarray:
    """(n, 7) float32: :func:`rr_features_for_beats`' four columns, then ``pre/local`` (prematurity against the
    local rhythm), ``post/pre`` (the compensatory pause) and an RR irregularity: the median of |ΔRR| over the
    beats ``i - context_beats … i + context_beats`` divided by their median RR (robust to isolated ectopic beats,
    high in atrial fibrillation, where a short pre-RR does not mean a premature beat). ``rr-intervals-v2``."""
    f = rr_features_for_beats(r_peaks, fs=fs).astype(np.float64)
    avg = f[:, 3]
    pre, post, local = f[:, 0] * avg, f[:, 1] * avg, f[:, 2] * avg
    d = np.abs(np.diff(pre, prepend=pre[0]))
    w = 2 * int(context_beats) + 1
    pad = lambda v: np.pad(v, int(context_beats), mode="edge")  # noqa: E731
    win = np.lib.stride_tricks.sliding_window_view
    irr = np.median(win(pad(d), w), axis=1) / np.maximum(np.median(win(pad(pre), w), axis=1), 1e-6)
    extra = np.stack([pre / np.maximum(local, 1e-6), post / np.maximum(pre, 1e-6), irr], axis=1)
    return np.concatenate([f, extra], axis=1).astype(np.float32)


#: Names of :func:`rr_morph_features_v3`' seven morphology columns (after the seven of ``rr-intervals-v2``).
MORPH_FEATURES = ("corr_qrs/template", "corr_p/template", "corr_st_t/template", "rms(qrs - template)/rms(template)",
                  "qrs_width/template_width", "corr_qrs/local_template", "rms(p region)/template's")
#: ``rr-morph-v5``'s names: the template is the slowest quarter's median beat, the P-region rms is compared with
#: those beats' median P-region rms.
MORPH_FEATURES_V5 = MORPH_FEATURES[:6] + ("rms(p region)/usual beats' median",)


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1) + 1e-12)


def rr_morph_features_v3(r_peaks, *, fs: float, signal, local_beats: int = 30, usual: str = "all") -> np.ndarray:
    """(n, 14) float32: :func:`rr_features_for_beats_v2`' seven RR columns, then seven columns that compare each
    beat with the record's own dominant beat (:data:`MORPH_FEATURES`; de Chazal 2004 / Mondéjar-Guerra 2019 style
    morphology, made patient-relative so it transfers between people). ``rr-morph-v3``.

    ``signal``: the lead the beats were cut from (physical units, any offset), at ``fs``. It is band-passed
    0.5-40 Hz (order 3, zero phase; below 89 Hz sampling the upper edge is 0.45 fs); each beat's window
    -0.3 ... +0.5 s around R minus its PR level (mean over -250 ... -150 ms) is compared with the record's
    template, the median of all windows: Pearson correlation over
    the QRS (±100 ms), the P region (-300 ... -60 ms) and ST-T (+100 ... +450 ms), each the best over lags of ±14 ms;
    the QRS rms difference over the template's rms; the QRS width (time within ±150 ms above half the beat's
    peak) over the template's; the QRS correlation with a local template (median of the beats
    ``i - local_beats ... i + local_beats``, which follows slow morphology drift); the P-region rms over the
    template's. Ratios are clipped to [0, 10].

    ``usual`` chooses the beats that stand for the record's usual beat: ``"all"`` (v3: the template is the median of
    every beat, the P-region rms is compared with the template's) or ``"slow"`` (``rr-morph-v5``: the template is the
    median of the beats whose pre-RR is at least the record's 75th percentile, and the P-region rms is compared with
    the median of those beats' own P-region rms). A premature beat is rarely among the slowest quarter, so a record
    whose premature beats outnumber its normal ones still gets a normal template; in atrial fibrillation the median
    beat's P region averages the fibrillatory waves away, whereas each beat's own P-region rms stays comparable."""
    from ...dsp import bandpass

    if usual not in ("all", "slow"):
        raise ValueError(f"usual must be 'all' or 'slow', got {usual!r}")
    r = np.asarray(r_peaks, dtype=np.int64)
    rr = rr_features_for_beats_v2(r, fs=fs)
    fs = float(fs)
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise ValueError("rr-morph-v3 needs the beats' signal")
    x = bandpass(np.nan_to_num(x - np.nanmedian(x)), fs=fs, low=0.5, high=min(40.0, 0.45 * fs), order=3)
    n = x.size
    pre, post = int(round(0.3 * fs)), int(round(0.5 * fs))
    at = lambda idx: x[np.clip(idx, 0, n - 1)]  # noqa: E731
    base = at(r[:, None] + np.arange(int(-0.25 * fs), int(-0.15 * fs))[None, :]).mean(1)
    w = at(r[:, None] + np.arange(-pre, post)[None, :]) - base[:, None]
    usual_beats = np.ones(len(r), bool)
    if usual == "slow":
        pre_rr = rr[:, 0] * rr[:, 3]  # seconds
        usual_beats = pre_rr >= np.quantile(pre_rr, 0.75)
    tpl = np.median(w[usual_beats], axis=0)
    lag = max(1, int(round(0.014 * fs)))

    def sl(a, b):
        return slice(pre + int(round(a * fs)), pre + int(round(b * fs)))

    def best_corr(region):
        best = np.full(len(r), -1.0)
        for k in range(-lag, lag + 1):
            s = slice(max(region.start + k, 0), min(region.stop + k, w.shape[1]))
            t = slice(s.start - k, s.stop - k)
            best = np.maximum(best, _row_corr(w[:, s], tpl[t][None, :]))
        return best

    q, p, st = sl(-0.1, 0.1), sl(-0.3, -0.06), sl(0.1, 0.45)
    rms = lambda v: np.sqrt((v * v).mean(-1))  # noqa: E731
    rms_q = rms(w[:, q] - tpl[q]) / (rms(tpl[q]) + 1e-9)
    wide = sl(-0.15, 0.15)
    peak = np.abs(w[:, q]).max(1)
    width = (np.abs(w[:, wide]) > 0.5 * peak[:, None]).sum(1)
    t_width = max(int((np.abs(tpl[wide]) > 0.5 * np.abs(tpl[q]).max()).sum()), 1)
    k, wq = int(local_beats), w[:, q]
    if len(r) >= 2 * k + 1:  # the median of each run of 2k + 1 beats (the k-th order statistic), beats at the ends
        view = np.lib.stride_tricks.sliding_window_view(wq, 2 * k + 1, axis=0)  # take the nearest run
        med = np.concatenate([np.partition(view[i:i + 2048], k, axis=-1)[..., k]  # in blocks: bounded memory
                              for i in range(0, len(view), 2048)])
        local = _row_corr(wq, med[np.clip(np.arange(len(r)) - k, 0, len(r) - 2 * k - 1)])
    else:
        local = _row_corr(wq, np.median(wq, axis=0)[None, :])
    p_rms = rms(w[:, p])
    energy_p = p_rms / ((rms(tpl[p]) if usual == "all" else np.median(p_rms[usual_beats])) + 1e-9)
    morph = np.stack([best_corr(q), best_corr(p), best_corr(st), np.clip(rms_q, 0, 10),
                      np.clip(width / t_width, 0, 10), local, np.clip(energy_p, 0, 10)], axis=1)
    return np.concatenate([rr, morph], axis=1).astype(np.float32)


#: The columns of :func:`rr_morph_features_v3` that ``rr-morph-v4`` keeps: all but the two P-region ones.
V4_COLUMNS = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12)


def rr_morph_features_v4(r_peaks, *, fs: float, signal, local_beats: int = 30) -> np.ndarray:
    """(n, 12) float32: :func:`rr_morph_features_v3` without its P-region columns (correlation and rms ratio). In
    atrial fibrillation the record's median beat has no P wave, so every beat's P-region columns are far out of
    range; on the DS1 cross-validation folds v3 called more N beats S in the AF records 201 and 203. ``rr-morph-v4``."""
    return rr_morph_features_v3(r_peaks, fs=fs, signal=signal, local_beats=local_beats)[:, list(V4_COLUMNS)]


def rr_morph_features_v5(r_peaks, *, fs: float, signal, local_beats: int = 30) -> np.ndarray:
    """(n, 14) float32: :func:`rr_morph_features_v3`'s columns with the record's usual beat taken from its slowest
    quarter of beats (``usual="slow"``): the template is the median of the beats whose pre-RR reaches the record's
    75th percentile, and the P-region rms is compared with those beats' median P-region rms. ``rr-morph-v5``."""
    return rr_morph_features_v3(r_peaks, fs=fs, signal=signal, local_beats=local_beats, usual="slow")


#: What each signal-based feature function of :data:`RR_FEATURE_FUNCTIONS` compares a beat with (the card says it).
USUAL_BEAT = {"rr-morph-v3": "median beat", "rr-morph-v4": "median beat",
              "rr-morph-v5": "usual beat (the median of its beats whose pre-RR reaches the record's 75th percentile)"}

#: Functions of :data:`RR_FEATURE_FUNCTIONS` that also need the beats' signal (``fn(r_peaks, fs=fs, signal=x)``).
NEEDS_SIGNAL = frozenset(USUAL_BEAT)


def beat_side_features(name: str, r_peaks, *, fs: float, signal=None) -> np.ndarray:
    """The per-beat side features of :data:`RR_FEATURE_FUNCTIONS` ``name``, given the signal when it needs it."""
    fn = RR_FEATURE_FUNCTIONS[name]
    if name in NEEDS_SIGNAL:
        if signal is None:
            raise ValueError(f"beat features {name!r} need the signal the beats were cut from")
        return fn(r_peaks, fs=fs, signal=signal)
    return fn(r_peaks, fs=fs)


#: RR-feature functions a model card names (``preprocessing.rr_features.function``), each ``fn(r_peaks, fs=fs)``
#: -> (n, k) (those in :data:`NEEDS_SIGNAL` also take ``signal=``, see :func:`beat_side_features`): ``ecgcore infer``
#: looks the name up here and imports nothing from the card. Cards written before
#: this table named a function by its import path; those paths stay names of the same functions.
RR_FEATURE_FUNCTIONS = {
    "rr-intervals-v1": rr_features_for_beats,
    "rr-intervals-v2": rr_features_for_beats_v2,
    "rr-morph-v3": rr_morph_features_v3,
    "rr-morph-v4": rr_morph_features_v4,
    "rr-morph-v5": rr_morph_features_v5,
    "rr-seconds": rr_features,  # ecgcore.dsp.rr_features as it is: pre, post, local, average RR (s), NaN kept
    "ecgcore.models.conformer.data.rr_features_for_beats": rr_features_for_beats,
    "ecgcore.dsp.rr_features": rr_features,
}


class BeatsScalograms(Recipe):
    name = "beats-scalograms"

    def default_options(self) -> dict:
        return {"before": 93, "after": 93, "scales": [1, 32], "wavelet": "morl", "lead": 0,
                "variant": "conformer", "exclude": list(SEED_EXCLUDED)}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        skip = set(options["exclude"])
        return [r for r in wfdb_records(in_dir) if r not in skip and (in_dir / f"{r}.atr").is_file()]

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        rec, beats, scal, r_peaks, labels, cls, scales = record_scalograms(in_dir, item, options)
        rel = f"{item}.h5"
        write_h5(out_dir / rel,
                 {"scalograms": scal.astype(np.float32, copy=False), "beats": beats.astype(np.float32),
                  "r_peaks": r_peaks.astype(np.int64), "labels": labels, "aami": cls.astype("S1")},
                 {"fs": rec.fs, "lead": rec.leads[int(options["lead"])], "scales": scales,
                  "wavelet": options["wavelet"], "version": __version__, "record": item})
        return RecordResult(record=item, files=[rel], n_items=int(len(labels)),
                            info={"labels": labels.tolist()})

    def cost(self, item: str, in_dir: Path, options: dict) -> float:
        """Beats to transform: the size of the record's ``.atr`` (the signals are all 30 min long)."""
        try:
            return float((in_dir / f"{item}.atr").stat().st_size)
        except OSError:
            return 0.0

    def preload(self) -> list[str]:
        return [*super().preload(), "h5py"]

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        labels = {r: results[r]["info"]["labels"] for r in sorted(results)}
        with atomic_write(out_dir / "metadata.json") as tmp:
            tmp.write_text(seed_metadata_json(labels))
        n = np.bincount(np.fromiter((lab for v in labels.values() for lab in v), dtype=np.int64),
                        minlength=len(AAMI_CLASSES))
        counts = {c: int(n[i]) for i, c in enumerate(AAMI_CLASSES)}
        write_json(out_dir / "splits.json", {"DS1": [r for r in DS1 if r in results],
                                             "DS2": [r for r in DS2 if r in results]})
        write_json(out_dir / "summary.json", {"recipe": self.name, "beats": sum(counts.values()),
                                              "aami_counts": counts, "records": len(results)})
