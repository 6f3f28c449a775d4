"""The README's test command on a machine without poppler, Chromium or PostgreSQL: every test that needs one
of them skips with the Debian package in its reason (and fails when ``ECGCORE_REQUIRE_SERVICES=1``).

The service-dependent tests (marker ``services``) run again in a subprocess whose PATH holds every tool of
this machine except those, and whose PostgreSQL binary folder does not exist; CI has them all installed, so
without this test a new unconditional ``pdftotext`` call would only show up on a user's fresh machine.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from system_tools import DEBIAN_PACKAGE

REPO = Path(__file__).resolve().parents[1]
SERVICE_FILES = ["tests/app/test_app_server.py", "tests/app/test_app_report.py", "tests/app/test_app_browser.py",
                 "tests/serve/test_serve_predict.py", "tests/serve/test_serve_process.py",
                 "tests/serve/test_serve_keys.py", "tests/serve/test_serve_concurrency.py"]


def _path_without(tools: set[str], tmp_path: Path) -> str:
    """A one-folder PATH of symlinks to every executable on PATH except ``tools``."""
    shadow = tmp_path / "bin"
    shadow.mkdir(parents=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            if entry.name in tools or (shadow / entry.name).exists():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                (shadow / entry.name).symlink_to(entry.path)
    return str(shadow)


def _run(tmp_path: Path, require: bool, extra: tuple = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=_path_without(set(DEBIAN_PACKAGE), tmp_path / ("req" if require else "free")),
               ECGCORE_PG_BIN=str(tmp_path / "no-postgresql"))
    env.pop("ECGCORE_REQUIRE_SERVICES", None)
    if require:
        env["ECGCORE_REQUIRE_SERVICES"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-m", "services", "-p", "no:cacheprovider", "-rs", "-q",
                           "--benchmark-disable", *extra, *SERVICE_FILES],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def test_service_tests_skip_with_the_package_name_when_tools_are_missing(tmp_path):
    res = _run(tmp_path, require=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    skipped = int(m.group(1)) if (m := re.search(r"(\d+) skipped", out)) else 0
    assert skipped >= 5, out[-4000:]          # PDF text, PDF ink, the browser, the PostgreSQL back-end tests
    assert not re.search(r"\d+ (passed|failed|errors?)\b", out), out[-4000:]
    reasons = [line for line in out.splitlines() if line.startswith("SKIPPED") and "--runslow" not in line]
    assert reasons and all("apt-get install" in r for r in reasons), "\n".join(reasons)
    for package in ("poppler-utils", "chromium", "postgresql"):
        assert any(package in r for r in reasons), (package, reasons)


def test_service_tests_fail_when_services_are_required(tmp_path):
    res = _run(tmp_path, require=True, extra=("-x",))
    out = res.stdout + res.stderr
    assert res.returncode == 1, out[-4000:]
    assert "ECGCORE_REQUIRE_SERVICES=1" in out and "apt-get install" in out, out[-4000:]
