"""Beat-classification figures of an ``ecgcore infer`` table against the records' reference annotations.

``ecgcore infer beats-aami RECORDS --peaks detect -o beats.csv`` scores the beats ecgcore's detector finds;
:func:`beat_report` then pairs each record's scored beats with its annotated beats (EC57 matching, 150 ms) and
fills one confusion matrix over the model's classes plus ``none``:

* an annotated beat of class c whose matching beat was classified k counts in row c, column k;
* an annotated beat that no scored beat matches (missed by the detector), or whose beat was left unclassified by
  the signal-quality check, counts in row c, column ``none`` (it lowers Se of c);
* a scored beat that matches no annotated beat (a false detection) counts in row ``none``, column k (it lowers +P
  of k).

Annotated beats without a class in the model's labelling (e.g. the seed's excluded symbols) are left out, as they
are in training. With ``--peaks annotations`` (or ``auto`` on annotated records) the beats are the annotated ones
and the matrix is the plain per-beat one. Figures: per class support, Se, +P, F1; accuracy (correct / annotated
beats); Cohen's κ and Mondéjar-Guerra's jκ = κ/2 + (Se_S + +P_S + Se_V + +P_V)/8 over the whole matrix.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .. import metrics as M

__all__ = ["beat_report", "format_beat_report", "read_beat_table", "segment_report", "format_segment_report",
           "is_segment_table"]


def read_beat_table(table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{record: (sample (n,) int64 sorted, class (n,) str)}`` from an ``ecgcore infer`` csv/jsonl/parquet table."""
    path = Path(table)
    rows: dict[str, list] = {}
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path, columns=["record", "sample", "class"]).to_pydict()
        it = zip(t["record"], t["sample"], t["class"])
    elif suffix == ".jsonl":
        with open(path) as f:
            it = [(d["record"], d["sample"], d.get("class") or "") for d in map(json.loads, f) if d]
    else:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"record", "sample", "class"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: not a beat table of `ecgcore infer` (no column {', '.join(sorted(missing))})")
            it = [(r["record"], r["sample"], r["class"]) for r in reader]
    for rec, sample, cls in it:
        rows.setdefault(str(rec), []).append((int(float(sample)), cls or ""))
    out = {}
    for rec, v in rows.items():
        v.sort(key=lambda t: t[0])
        out[rec] = (np.array([s for s, _ in v], np.int64), np.array([c for _, c in v], dtype=object))
    return out


def _find_record(records_dir: Path, name: str) -> Path:
    direct = records_dir / name
    if direct.with_suffix(".atr").is_file() or Path(str(direct) + ".atr").is_file():
        return direct
    hits = sorted(records_dir.rglob(f"{Path(name).name}.atr"))
    if not hits:
        raise FileNotFoundError(f"record {name}: no {name}.atr under {records_dir}")
    return hits[0].with_suffix("")


def beat_report(table, records_dir, *, classes=("N", "S", "V", "F", "Q"), variant: str = "conformer",
                window_s: float = 0.150, records=None) -> dict:
    """Confusion matrix and AAMI figures of ``table`` (see the module doc). ``records`` restricts the records."""
    from ..datasets.ec57 import beat_mask, match_beats
    from ..datasets.mitdb import aami_labels
    from ..io import read_annotations

    records_dir = Path(records_dir)
    classes = list(classes)
    k = len(classes)
    index = {c: i for i, c in enumerate(classes)}
    data = read_beat_table(table)
    names = list(records) if records is not None else sorted(data)
    cm = np.zeros((k + 1, k + 1), np.float64)
    per_record = {}
    for name in names:
        samples, pred = data.get(name, (np.zeros(0, np.int64), np.zeros(0, dtype=object)))
        ann = read_annotations(_find_record(records_dir, name), "atr")
        fs = float(ann.fs or 360.0)
        beats = np.flatnonzero(beat_mask(ann.symbol))
        ref_cls = aami_labels(ann.symbol[beats], variant)
        ref_match, det_match = match_beats(ann.sample[beats], samples, window=int(round(window_s * fs)))
        rc = np.zeros_like(cm)
        for i, c in enumerate(ref_cls):
            if c == "" or c not in index:
                continue  # not a class of the model's labelling
            j = ref_match[i]
            got = index.get(pred[j], k) if j >= 0 else k
            rc[index[c], got] += 1
        for j in np.flatnonzero(det_match < 0):
            if pred[j] in index:
                rc[k, index[pred[j]]] += 1
        cm += rc
        per_record[name] = {"annotated": int(rc[:k].sum()), "correct": int(np.trace(rc[:k, :k])),
                            "missed_or_unclassified": int(rc[:k, k].sum()), "extra_detections": int(rc[k].sum())}
    se, ppv, f1 = M.sensitivity(cm), M.positive_predictivity(cm), M.f1_score(cm)
    out = {"classes": classes, "labels": classes + ["none"], "confusion": cm.tolist(),
           "n_annotated": float(cm[:k].sum()), "n_missed_or_unclassified": float(cm[:k, k].sum()),
           "n_extra_detections": float(cm[k].sum()),
           "accuracy": float(np.trace(cm[:k, :k]) / max(cm[:k].sum(), 1.0)),
           "kappa": M.cohen_kappa(cm), "jk_index": M.jk_index(cm, s=index.get("S", 1), v=index.get("V", 2)),
           "per_class": {c: {"support": float(cm[i].sum()), "Se": float(se[i]), "+P": float(ppv[i]),
                             "F1": float(f1[i])} for i, c in enumerate(classes)},
           "records": per_record, "match_window_s": window_s, "variant": variant}
    return out


