"""Benchmarks read the reference databases through ECGCORE_DATA (default ../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

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
