"""System tools and servers some tests start for real: poppler (pdftotext/pdftoppm), Chromium + ChromeDriver,
PostgreSQL.

A test that needs one calls :func:`need` (or :func:`postgres_bin`) before doing any work: when the tool is
missing the test is SKIPPED with a reason naming the Debian package, or FAILS when
``ECGCORE_REQUIRE_SERVICES=1`` (set by ``.ci/run``, which installs them). Tools are looked up on ``PATH``
(PostgreSQL's server binaries in ``$ECGCORE_PG_BIN``, else next to ``pg_ctl`` on ``PATH``, else Debian's
``/usr/lib/postgresql/<version>/bin``), so ``tests/test_services_hidden.py`` can hide them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REQUIRE_ENV = "ECGCORE_REQUIRE_SERVICES"

# tool -> Debian package that provides it
DEBIAN_PACKAGE = {
    "pdftotext": "poppler-utils", "pdftoppm": "poppler-utils",
    "chromium": "chromium", "chromedriver": "chromium-driver",
    "initdb": "postgresql", "pg_ctl": "postgresql", "postgres": "postgresql",
}


def required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def missing_service(reason: str):
    """Skip with ``reason``, or fail when the services are required (CI)."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the service is required)")
    pytest.skip(reason)


def _reason(missing: list[str]) -> str:
    packages = sorted({DEBIAN_PACKAGE.get(t, t) for t in missing})
    return f"needs {', '.join(missing)} (Debian: apt-get install {' '.join(packages)})"


def need(*tools: str) -> dict[str, str]:
    """Absolute paths of ``tools`` found on PATH; skip/fail naming the Debian package when any is missing."""
    found = {t: shutil.which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        missing_service(_reason(missing))
    return found


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server binaries (initdb, pg_ctl, postgres); skip/fail when there is none."""
    candidates = []
    if os.environ.get("ECGCORE_PG_BIN"):
        candidates.append(Path(os.environ["ECGCORE_PG_BIN"]))
    else:
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if all((folder / t).is_file() and os.access(folder / t, os.X_OK) for t in ("initdb", "pg_ctl", "postgres")):
            return folder
    missing_service(_reason(["initdb", "pg_ctl", "postgres"]) + f"; looked in {', '.join(map(str, candidates)) or 'PATH'}")
    raise AssertionError("unreachable")
