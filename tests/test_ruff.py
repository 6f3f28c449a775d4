"""The code base stays lint-clean: ``ruff check`` with the configuration in pyproject.toml (pyflakes errors such as
unused imports or undefined names, pycodestyle errors and warnings, a 160-column hard limit)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra: pip install '.[test]')")
    res = subprocess.run([ruff, "check", "--no-cache", "python", "tests", "benchmarks", "tools"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
