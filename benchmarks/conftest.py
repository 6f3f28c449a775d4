"""Benchmarks read the reference databases through ECGCORE_DATA (default ../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    env = os.environ.get("ECGCORE_DATA")
    root = Path(env) if env else (REPO.parent / "shared" / "data")
    if not root.is_dir():
        pytest.skip(f"reference data not found at {root}")
    return root


@pytest.fixture(scope="session")
def mitdb_dir(data_dir) -> Path:
    return data_dir / "mitdb"


@pytest.fixture(scope="session")
def mitdb_records(mitdb_dir) -> list[str]:
    return (mitdb_dir / "RECORDS").read_text().split()


def ten_second_windows(mitdb_dir: Path, records: list[str], count: int, n: int = 3600) -> np.ndarray:
    """The first ``count`` non-overlapping 10 s windows (both leads) of the MIT-BIH records, in order."""
    import wfdb

    out = []
    for rec in records:
        sig = wfdb.rdrecord(str(mitdb_dir / rec)).p_signal.T
        k = sig.shape[1] // n
        out.append(sig[:, :k * n].reshape(-1, n))
        if sum(len(o) for o in out) >= count:
            break
    return np.ascontiguousarray(np.concatenate(out)[:count])
