"""``heartid`` (SPEC §1): per-subject 1000-sample windows for ECG biometrics, enrolment/probe split by time.

Subjects: in a folder of subject folders (ECG-ID ``Person_01/rec_1`` ...) each folder is a subject and its
records are taken in order (``rec_1``, ``rec_2``, ...); in a flat folder (MIT-BIH) each record is a subject,
except that MIT-BIH 201 and 202 come from the same person and form one subject; in a PTB-XL folder (one holding
``ptbxl_database.csv``) each ``patient_id`` is a subject, its ECGs (500 Hz where present, else 100 Hz) in order
of recording date. Each record's lead
(default channel 0) is band-passed 0.5-40 Hz (order 4, zero-phase), resampled to ``fs`` (default 200 Hz:
1000 samples = 5 s), cut into windows (stride 500) and z-scored per window. The first ``enrol_fraction``
of a subject's windows in time order are enrolment, the rest probes - never the same time span.

One ``<subject>.npz`` (``windows [n, 1000]`` float32, ``record``, ``start`` at ``fs``, ``probe`` bool) and
``subjects.csv``.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ...datasets.ptbxl import ptbxl_rows
from ...dsp import bandpass, resample_poly
from ...dsp.filter import resample_ratio
from ...io import Record, read_record
from .base import Recipe, RecordResult, save_npz, wfdb_records

SAME_PERSON = {"202": "201"}  # MIT-BIH: records 201 and 202 are from the same subject


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _ptbxl_subjects(in_dir: Path) -> dict[str, list[str]] | None:
    """PTB-XL's ``{patient_id: [record, ...]}`` (records on disk, 500 Hz before 100 Hz, by recording date), or None
    when ``in_dir`` holds no ``ptbxl_database.csv``. Built once per table version (the recipe asks for every person)."""
    db = in_dir / "ptbxl_database.csv"
    if not db.is_file():
        return None
    st = db.stat()
    return {p: list(v) for p, v in _patients(str(in_dir.resolve()), st.st_mtime_ns, st.st_size).items()}


@functools.lru_cache(maxsize=4)
def _patients(in_dir: str, mtime_ns: int, size: int) -> dict[str, tuple[str, ...]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for r in ptbxl_rows(in_dir):
        found.setdefault(r["patient"], []).append((r["recording_date"], r["path"]))
    return {p: tuple(rel for _, rel in sorted(v)) for p, v in sorted(found.items(), key=lambda kv: int(kv[0]))}


def _subjects(in_dir: Path) -> dict[str, list[str]]:
    ptbxl = _ptbxl_subjects(in_dir)
    if ptbxl is not None:
        return ptbxl
    subs: dict[str, list[str]] = {}
    folders = sorted((p for p in in_dir.iterdir() if p.is_dir() and any(p.glob("*.hea"))),
                     key=lambda p: _natural(p.name))
    if folders:
        for f in folders:
            subs[f.name] = [f"{f.name}/{p.stem}" for p in sorted(f.glob("*.hea"), key=lambda p: _natural(p.stem))]
        return subs
    for r in wfdb_records(in_dir):
        subs.setdefault(SAME_PERSON.get(r, r), []).append(r)
    return subs


def record_windows(rec: Record, options: dict) -> tuple[np.ndarray, np.ndarray]:
    """The per-record transform of this recipe, shared by ``run()`` and ``ecgcore infer``.

    The lead ``options["lead"]`` band-passed (``band``, order 4, zero-phase), resampled to ``fs``, cut into
    ``window``-sample windows every ``stride`` samples and z-scored per window.

    Returns
    -------
    windows : (n, window) float32; starts : (n,) int64 first sample of each window at ``fs``
        (n = 0 when the record is shorter than one window).
    """
    threads = options.get("_threads", 0)
    win, stride, fs = int(options["window"]), int(options["stride"]), float(options["fs"])
    x = rec.signal[:, int(options["lead"])]
    low, high = options["band"]
    x = bandpass(x, fs=rec.fs, low=low, high=high, workers=threads)
    up, down = resample_ratio(rec.fs, fs)
    x = resample_poly(x, up, down, workers=threads)
    if x.size < win:
        return np.zeros((0, win), np.float32), np.zeros(0, np.int64)
    st = np.arange(0, x.size - win + 1, stride)
    w = x[st[:, None] + np.arange(win)]
    sd = w.std(axis=1, keepdims=True)
    w = (w - w.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return w.astype(np.float32), st


def lead_at_rate(x: np.ndarray, fs: float, band, out_fs: float, *, what: str, workers: int | None = None) -> np.ndarray:
    """One lead (n,) of finite samples, band-passed (order 4, zero-phase) at ``fs`` and resampled to ``out_fs``; a
    clear ``ValueError`` for another shape or NaN/inf gaps (``what``: the biometric input being built)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected one lead (n_samples,), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"the ECG lead contains NaN/inf samples (signal gaps); cannot build biometric {what}")
    low, high = band
    x = bandpass(x, fs=fs, low=low, high=high, workers=workers)
    up, down = resample_ratio(fs, out_fs)
    return resample_poly(x, up, down, workers=workers)


