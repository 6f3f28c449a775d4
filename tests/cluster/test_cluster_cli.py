"""`ecgcore cluster fit|label` on a small FEATURES_DIR of real MIT-BIH MFCC rows."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.cluster import calinski_harabasz, load_model
from ecgcore.commands.cluster import cluster


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def test_fit_sweep_mini_batch_and_label(runner, mfcc_dir, tmp_path):
    model = tmp_path / "km.npz"
    res = runner.invoke(cluster, ["fit", str(mfcc_dir), str(model), "--k", "4:8:4", "--mini-batch",
                                  "--batch-files", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "km_sweep.tsv").read_text().splitlines()
    assert table[0].split("\t")[:4] == ["k", "SSE", "DB", "CH"] and len(table) == 3
    for k, line in zip((4, 8), table[1:]):
        m = load_model(tmp_path / f"km_k{k}.npz")
        assert m.n_clusters == k and m.metadata_["normalize"] and m.metadata_["features_kind"] == mfcc_dir.name
        x = np.concatenate([np.load(f) for f in sorted(mfcc_dir.glob("*.npy"))])
        assert float(line.split("\t")[1]) == pytest.approx(m.inertia(x), rel=1e-6)
    sse = [float(line.split("\t")[1]) for line in table[1:]]
    assert sse[1] < sse[0]

    out = tmp_path / "labels"
    m = load_model(tmp_path / "km_k8.npz")
    res = runner.invoke(cluster, ["label", str(mfcc_dir), str(tmp_path / "km_k8.npz"), str(out)])
    assert res.exit_code == 0, res.output
    for f in sorted(mfcc_dir.glob("*.npy")):
        np.testing.assert_array_equal(np.load(out / f.name), m.predict(np.load(f)))
    res = runner.invoke(cluster, ["label", str(mfcc_dir), str(tmp_path / "km_k8.npz"), str(out)])
    assert "labelled 0 of 4" in res.output  # resumes: nothing left to do


def test_fit_full_single_k(runner, mfcc_dir, tmp_path):
    model = tmp_path / "full.npz"
    res = runner.invoke(cluster, ["fit", str(mfcc_dir), str(model), "--k", "5", "--no-normalize"])
    assert res.exit_code == 0, res.output
    m = load_model(model)
    x = np.concatenate([np.load(f) for f in sorted(mfcc_dir.glob("*.npy"))])
    ch = float(res.output.strip().splitlines()[-1].split("\t")[3])
    assert ch == pytest.approx(calinski_harabasz(x, m.predict(x)), rel=1e-4)


def test_fit_errors(runner, mfcc_dir, tmp_path):
    res = runner.invoke(cluster, ["fit", str(mfcc_dir), str(tmp_path / "m.npz"), "--k", "9:3:1"])
    assert res.exit_code != 0 and "START:STOP:STEP" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(cluster, ["fit", str(empty), str(tmp_path / "m.npz")])
    assert res.exit_code != 0 and "no .npy feature files" in res.output