def format_beat_report(r: dict, title: str = "") -> str:
    lines = [title, ""] if title else []
    lines.append(f"{'class':<7}{'support':>9}{'Se':>8}{'+P':>8}{'F1':>8}")
    for c, v in r["per_class"].items():
        lines.append(f"{c:<7}{v['support']:>9.0f}{v['Se']:>8.3f}{v['+P']:>8.3f}{v['F1']:>8.3f}")
    lines += ["", f"accuracy {r['accuracy']:.4f}   kappa {r['kappa']:.4f}   jk {r['jk_index']:.4f}",
              f"annotated beats {r['n_annotated']:.0f}, missed or unclassified {r['n_missed_or_unclassified']:.0f}, "
              f"extra detections {r['n_extra_detections']:.0f}", "",
              "confusion (rows = reference, columns = prediction; none = missed / false detection)",
              "       " + "".join(f"{c:>8}" for c in r["labels"])]
    for c, row in zip(r["labels"], r["confusion"]):
        lines.append(f"{c:>7}" + "".join(f"{v:>8.0f}" for v in row))
    return "\n".join(lines) + "\n"


# --- window classifiers (segments-abnormal) ----------------------------------------------------------------------

def is_segment_table(table) -> bool:
    """A window table of ``ecgcore infer`` (``end_sample`` and a ``reference`` column)."""
    path = Path(table)
    if path.suffix.lower() not in (".csv", ""):
        return False
    with open(path, newline="") as f:
        cols = next(csv.reader(f), [])
    return "end_sample" in cols and "reference" in cols


def segment_report(table, *, positive: str = "Abnormal") -> dict:
    """ROC-AUC of ``prob_<positive>``, and F1 / accuracy / confusion of the table's classes (the shipped decision),
    over the windows with a reference label; windows left unclassified by the quality check count as misses."""
    from .. import metrics as M

    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("reference")]
    if not rows:
        raise ValueError(f"{table}: no window with a reference label (score annotated records)")
    if f"prob_{positive}" not in rows[0]:
        raise ValueError(f"{table}: no prob_{positive} column")
    y = np.array([r["reference"] == positive for r in rows], int)
    scored = np.array([r["class"] != "" for r in rows])
    p = np.array([float(r[f"prob_{positive}"]) if r[f"prob_{positive}"] not in ("", None) else np.nan for r in rows])
    pred = np.array([r["class"] == positive for r in rows], int)
    cm = M.confusion_matrix(y, pred, n_classes=2)
    se, ppv, f1 = (float(f(cm, zero_division=0.0)[1]) for f in (M.sensitivity, M.positive_predictivity, M.f1_score))
    per = {}
    for r, yi, pi in zip(rows, y, pred):
        d = per.setdefault(r["record"], {"windows": 0, "positive": 0, "correct": 0})
        d["windows"] += 1
        d["positive"] += int(yi)
        d["correct"] += int(yi == pi)
    ok = scored & np.isfinite(p)
    return {"positive": positive, "n": int(len(rows)), "n_positive": int(y.sum()), "unclassified": int((~scored).sum()),
            "roc_auc": float(M.roc_auc(y[ok], p[ok])) if len(np.unique(y[ok])) == 2 else float("nan"),
            "f1": f1, "precision": ppv, "recall": se, "accuracy": M.accuracy(cm),
            "confusion": cm.astype(int).tolist(), "records": per}


def format_segment_report(r: dict, title: str = "") -> str:
    lines = [title, ""] if title else []
    lines += [f"windows {r['n']} ({r['n_positive']} {r['positive']}), unclassified {r['unclassified']}",
              f"ROC-AUC {r['roc_auc']:.4f}   F1({r['positive']}) {r['f1']:.4f}   precision {r['precision']:.4f}   "
              f"recall {r['recall']:.4f}   accuracy {r['accuracy']:.4f}",
              f"confusion (rows = reference, columns = prediction; not {r['positive']} / {r['positive']}): "
              f"{r['confusion']}"]
    return "\n".join(lines) + "\n"
