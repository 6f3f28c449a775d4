"""The two baselines of the segments-abnormal card (issue 21), each window scored, threshold from the DS1 windows.

    ecgcore infer beats-aami DS1_RECORDS... -o ds1_beats.csv        (and the same for DS2)
    python tools/segments_baselines.py SEGMENTS_DIR MITDB_DIR --aami-ds1 ds1_beats.csv --aami-ds2 ds2_beats.csv \
        --rr-out rr.json --aami-out aami.json

* RR irregularity (``ecgcore.models.attention.baseline.rr_irregularity``, from the annotated beats);
* the share of the window's beats that the bundled beats-aami calls anything but N, from ``ecgcore infer`` tables;
* the window's median QRS width (``ecgcore.dsp.qrs.qrs_width`` with the qrs-width prior's settings, measured on the
  model-input window): the signal measure behind ``AttentionConfig.prior="qrs-width"``, alone.

Windows and labels are the segments dataset's (the seed's majority rule); DS1 windows fix the threshold (max F1),
DS2 windows are scored. Note the label rule counts bundle-branch-block beats (L, R) as abnormal while AAMI puts
them in N, so the beats-aami share cannot see windows that are abnormal only by L/R beats.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from ecgcore.models.attention.baseline import aami_fraction, rr_irregularity, score_baseline
from ecgcore.models.attention.data import load_records, read_dataset_info


def _table(path: Path) -> dict:
    rows: dict = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["record"], ([], []))
            rows[r["record"]][0].append(int(r["sample"]))
            rows[r["record"]][1].append(r["class"])
    return {k: (np.asarray(s, np.int64), np.asarray(c, object)) for k, (s, c) in rows.items()}


def _scores(split, size: int, fn) -> np.ndarray:
    out = np.zeros(len(split))
    for rec in np.unique(split.record):
        m = split.record == rec
        out[m] = fn(str(rec), split.start[m], size)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("segments", type=Path)
    ap.add_argument("mitdb", type=Path)
    ap.add_argument("--aami-ds1", type=Path)
    ap.add_argument("--aami-ds2", type=Path)
    ap.add_argument("--rr-out", type=Path, required=True)
    ap.add_argument("--aami-out", type=Path)
    ap.add_argument("--width-out", type=Path, help="also score the median QRS width of each window")
    a = ap.parse_args()

    info = read_dataset_info(a.segments)
    ds1, ds2 = (load_records(a.segments, info["splits"][k]) for k in ("DS1", "DS2"))
    size = ds1.x.shape[-1]
    rr = [_scores(s, size, lambda r, st, n: rr_irregularity(r, st, n, a.mitdb)) for s in (ds1, ds2)]
    res = score_baseline(rr[0], ds1.y, rr[1], ds2.y)
    a.rr_out.write_text(json.dumps(res, indent=1))
    print("rr irregularity:", json.dumps({k: res[k] for k in ("roc_auc", "f1_abnormal", "accuracy")}))
    if a.aami_ds1 and a.aami_ds2 and a.aami_out:
        tables = [_table(a.aami_ds1), _table(a.aami_ds2)]
        sc = [_scores(s, size, lambda r, st, n, t=t: aami_fraction(t, r, st, n)) for s, t in zip((ds1, ds2), tables)]
        res = score_baseline(sc[0], ds1.y, sc[1], ds2.y)
        a.aami_out.write_text(json.dumps(res, indent=1))
        print("beats-aami share:", json.dumps({k: res[k] for k in ("roc_auc", "f1_abnormal", "accuracy")}))
    if a.width_out:
        from ecgcore.dsp.qrs import qrs_width
        from ecgcore.models.attention.model import FS, WIDTH_OPTIONS

        # a window without a complete beat scores 0 ms (below every threshold: Normal)
        sc = [np.nan_to_num(qrs_width(s.x[:, 0], fs=FS, **WIDTH_OPTIONS), nan=0.0) for s in (ds1, ds2)]
        res = score_baseline(sc[0], ds1.y, sc[1], ds2.y)
        res["score"] = "median QRS width of the window, ms (ecgcore.dsp.qrs.qrs_width, " + \
            ", ".join(f"{k}={v}" for k, v in WIDTH_OPTIONS.items()) + ")"
        a.width_out.write_text(json.dumps(res, indent=1))
        print("QRS width:", json.dumps({k: res[k] for k in ("roc_auc", "f1_abnormal", "accuracy")}))


if __name__ == "__main__":
    main()
