"""``ecgcore filter``: zero-phase band-pass over a record or a folder, one .npy + .json per record."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..dsp import bandpass, notch as notch_filter
from ..io import read_record, record_paths
from .._fs import atomic_write
from .archive import ArchiveSummary, run_archive

__all__ = ["filter_archive", "filter_record"]


def _out_paths(src_root: Path, rec_path: Path, dst: Path) -> tuple[Path, Path]:
    rel = rec_path.relative_to(src_root) if src_root.is_dir() else Path(rec_path.name)
    stem = rel.with_suffix("") if rel.suffix.lower() in (".npy", ".csv") else rel
    base = dst / stem
    return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")


def filter_record(rec_path: Path, npy_out: Path, json_out: Path, *, band, order: int, notch, fs) -> None:
    rec = read_record(rec_path, fs=fs) if rec_path.suffix.lower() in (".npy", ".csv") else read_record(rec_path)
    low, high = band
    if not high < rec.fs / 2:
        raise ValueError(f"{rec_path}: band edge {high} Hz is not below Nyquist ({rec.fs / 2} Hz) at fs={rec.fs}")
    y = bandpass(rec.signal, fs=rec.fs, low=low, high=high, order=order, axis=0)
    if notch:
        y = notch_filter(y, fs=rec.fs, freq=notch, axis=0)
    with atomic_write(npy_out) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, y.astype(np.float32))
    meta = {"record": rec.name, "source": str(rec_path), "fs": rec.fs, "leads": rec.leads, "units": rec.units,
            "n_samples": rec.n_samples, "filter": {"type": "butterworth bandpass, zero-phase", "band_hz": [low, high],
                                                   "order": order, "notch_hz": notch}}
    # The sidecar is written last: its presence marks the record as complete.
    with atomic_write(json_out) as tmp:
        tmp.write_text(json.dumps(meta, indent=1))


def filter_archive(src, dst, *, band=(0.5, 50.0), order: int = 4, notch=None, fs=None, overwrite: bool = False,
                   progress: bool = True) -> ArchiveSummary:
    src, dst = Path(src), Path(dst)
    recs = record_paths(src)
    if not recs:
        raise ValueError(f"{src}: no records found (.hea, .npy or .csv)")
    root = src if src.is_dir() else src.parent

    def done(rp):
        npy, js = _out_paths(root, rp, dst)
        return not overwrite and npy.is_file() and js.is_file()

    def task(rp):
        npy, js = _out_paths(root, rp, dst)
        filter_record(rp, npy, js, band=band, order=order, notch=notch, fs=fs)

    return run_archive(recs, task, done, name=lambda p: str(p), progress=progress, desc="filter")