# --- median-beat groups: the input of a ``beat-lda`` HeartID model (ecgcore.models.heartid.beats) ----------------
INPUT = "beat-groups"
#: the card's preprocessing for a ``beat-lda`` model (kind ``heartid``, ``input`` = :data:`INPUT`)
BEAT_OPTIONS = {"input": INPUT, "fs": 250.0, "lead": 0, "band": [1.0, 40.0], "before_s": 0.25, "after_s": 0.45,
                "group": 10, "group_stride": 5, "min_beats": 3,
                "hr_norm": {"alpha": 0.6, "t0_s": 0.05, "rr_ref_s": 0.8, "rr_range_s": [0.3, 2.0]}}
#: ``hr_norm``: heart-rate normalisation of each group's ST-T (issue 23). The QT interval shortens as the heart
#: speeds up (Bazett: QT ~ RR^0.5), so one person's T wave sits elsewhere on another day at another rate. Each
#: group's time axis after ``t0_s`` past the R-peak is read at ``t0 + (t - t0) * (RR / rr_ref)^alpha``, ``RR`` the
#: median RR interval of the group's beats (clipped to ``rr_range_s``): the window holds the same share of the
#: cardiac cycle at any rate. ``alpha`` was chosen by cross-validation over the training persons
#: (``tools/heartid_hr_norm_cv.py``; the table is in the bundled card's ``training.hr_norm_choice``). A card without
#: the key, or with ``alpha`` 0 (models fitted before it), cuts groups as before.


def check_window(window_s) -> tuple[float, float]:
    """``(before, after)`` the R-peak in s as floats; a clear ``ValueError`` outside 0.05-1 s before and 0.1-1 s
    after."""
    try:
        before, after = (float(v) for v in window_s)
    except (TypeError, ValueError):
        raise ValueError(f"the beat window is (before, after) in s, got {window_s!r}") from None
    if not (0.05 <= before <= 1.0 and 0.1 <= after <= 1.0):
        raise ValueError(f"the beat window must be 0.05-1 s before and 0.1-1 s after the R-peak, got {window_s!r}")
    return before, after


def beat_options(alpha: float | None = None, window_s: tuple[float, float] | None = None) -> dict:
    """A copy of :data:`BEAT_OPTIONS`: ``alpha`` None keeps its ``hr_norm``, 0 drops it (the cut before heart-rate
    normalisation), any other value sets ``hr_norm.alpha``. ``window_s``: (before, after) the R-peak in s, the beat's
    cut (None keeps :data:`BEAT_OPTIONS`' 0.25 and 0.45; ``tools/heartid_beat_window_cv.py`` compares others; checked
    by :func:`check_window`). Each side becomes ``round(seconds * fs)`` samples (half to even: 0.25 s at 250 Hz is
    62 samples, 0.30 s 75, 0.45 s 112), in training and at inference alike."""
    o = {k: v for k, v in BEAT_OPTIONS.items() if k != "hr_norm"}
    if window_s is not None:
        o["before_s"], o["after_s"] = check_window(window_s)
    if alpha is None or float(alpha) != 0.0:
        o["hr_norm"] = dict(BEAT_OPTIONS["hr_norm"], **({} if alpha is None else {"alpha": float(alpha)}))
    return o


