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

import ast

from system_tools import DEBIAN_PACKAGE

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
# every test module that uses a system tool or server: it imports system_tools (directly or through serve_helpers)
SERVICE_FILES = sorted(str(p.relative_to(REPO)) for p in TESTS.rglob("test_*.py")
                       if p.name != Path(__file__).name and re.search(
                           r"^\s*from (system_tools|serve_helpers) import|^\s*import system_tools", p.read_text(), re.M))


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


def _marked_services(node) -> bool:
    return any("services" in ast.unparse(d) for d in getattr(node, "decorator_list", []))


def test_no_unguarded_tool_calls():
    """A test that runs pdftotext, Chromium, pg_ctl, ... by name must be marked `services` (or its module must be)
    and go through `need()`: otherwise it would run, and fail, on a machine without the tool."""
    offenders = []
    for path in TESTS.rglob("*.py"):
        if path.name in ("system_tools.py", Path(__file__).name):
            continue
        tree = ast.parse(path.read_text())
        module_marked = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                            and "services" in ast.unparse(n.value) for n in tree.body)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for call in ast.walk(fn):
                if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], (ast.List, ast.Tuple))
                        and call.args[0].elts and isinstance(call.args[0].elts[0], ast.Constant)
                        and call.args[0].elts[0].value in DEBIAN_PACKAGE):
                    continue
                guarded = module_marked or _marked_services(fn) or "need(" in ast.unparse(fn) \
                    or fn.name.startswith("_")  # a helper: its callers are checked where they call it
                if not guarded:
                    offenders.append(f"{path.relative_to(REPO)}:{call.lineno} {fn.name} runs "
                                     f"{call.args[0].elts[0].value!r} without need() / the services marker")
    assert not offenders, "\n".join(offenders)
    assert "tests/app/test_app_quality.py" in SERVICE_FILES or not (TESTS / "app/test_app_quality.py").exists() or \
        "system_tools" not in (TESTS / "app/test_app_quality.py").read_text()
