"""Shared fixtures: where the reference databases live, and the --runslow switch."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The folder holding the ecgcore package under test (python/ in a developer build, site-packages after
# `pip install .`: a clean checkout has no compiled core under python/). Tests that start subprocesses put it
# on their PYTHONPATH.
import ecgcore as _ecgcore_under_test  # noqa: E402

os.environ["ECGCORE_PKG_PARENT"] = str(Path(_ecgcore_under_test.__file__).resolve().parents[1])


def data_root() -> Path:
    """Reference databases (MIT-BIH, NSTDB, ECG-ID, PTB-XL): $ECGCORE_DATA or ../shared/data."""
    env = os.environ.get("ECGCORE_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


# The library finds reference databases through $ECGCORE_DATA only (ecgcore.datasets.locate; no default of its
# own): the harness's ../shared/data fallback reaches library code, and subprocesses, through the variable.
os.environ.setdefault("ECGCORE_DATA", str(data_root()))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (full databases, long trainings)")


_SERVICE_FIXTURES = {"pg_cluster", "pg_database", "database_url_pg"}


def pytest_collection_modifyitems(config, items):
    # Tests on a PostgreSQL server carry the `services` marker (see system_tools.py) like those marked by hand.
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) or \
                any(isinstance(v, str) and v == "postgresql" for v in params.values()):
            item.add_marker(pytest.mark.services)
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.fail(f"reference data not found at {root}; set ECGCORE_DATA")
    return root


@pytest.fixture(scope="session")
def mitdb_dir(data_dir) -> Path:
    return data_dir / "mitdb"


@pytest.fixture(scope="session")
def mitdb_records(mitdb_dir) -> list[str]:
    return (mitdb_dir / "RECORDS").read_text().split()


@pytest.fixture(scope="session")
def load_mitdb(mitdb_dir):
    """load_mitdb("100") -> (MLII signal float64, annotation samples, symbols, wfdb.Record), read by wfdb (the
    reference reader), cached."""
    from functools import lru_cache

    import numpy as np

    @lru_cache(maxsize=None)
    def load(name: str):
        import wfdb

        path = str(mitdb_dir / name)
        rec = wfdb.rdrecord(path)
        ann = wfdb.rdann(path, "atr")
        lead = rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0
        return rec.p_signal[:, lead].copy(), np.asarray(ann.sample, dtype=np.int64), np.asarray(ann.symbol), rec

    return load


@pytest.fixture(scope="session")
def ptbxl_cut(data_dir):
    """``ptbxl_cut(dest, n)``: a PTB-XL folder at ``dest`` holding the first ``n`` rows of the shared table (its
    records linked, not copied); returns those rows (``csv.DictReader`` dicts)."""
    import csv

    def make(dest: Path, n: int) -> list[dict]:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "records500").symlink_to(data_dir / "ptbxl" / "records500")
        with open(data_dir / "ptbxl" / "ptbxl_database.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        with open(dest / "ptbxl_database.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows[:n])
        return rows[:n]

    return make


@pytest.fixture(scope="session")
def gil_stall():
    """gil_stall(fn) -> (kernel seconds, longest stall of the main thread while fn ran in another thread)."""
    from gil import main_thread_stall

    return main_thread_stall


@pytest.fixture(scope="session")
def repo_tool():
    """``repo_tool("denoiser_guard")``: a script of the repository's ``tools/`` folder imported as a module."""
    import importlib.util

    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(f"ecgcore_tool_{name}", REPO / "tools" / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            loaded[name] = mod
        return loaded[name]

    return load
