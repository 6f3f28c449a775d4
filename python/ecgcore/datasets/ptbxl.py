"""PTB-XL's table (``ptbxl_database.csv``) as the recipes read it: the rows whose record is on disk."""
from __future__ import annotations

import ast
import csv
import functools
from pathlib import Path

__all__ = ["ptbxl_rows", "ptbxl_index", "table_key", "lead_names", "lead_indices"]


def ptbxl_rows(in_dir) -> tuple[dict, ...] | None:
    """The rows of ``in_dir/ptbxl_database.csv`` whose record is on disk, in table order, or None when ``in_dir``
    holds no such table. Each row: ``ecg_id`` (int), ``patient`` (str), ``recording_date``, ``path`` (the record
    relative to ``in_dir``: ``filename_hr`` where present, else ``filename_lr``), ``source_fs`` (500.0 or 100.0),
    ``codes`` (the SCP statements, sorted) and ``strat_fold`` (PTB-XL's patient-wise fold 1-10, None where the table
    has none; the dataset's authors keep folds 9 and 10 for validation and test). Rows without a patient id are left
    out. Read once per table version; the rows are shared, so callers copy what they change."""
    key = table_key(in_dir)
    return None if key is None else _read(*key)


def ptbxl_index(in_dir) -> dict[int, dict] | None:
    """:func:`ptbxl_rows` by ``ecg_id`` (the same shared rows), or None when ``in_dir`` holds no table."""
    key = table_key(in_dir)
    return None if key is None else _index(*key)


def table_key(in_dir) -> tuple[str, int, int] | None:
    """(folder, mtime, size) of ``in_dir``'s table: the caches' key (a changed table is read again)."""
    in_dir = Path(in_dir)
    db = in_dir / "ptbxl_database.csv"
    if not db.is_file():
        return None
    st = db.stat()
    return str(in_dir.resolve()), st.st_mtime_ns, st.st_size


def lead_names(leads) -> list[str]:
    """A ``leads`` option as a list of distinct names (``--set leads=II`` gives one name, not two letters)."""
    names = [leads] if isinstance(leads, str) else list(leads)
    if not names or len({str(n).upper() for n in names}) != len(names):
        raise ValueError(f"leads must name distinct leads (e.g. [\"I\", \"II\"]), got {leads!r}")
    return [str(n) for n in names]


def lead_indices(record_leads, names, where: str) -> list[int]:
    """The columns of ``names`` among a record's ``record_leads``, matched without regard to case; ``ValueError``
    (starting with ``where``, e.g. the ECG's id) naming the first lead the record lacks."""
    upper = [str(n).upper() for n in record_leads]
    out = []
    for lead in names:
        if str(lead).upper() not in upper:
            raise ValueError(f"{where}: lead {lead!r} not in the record's leads {', '.join(record_leads)}")
        out.append(upper.index(str(lead).upper()))
    return out


@functools.lru_cache(maxsize=4)
def _index(in_dir: str, mtime_ns: int, size: int) -> dict[int, dict]:
    return {r["ecg_id"]: r for r in _read(in_dir, mtime_ns, size)}


@functools.lru_cache(maxsize=4)
def _read(in_dir: str, mtime_ns: int, size: int) -> tuple[dict, ...]:
    root = Path(in_dir)
    rows = []
    with open(root / "ptbxl_database.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            col = next((c for c in ("filename_hr", "filename_lr") if r.get(c) and (root / f"{r[c]}.hea").is_file()),
                       None)
            if col is None or not r.get("patient_id"):
                continue
            rows.append({"ecg_id": int(float(r["ecg_id"])), "patient": str(int(float(r["patient_id"]))),
                         "recording_date": r.get("recording_date", ""), "path": r[col],
                         "source_fs": 500.0 if col == "filename_hr" else 100.0,
                         "codes": tuple(sorted(ast.literal_eval(r.get("scp_codes") or "{}"))),
                         "strat_fold": int(float(r["strat_fold"])) if r.get("strat_fold") else None})
    return tuple(rows)
