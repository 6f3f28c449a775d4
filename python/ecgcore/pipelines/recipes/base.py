"""What every recipe provides to the preprocess engine."""
from __future__ import annotations

import glob
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._fs import atomic_write

__all__ = ["Recipe", "RecordResult", "save_npz", "write_json", "wfdb_records"]


@dataclass
class RecordResult:
    """What a recipe produced for one record: files relative to OUT_DIR, and how many items (beats, windows)."""

    record: str
    files: list[str]
    n_items: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class Recipe:
    """A per-record task plus the archive-level files written once all records are done."""

    name = ""

    def default_options(self) -> dict:
        return {}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        """Work items (record or subject names) found in ``in_dir``, in a stable order."""
        raise NotImplementedError

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        raise NotImplementedError

    def cost(self, item: str, in_dir: Path, options: dict) -> float:
        """Relative work of ``item`` (a parallel run starts with the biggest); default: the size of its files."""
        base = in_dir / item
        try:
            return float(sum(p.stat().st_size for p in base.parent.glob(glob.escape(base.name) + ".*")
                             if p.is_file()))
        except OSError:
            return 0.0

    def preload(self) -> list[str]:
        """Modules that worker processes import before their first task (this recipe's module by default)."""
        return [type(self).__module__]

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        """Write index/metadata files from the manifest entries of all finished items."""


def wfdb_records(in_dir: Path) -> list[str]:
    """Record names (relative, no extension) of the WFDB records directly in ``in_dir`` (RECORDS order if present)."""
    listing = in_dir / "RECORDS"
    if listing.is_file():
        return [r for r in listing.read_text().split() if (in_dir / f"{r}.hea").is_file()]
    return sorted(p.stem for p in in_dir.glob("*.hea"))


def save_npz(path: Path, **arrays) -> None:
    """Write an uncompressed .npz atomically, byte-identical for identical arrays (fixed zip timestamps).

    ``numpy.savez`` stamps the current time into the zip, so two runs would differ; readers use ``np.load``.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_json(path: Path, obj) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
