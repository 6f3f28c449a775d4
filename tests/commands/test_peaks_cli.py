"""``ecgcore peaks detect`` and ``ecgcore peaks evaluate``."""
from __future__ import annotations

import shutil

import numpy as np
import wfdb
from click.testing import CliRunner

from ecgcore.commands.peaks import peaks
from ecgcore.dsp.peaks import detect_r_peaks


def test_detect_writes_wfdb_annotations_and_csv(mitdb_dir, tmp_path, load_mitdb):
    src = tmp_path / "in"
    src.mkdir()
    for ext in ("hea", "dat"):
        shutil.copy(mitdb_dir / f"100.{ext}", src / f"100.{ext}")
    out = tmp_path / "out"
    res = CliRunner().invoke(peaks, ["detect", str(src), str(out)])
    assert res.exit_code == 0, res.output
    expected = detect_r_peaks(load_mitdb("100")[0], fs=360.0)
    ann = wfdb.rdann(str(out / "100"), "qrs")
    np.testing.assert_array_equal(ann.sample, expected)
    csv = np.loadtxt(out / "100.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(csv[:, 0].astype(np.int64), expected)
    np.testing.assert_allclose(csv[:, 1], expected / 360.0, atol=1e-6)


def test_detect_reports_missing_input(tmp_path):
    res = CliRunner().invoke(peaks, ["detect", str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert res.exit_code != 0 and "no such file" in res.output


def test_evaluate_prints_both_tables(mitdb_dir):
    res = CliRunner().invoke(peaks, ["evaluate", str(mitdb_dir), "--records", "100,119"])
    assert res.exit_code == 0, res.output
    assert "first 5 minutes excluded" in res.output and "whole records" in res.output
    assert res.output.count("gross") == 2 and res.output.count("\n100 ") == 2
