"""MIT-BIH as a second HuBERT-ECG check: 10-s two-lead windows with AAMI beat / rhythm targets (no framework).

Each window is written as ``<record>_<start>.npy`` (2, 5000): the raw record resampled 360 -> 500 Hz with
``ecgcore.dsp.resample_poly`` (the ``hubert-features`` recipe's default ``.npy`` rate), so the recipe, the k-means
labels and :func:`ecgcore.models.hubert.inputs.input_from_record` all read it unchanged (leads 3-12 zero-filled).

Targets (multi-label, per window): presence of an AAMI S, V or F beat (EC57 mapping of ``ecgcore.datasets.mitdb``),
and ``RHY`` = any non-sinus rhythm annotation (``aux_note`` other than ``(N``) in force during the window.
Split: the de Chazal inter-patient protocol, DS1 -> train (four DS1 records held out for validation), DS2 -> test;
paced records are left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "VAL_RECORDS", "mitdb_windows"]

CLASSES = ("S", "V", "F", "RHY")
VAL_RECORDS = ("106", "118", "203", "223")


def _rhythm_spans(ann, n: int) -> np.ndarray:
    """(n,) bool: True where the annotated rhythm is not normal sinus."""
    out = np.zeros(n, bool)
    cur, start = "(N", 0
    for t, s, aux in zip(ann.sample, ann.symbol, ann.aux_note or [""] * len(ann.sample)):
        if s == "+" and aux.strip("\x00").strip():
            if cur != "(N":
                out[start:t] = True
            cur, start = aux.strip("\x00").strip(), int(t)
    if cur != "(N":
        out[start:] = True
    return out


def mitdb_windows(mitdb_dir, out_dir, *, per_record: int = 20, seconds: float = 10.0, out_fs: int = 500) -> Path:
    """Write evenly spaced windows of every non-paced record and ``labels.csv`` (record,S,V,F,RHY,split)."""
    from ...datasets.mitdb import DS1, DS2, aami_labels
    from ...dsp import resample_poly
    from ...io import read_record

    mitdb_dir, out_dir = Path(mitdb_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ["record," + ",".join(CLASSES) + ",split"]
    for rec_name in list(DS1) + list(DS2):
        rec = read_record(mitdb_dir / rec_name)
        fs = rec.fs
        n_win = int(round(seconds * fs))
        n = rec.signal.shape[0]
        starts = np.linspace(0, n - n_win, per_record).astype(int)
        ann = rec.annotations
        cls = aami_labels(ann.symbol)
        rhy = _rhythm_spans(ann, n)
        up, down = 25, 18  # 360 -> 500 Hz
        if int(round(fs)) != 360:
            raise ValueError(f"{rec_name}: expected 360 Hz, got {fs}")
        split = "test" if rec_name in DS2 else ("val" if rec_name in VAL_RECORDS else "train")
        for s in starts:
            seg = rec.signal[s:s + n_win].T
            x500 = resample_poly(seg, up, down, axis=-1).astype(np.float32)
            inside = (ann.sample >= s) & (ann.sample < s + n_win)
            y = [int(np.any(cls[inside] == c)) for c in ("S", "V", "F")] + [int(rhy[s:s + n_win].any())]
            name = f"{rec_name}_{s:07d}.npy"
            tmp = out_dir / (name + ".tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, x500)
            tmp.replace(out_dir / name)
            rows.append(f"{name}," + ",".join(map(str, y)) + f",{split}")
    tmp = out_dir / ".labels.csv.tmp"
    tmp.write_text("\n".join(rows) + "\n")
    tmp.replace(out_dir / "labels.csv")
    return out_dir / "labels.csv"
