"""``ecgcore features KIND IN OUT`` on .npy beats, a 12-lead array and a WFDB record."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.commands.features import features
from ecgcore.dsp.cwt import morlet_scalogram
from ecgcore.features import hubert_shard_features


@pytest.fixture()
def inputs(tmp_path, beats_100):
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "beats.npy", beats_100[:10])
    return src


def test_scalogram_of_npy_beats_equals_the_library(tmp_path, inputs, beats_100):
    out = tmp_path / "out"
    res = CliRunner().invoke(features, ["scalogram", str(inputs), str(out)])
    assert res.exit_code == 0, res.output
    got = np.load(out / "beats.scalogram.npy")
    np.testing.assert_array_equal(got, morlet_scalogram(beats_100[:10], np.arange(1, 33)))


def test_hubert_h5_and_resume(tmp_path):
    ecg = np.random.default_rng(3).standard_normal((12, 5000))
    np.save(tmp_path / "ecg.npy", ecg)
    target = tmp_path / "ecg.h5"
    args = ["hubert-mixed", str(tmp_path / "ecg.npy"), str(target), "--fs", "500", "--format", "h5"]
    assert CliRunner().invoke(features, args).exit_code == 0
    with h5py.File(target) as fh:
        np.testing.assert_array_equal(fh["hubert-mixed"][()], hubert_shard_features(ecg, "mixed", fs=100))
    mtime = target.stat().st_mtime_ns
    assert CliRunner().invoke(features, args).exit_code == 0  # existing output: skipped
    assert target.stat().st_mtime_ns == mtime


def test_wfdb_record_and_errors(tmp_path, mitdb_dir):
    res = CliRunner().invoke(features, ["stft", str(mitdb_dir / "100"), str(tmp_path / "o"), "--n-fft", "128"])
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "o" / "100.stft.npy").shape[:2] == (2, 65)
    res = CliRunner().invoke(features, ["mfcc", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert res.exit_code != 0 and "no such file" in res.output
    np.save(tmp_path / "x.npy", np.ones(400))
    res = CliRunner().invoke(features, ["mfcc", str(tmp_path / "x.npy"), str(tmp_path / "x.out.npy")])
    assert res.exit_code != 0 and "--fs" in res.output