def _hr_norm(o: dict) -> dict | None:
    """The options' ``hr_norm`` as floats, None when absent or ``alpha`` is 0; a clear ``ValueError`` otherwise."""
    h = o.get("hr_norm")
    if not h:
        return None
    try:
        alpha, t0, ref = float(h["alpha"]), float(h["t0_s"]), float(h["rr_ref_s"])
        lo, hi = (float(v) for v in h["rr_range_s"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"hr_norm must be {{alpha, t0_s, rr_ref_s, rr_range_s: [lo, hi]}} numbers, got {h!r}") from None
    if alpha == 0.0:
        return None
    out = {"alpha": alpha, "t0_s": t0, "rr_ref_s": ref, "rr_range_s": (lo, hi)}
    if not (np.isfinite([alpha, hi]).all() and ref > 0 and 0 < lo < hi and 0 <= t0 < float(o["after_s"])
            and _wide_post(o, out) <= 4 * float(o["fs"])):
        raise ValueError(f"hr_norm needs a finite alpha, rr_ref_s > 0, 0 < rr_range_s[0] < rr_range_s[1] (finite), "
                         f"0 <= t0_s < after_s and a stretch that keeps the cut within 4 s, got {h!r}")
    return out


def _wide_post(o: dict, h: dict) -> int:
    """Samples after the R-peak a beat is cut to, so that the most stretched group (either end of ``rr_range_s``)
    still reads inside it."""
    fs, t0, ref, a = float(o["fs"]), h["t0_s"], h["rr_ref_s"], h["alpha"]
    s = max((h["rr_range_s"][0] / ref) ** a, (h["rr_range_s"][1] / ref) ** a, 1.0)
    return int(np.ceil((t0 + (float(o["after_s"]) - t0) * s) * fs)) + 2


def _normalise(b: np.ndarray, n: int | None = None) -> np.ndarray:
    """``b`` (..., L) less its median, scaled to unit peak; both taken over ``b[..., :n]`` (None: all of it)."""
    b = b - np.median(b[..., :n], axis=-1, keepdims=True)
    return b / np.maximum(np.abs(b[..., :n]).max(axis=-1, keepdims=True), 1e-9)


def beat_length(options: dict) -> int:
    fs = float(options["fs"])
    return int(round(float(options["before_s"]) * fs)) + int(round(float(options["after_s"]) * fs))


def _pre_post(o: dict) -> tuple[int, int]:
    fs = float(o["fs"])
    return int(round(float(o["before_s"]) * fs)), int(round(float(o["after_s"]) * fs))


def aligned_beats(x: np.ndarray, fs: float, options: dict | None = None, workers: int | None = None):
    """One lead at ``fs`` Hz -> (beats (n, L) normalised, R-peaks (n,) at ``options["fs"]``); n = 0 when the signal
    holds fewer than ``min_beats`` whole beats. With ``hr_norm`` the same beats run further past the R-peak (to
    :func:`_wide_post`, zero-padded past the record's end), for :func:`group_beats` to warp."""
    from ...dsp import detect_r_peaks
    from ...dsp.peaks import V1 as PEAKS_V1

    o = BEAT_OPTIONS if options is None else options
    out_fs = float(o["fs"])
    pre, post = _pre_post(o)
    h = _hr_norm(o)
    cut = post if h is None else _wide_post(o, h)
    x = lead_at_rate(x, fs, o["band"], out_fs, what="beats", workers=workers)
    # the detector settings the bundled HeartID models were trained with (beat alignment is part of the model)
    p = detect_r_peaks(x, fs=out_fs, **PEAKS_V1) if x.size >= pre + post + 2 else np.zeros(0, np.int64)
    p = p[(p >= pre) & (p + post <= x.size)]
    if p.size < int(o["min_beats"]):
        return np.zeros((0, pre + cut)), np.zeros(0, np.int64)
    # hr_norm: the same beats as without it, cut further (zeros past the record's end, which a group at a slow rate
    # may reach), each scaled by its usual -pre..+post part, so samples a fast group never reads do not weigh
    b = np.pad(x, (0, cut - post))[p[:, None] - pre + np.arange(pre + cut)[None, :]]
    return _normalise(b, pre + post), p


def group_beats(beats: np.ndarray, p: np.ndarray, options: dict | None = None, group_stride: int | None = None):
    """Median of every ``group`` consecutive beats every ``group_stride`` (default the options') beats ->
    (groups (n, L) float32, starts (n,), ends (n,)): the first sample of each group's first beat and one past the
    last sample read of its last beat. With ``hr_norm`` each median is read at its group's heart rate
    (:func:`_warp_groups`), and ``ends`` follow how far it read, at least the usual cut (for the last group at a slow
    rate possibly past the record's end, where the cut was zero-padded: ``ecgcore infer`` clips its spans)."""
    o = BEAT_OPTIONS if options is None else options
    pre, post = _pre_post(o)
    if len(p) == 0:
        return np.zeros((0, pre + post), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    g, s = int(o["group"]), int(o["group_stride"] if group_stride is None else group_stride)
    firsts = np.arange(0, p.size - g + 1, s) if p.size >= g else np.array([0])
    size = min(g, p.size)
    groups = np.stack([np.median(beats[i:i + size], axis=0) for i in firsts])
    h = _hr_norm(o)
    if h is None:
        ends = p[firsts + size - 1] + post
    else:  # a fast group reads less of the warped beat, but its beats were scaled over -pre..+post
        groups, reach = _warp_groups(groups, p, firsts, size, o, h)
        ends = p[firsts + size - 1] + np.maximum(reach, post)
    return (_normalise(groups).astype(np.float32), (p[firsts] - pre).astype(np.int64), ends.astype(np.int64))


def _warp_groups(groups: np.ndarray, p: np.ndarray, firsts: np.ndarray, size: int, o: dict, h: dict):
    """(groups (n, L) read at their heart rate, one past the last sample after the last R-peak each group reads):
    ``hr_norm`` (:func:`_hr_norm`) applied to wide median beats (:func:`aligned_beats`) whose R-peaks are ``p``."""
    fs = float(o["fs"])
    pre, post = _pre_post(o)
    t0, ref, alpha = h["t0_s"], h["rr_ref_s"], h["alpha"]
    lo, hi = h["rr_range_s"]
    need = _wide_post(o, h)
    if groups.shape[1] < pre + need:
        raise ValueError(f"hr_norm needs beats cut {need} samples past the R-peak (aligned_beats with the same "
                         f"options), got {groups.shape[1] - pre}")
    t = (np.arange(pre + post) - pre) / fs  # the output's time axis around the R-peak
    src = (np.arange(groups.shape[1]) - pre) / fs  # the wide beat's
    out, reach = np.empty((len(groups), pre + post)), np.empty(len(groups), np.int64)
    for j, (i, m) in enumerate(zip(firsts, groups)):
        rr = float(np.median(np.diff(p[i:i + size]))) / fs if size > 1 else ref
        k = (min(max(rr, lo), hi) / ref) ** alpha
        when = np.where(t > t0, t0 + (t - t0) * k, t)
        out[j] = np.interp(when, src, m)
        reach[j] = int(np.ceil(when[-1] * fs - 1e-9)) + 1  # one past the last sample interpolated from
    return out, reach


def beat_groups(x: np.ndarray, fs: float, options: dict | None = None, workers: int | None = None):
    """One lead at ``fs`` Hz -> (groups (n, L) float32, starts (n,), ends (n,)) of median-beat groups
    (:func:`aligned_beats` then :func:`group_beats`); n = 0 when the signal holds fewer than ``min_beats`` beats."""
    return group_beats(*aligned_beats(x, fs, options, workers), options)



class HeartIDWindows(Recipe):
    name = "heartid"

    def default_options(self) -> dict:
        return {"fs": 200.0, "window": 1000, "stride": 500, "lead": 0, "band": [0.5, 40.0],
                "enrol_fraction": 0.5}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        return list(_subjects(in_dir))

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        threads = options.get("_threads", 0)
        win, fs = int(options["window"]), float(options["fs"])
        windows, recs, starts = [], [], []
        for name in _subjects(in_dir)[item]:
            rec = read_record(in_dir / name, annotator=None, workers=threads)
            w, st = record_windows(rec, options)
            if not len(st):
                continue
            windows.append(w)
            recs += [name] * len(st)
            starts.append(st)
        if not windows:
            raise ValueError(f"subject {item}: no record is long enough for one {win}-sample window")
        w = np.concatenate(windows)
        n_enrol = int(np.ceil(len(w) * float(options["enrol_fraction"])))
        if n_enrol >= len(w):
            raise ValueError(f"subject {item}: only {len(w)} windows, too few for an enrolment/probe split")
        probe = np.arange(len(w)) >= n_enrol
        rel = f"{item}.npz"
        save_npz(out_dir / rel, windows=w, record=np.array(recs), start=np.concatenate(starts).astype(np.int64),
                 probe=probe, fs=np.float64(fs), subject=np.array(item))
        return RecordResult(record=item, files=[rel], n_items=len(w),
                            info={"enrol": int(n_enrol), "probe": int(probe.sum()),
                                  "records": sorted(set(recs), key=_natural)})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        lines = ["subject,file,n_enrol,n_probe,records"]
        for subj, e in sorted(results.items(), key=lambda kv: _natural(kv[0])):
            info = e["info"]
            lines.append(f"{subj},{subj}.npz,{info['enrol']},{info['probe']},{' '.join(info['records'])}")
        with atomic_write(out_dir / "subjects.csv") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
