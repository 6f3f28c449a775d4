"""``ecgcore infer`` in a fresh virtual environment that has no torch, tensorflow or mlx.

The venv is made WITHOUT system site packages and gets only the base runtime (numpy, click, tqdm, wfdb, h5py,
onnxruntime) from the configured package indexes; the package under test comes from this checkout on
PYTHONPATH (its C++ core is already built there). Slow: installing takes minutes on a cold pip cache.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")]


def test_infer_runs_without_any_training_framework(beats_model, mini_dir, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy", "click", "tqdm",
                    "wfdb", "h5py", "onnxruntime"], check=True, timeout=1200)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Only the package under test (python/ of a developer build, or the installed one) goes on the path:
    # a folder holding nothing but a link to it, so nothing else of the host's site-packages leaks in.
    pkg_path = tmp_path / "pkg"
    pkg_path.mkdir()
    (pkg_path / "ecgcore").symlink_to(Path(os.environ["ECGCORE_PKG_PARENT"]) / "ecgcore")
    env["PYTHONPATH"] = str(pkg_path)
    for fw in ("torch", "tensorflow", "mlx", "keras"):
        r = subprocess.run([str(py), "-c", f"import {fw}"], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and "No module named" in r.stderr, f"{fw} is importable in the fresh venv"
    folder, _, _ = beats_model
    out = tmp_path / "scores.csv"
    # cli.py uses importlib.util without importing it; a fresh interpreter has not imported it yet.
    code = ("import importlib.util, sys; from ecgcore.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    assert not [m for m in ('torch', 'tensorflow', 'mlx') if m in sys.modules], 'framework imported'\n"
            "    raise")
    r = subprocess.run([str(py), "-c", code, "infer", str(folder), str(mini_dir), "-o", str(out), "--no-progress",
                        "--threads", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "records scored                  3" in r.stdout
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {row["record"] for row in rows} == {"100", "119", "208"} and len(rows) > 1000
