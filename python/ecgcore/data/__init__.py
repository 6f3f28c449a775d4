"""Sample data shipped with ecgcore: 5-minute excerpts of MIT-BIH records 100, 119 and 208 (ODC-By 1.0)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["sample_dir", "sample_records", "sample_record_path"]

_MITDB = Path(__file__).resolve().parent / "mitdb"


def sample_dir() -> Path:
    """Folder holding the bundled WFDB excerpts (see its README.md for attribution)."""
    return _MITDB


def sample_records() -> list[str]:
    return (_MITDB / "RECORDS").read_text().split()


def sample_record_path(name: str = "100") -> Path:
    """Path (without extension) of a bundled record, for ``ecgcore.read_record``."""
    if name not in sample_records():
        raise KeyError(f"no bundled record {name!r}; bundled: {sample_records()}")
    return _MITDB / name
