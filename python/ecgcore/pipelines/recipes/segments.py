"""``segments`` (SPEC §3.1): 10 s windows with 50 % overlap and majority Normal/Abnormal labels.

Per record: the first channel (``p_signal[:, 0]``, as the attention seed; MLII except record 114), a
zero-phase Butterworth band-pass 0.5-50 Hz of order 5, windows of 10 s (3600 samples at 360 Hz) every
5 s, and the seed's label rule: Abnormal iff the window holds more abnormal beat symbols
(``L R B A a J S V r F e j n E / f Q ?``) than normal ones (``N .``); ties and beat-free windows are Normal.

Filtering uses second-order sections by default; ``seed_compat`` uses the seed's (b, a) ``filtfilt``.
Standardisation: each window to zero mean and unit variance (the seed README's intent, default). With
``seed_compat`` the windows are stored filtered but unscaled and ``scaler.npz`` holds the seed's per-column
(time-index) mean and standard deviation fitted over every window of every record, leakage included.

One ``<record>.npz`` (``segments [n, 3600]`` float32, ``labels`` int64, ``start``) plus ``splits.json``
(the DS1/DS2 inter-patient split) and ``metadata.json``.

``segments-ptbxl`` (:class:`SegmentsPTBXL`): the same windows from a PTB-XL folder, as extra training windows for
the attention classifier (``AttentionConfig.extra_train``; issue 21). PTB-XL has no beat annotations, so the label
comes from the ECG's SCP statements, kept only where the seed's beat rule is certain: Abnormal when the ECG carries
complete left or right bundle-branch block (``CLBBB``, ``CRBBB``: every conducted beat is an ``L`` or ``R`` beat in
MIT-BIH's terms), Normal when it carries ``NORM`` and neither; every other ECG is left out. Each ECG (500 Hz where
present) is resampled to ``fs`` (360 Hz, MIT-BIH's rate) as ``ecgcore infer`` resamples a record, then each lead of
``leads`` (default lead II, the nearest to MIT-BIH's MLII) goes through :func:`transform`: one 10 s window per lead.
One ``<ecg_id>.npz`` per ECG (``segments [k, 3600]``, one row per lead, ``labels``, ``start``, ``lead``,
``patient``, ``source_fs``: 500 or 100 Hz), ``splits.json`` (``extra``: every ECG; no DS1/DS2) and ``metadata.json``.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ...datasets.mitdb import DS1, DS2
from ...datasets.ptbxl import lead_indices, lead_names, ptbxl_rows, table_key
from ...dsp import bandpass, butter, filtfilt, segment_windows, window_labels
from ...io import Record, read_record
from .base import Recipe, RecordResult, save_npz, wfdb_records, write_json


def transform(rec: Record, options: dict) -> dict:
    """The per-record transform of this recipe, shared by ``run()`` and ``ecgcore infer``.

    Parameters
    ----------
    rec : the record; ``options``: this recipe's options (``window_s``, ``overlap``, ``band``, ``order``,
        ``lead``, ``seed_compat``; ``_threads`` for the C++ kernels).

    Returns
    -------
    dict with ``segments`` (n, size) float64 (z-scored per segment, or filtered but unscaled with
    ``seed_compat``), ``start`` (n,) int64 first sample of each window, ``size``, ``step`` and ``labels``
    (n,) int64 (the seed's majority rule; None when the record has no annotations).
    """
    threads = options.get("_threads", 0)
    size = int(round(options["window_s"] * rec.fs))
    step = int(round(size * (1.0 - options["overlap"])))
    low, high = options["band"]
    li = int(options["lead"])
    if li >= rec.n_leads:
        raise ValueError(f"{rec.name}: lead {li} requested, the record has {rec.n_leads}")
    lead = rec.signal[:, li]
    if options["seed_compat"]:
        # The seed filters with the (b, a) form (scipy filtfilt), which loses ~1e-4 to rounding at order 5.
        b, a = butter(int(options["order"]), (low, high), "bandpass", fs=rec.fs, output="ba")
        x = filtfilt(b, a, lead, workers=threads)
    else:
        x = bandpass(lead, fs=rec.fs, low=low, high=high, order=int(options["order"]), workers=threads)
    seg = segment_windows(x, size=size, step=step, workers=threads)
    if seg.shape[0] == 0:
        raise ValueError(f"{rec.name}: shorter than one {options['window_s']} s window")
    labels = None
    if rec.annotations is not None:
        labels = window_labels(rec.annotations.sample, rec.annotations.symbol, n_samples=rec.n_samples,
                               size=size, step=step)
    if not options["seed_compat"]:
        sd = seg.std(axis=1, keepdims=True)
        seg = (seg - seg.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return {"segments": seg, "labels": labels, "start": np.arange(seg.shape[0], dtype=np.int64) * step,
            "size": size, "step": step}


class Segments(Recipe):
    name = "segments"

    def default_options(self) -> dict:
        return {"window_s": 10.0, "overlap": 0.5, "band": [0.5, 50.0], "order": 5, "lead": 0, "seed_compat": False}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        return [r for r in wfdb_records(in_dir) if (in_dir / f"{r}.atr").is_file()]

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        rec = read_record(in_dir / item, workers=options.get("_threads", 0))
        if rec.annotations is None:
            raise ValueError(f"{item}: no .atr reference annotations, cannot label segments")
        t = transform(rec, options)
        seg, labels, step = t["segments"], t["labels"], t["step"]
        rel = f"{item}.npz"
        save_npz(out_dir / rel, segments=seg.astype(np.float32), labels=np.asarray(labels, dtype=np.int64),
                 start=np.arange(seg.shape[0], dtype=np.int64) * step, fs=np.float64(rec.fs),
                 record=np.array(item), lead=np.array(rec.leads[int(options["lead"])]))
        n_abn = int(np.sum(labels))
        return RecordResult(record=item, files=[rel], n_items=int(seg.shape[0]),
                            info={"segments": int(seg.shape[0]), "abnormal": n_abn})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        write_json(out_dir / "splits.json", {"DS1": [r for r in DS1 if r in results],
                                             "DS2": [r for r in DS2 if r in results]})
        write_json(out_dir / "metadata.json", {
            "recipe": self.name, "options": {k: v for k, v in options.items() if not k.startswith("_")},
            "records": {r: e["info"] for r, e in sorted(results.items())},
            "segments": int(sum(e["info"]["segments"] for e in results.values())),
            "abnormal": int(sum(e["info"]["abnormal"] for e in results.values())),
        })
        if options["seed_compat"] and results:
            # The seed's StandardScaler over the whole (segments x 3600) matrix: one mean/std per time index.
            n, s1, s2 = 0, None, None
            for r in sorted(results):
                seg = np.load(out_dir / f"{r}.npz")["segments"].astype(np.float64)
                s1 = seg.sum(axis=0) if s1 is None else s1 + seg.sum(axis=0)
                s2 = (seg ** 2).sum(axis=0) if s2 is None else s2 + (seg ** 2).sum(axis=0)
                n += seg.shape[0]
            mean = s1 / n
            scale = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
            save_npz(out_dir / "scaler.npz", mean=mean, scale=np.where(scale > 0, scale, 1.0))


#: SCP statements (PTB-XL ``scp_codes``) that make a ``segments-ptbxl`` window Abnormal: complete bundle-branch
#: block, every conducted beat an MIT-BIH ``L`` / ``R`` beat.
PTBXL_ABNORMAL = ("CLBBB", "CRBBB")
#: the statement that makes it Normal (when no :data:`PTBXL_ABNORMAL` statement is present)
PTBXL_NORMAL = "NORM"


def ptbxl_window_labels(in_dir: Path) -> dict[str, dict]:
    """``{ecg_id: {"path", "label", "patient", "codes", "source_fs"}}`` of the PTB-XL ECGs under ``in_dir`` that the
    ``segments-ptbxl`` rule labels (see the module docstring), ``ecg_id`` zero-padded to 5 digits; records missing
    on disk are skipped. ``in_dir`` must hold ``ptbxl_database.csv``."""
    db = Path(in_dir) / "ptbxl_database.csv"
    if not db.is_file():
        raise FileNotFoundError(f"{db} not found: segments-ptbxl reads a PTB-XL folder (ptbxl_database.csv and "
                                f"records500/ or records100/)")
    return {k: dict(v) for k, v in _labels_of(in_dir).items()}


def _labels_of(in_dir) -> dict[str, dict]:
    """The cached labels of ``in_dir`` (shared: callers copy what they keep)."""
    return _labels(*table_key(in_dir))


@functools.lru_cache(maxsize=4)
def _labels(in_dir: str, mtime_ns: int, size: int) -> dict[str, dict]:
    out = {}
    for r in ptbxl_rows(in_dir):
        if any(c in r["codes"] for c in PTBXL_ABNORMAL):
            label = 1
        elif PTBXL_NORMAL in r["codes"]:
            label = 0
        else:
            continue
        out[f"{r['ecg_id']:05d}"] = {"path": r["path"], "label": label, "patient": r["patient"],
                                     "codes": list(r["codes"]), "source_fs": r["source_fs"]}
    return out


class SegmentsPTBXL(Segments):
    name = "segments-ptbxl"

    def default_options(self) -> dict:
        opts = super().default_options()
        opts.pop("lead")
        return {**opts, "fs": 360.0, "leads": ["II"]}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        if options.get("seed_compat"):
            raise ValueError("segments-ptbxl makes windows z-scored per window; seed_compat is for MIT-BIH only")
        lead_names(options["leads"])
        return sorted(ptbxl_window_labels(in_dir))

    def cost(self, item: str, in_dir: Path, options: dict) -> float:
        return 1.0

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        from ...infer.preprocess import at_rate

        info = dict(_labels_of(in_dir)[item])
        threads = options.get("_threads", 0)
        rec = read_record(in_dir / info["path"], annotator=None, workers=threads)
        pick = lead_indices(rec.leads, lead_names(options["leads"]), item)
        # only the asked leads are resampled (each lead is resampled on its own, so the values are the same)
        rec, _ = at_rate(Record(signal=np.ascontiguousarray(rec.signal[:, pick]), fs=rec.fs,
                                leads=[rec.leads[i] for i in pick], units=[rec.units[i] for i in pick],
                                name=rec.name, path=rec.path), float(options["fs"]), threads)
        segs = [transform(rec, {**options, "lead": i})["segments"][:1] for i in range(len(pick))]  # one 10 s window
        leads = list(rec.leads)
        seg = np.concatenate(segs).astype(np.float32)
        rel = f"{item}.npz"
        save_npz(out_dir / rel, segments=seg, labels=np.full(len(seg), info["label"], np.int64),
                 start=np.zeros(len(seg), np.int64), fs=np.float64(rec.fs), record=np.array(item),
                 lead=np.array(leads), patient=np.array(info["patient"]), source_fs=np.float64(info["source_fs"]))
        return RecordResult(record=item, files=[rel], n_items=len(seg),
                            info={"segments": len(seg), "abnormal": int(info["label"]) * len(seg),
                                  "patient": info["patient"], "codes": info["codes"], "source_fs": info["source_fs"]})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        write_json(out_dir / "splits.json", {"DS1": [], "DS2": [], "extra": sorted(results)})
        write_json(out_dir / "metadata.json", {
            "recipe": self.name, "options": {k: v for k, v in options.items() if not k.startswith("_")},
            "label_rule": {"Abnormal": list(PTBXL_ABNORMAL), "Normal": PTBXL_NORMAL},
            "records": {r: e["info"] for r, e in sorted(results.items())},
            "segments": int(sum(e["info"]["segments"] for e in results.values())),
            "abnormal": int(sum(e["info"]["abnormal"] for e in results.values())),
        })
