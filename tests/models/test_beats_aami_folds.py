"""``tools/beats_aami_folds.py``: beats-aami recipes compared on record-grouped DS1 folds (issue 20)."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest


def test_folds_hold_every_ds1_record_once_and_bad_folds_are_refused(repo_tool):
    from ecgcore.datasets.mitdb import DS1

    tool = repo_tool("beats_aami_folds")
    folds = tool.check_folds(tool.FOLDS)
    assert sorted(r for recs in folds.values() for r in recs) == sorted(DS1)
    assert folds["F1"] == ("122", "208", "209", "230")  # the bundled run's validation records
    with pytest.raises(ValueError, match=r"not DS1 \['100'\]"):
        tool.check_folds({**tool.FOLDS, "F6": ("100",)})
    with pytest.raises(ValueError, match=r"more than one fold: \['109'\]"):
        tool.check_folds({**tool.FOLDS, "F6": ("109",)})
    with pytest.raises(ValueError, match=r"missing \['109', '115', '205'\]"):
        tool.check_folds({f: r for f, r in tool.FOLDS.items() if f != "F5"})


def test_training_command_validates_on_the_fold_and_passes_the_recipe(repo_tool, tmp_path, capsys):
    """The command the tool runs is one the real `ecgcore train conformer` accepts (resolved with --show-config):
    the fold's records as val_records, the seed, the recipe's settings."""
    from click.testing import CliRunner

    from ecgcore.cli import main as cli

    tool = repo_tool("beats_aami_folds")
    cmd = tool.train_command(tmp_path, tmp_path / "run", tmp_path, ("106", "101"), seed=7,
                             sets=("max_n_per_epoch=4000",))
    assert cmd[1:5] == ["-m", "ecgcore.cli", "train", "conformer"]
    res = CliRunner().invoke(cli, [*cmd[3:], "--show-config"])
    assert res.exit_code == 0, res.output
    resolved = json.loads(res.output)
    assert resolved["val_records"] == ["101", "106"] and resolved["seed"] == 7
    assert resolved["max_n_per_epoch"] == 4000 and resolved["chunk"] == 4  # the recipe on top of --config bundled
    # the dry run prints one command per fold that has no export yet, and trains nothing
    assert tool.main(["TF", str(tmp_path / "out"), "--records-dir", "MITDB", "--dry-run", "--folds", "F2,F5",
                      "--set", "max_n_per_epoch=4000"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [x.split(":")[0] for x in lines] == ["F2", "F5"] and not (tmp_path / "out").exists()
    assert 'val_records=["109", "115", "205"]' in lines[1]
    for bad in ("seed=1", " val-records=4"):  # spelt as the CLI's --set parser reads them
        with pytest.raises(SystemExit, match="the tool sets them"):
            tool.main(["TF", str(tmp_path / "out"), "--records-dir", "MITDB", "--set", bad])
    # an OUT folder keeps its recipe: another one is refused rather than scored under the wrong name
    tool.check_recipe(tmp_path / "rec", {"config": "bundled", "seed": 42, "sets": []})
    tool.check_recipe(tmp_path / "rec", {"config": "bundled", "seed": 42, "sets": []})
    with pytest.raises(SystemExit, match="another recipe"):
        tool.check_recipe(tmp_path / "rec", {"config": "bundled", "seed": 42, "sets": ["max_n_per_epoch=4000"]})
    with pytest.raises(SystemExit, match="unknown folds"):
        tool.main(["TF", str(tmp_path / "out"), "--records-dir", "MITDB", "--folds", "F9"])


def test_fold_confusion_equals_infer_report_on_a_real_record(repo_tool, mitdb_dir, tmp_path):
    """The bundled model on DS1 record 119 (444 V beats): the tool's confusion matrix equals the one `ecgcore infer
    --peaks annotations --no-quality-check` + `ecgcore infer-report` count on the same record, and its figures are
    that matrix's."""
    from ecgcore.metrics import jk_index

    tool = repo_tool("beats_aami_folds")
    cm, classes = tool.fold_confusion("beats-aami", ["119"], mitdb_dir)
    assert classes == ["N", "S", "V", "F", "Q"] and cm[2].sum() > 400
    table, rep = tmp_path / "t.csv", tmp_path / "t.json"
    for args in (["infer", "beats-aami", str(mitdb_dir / "119"), "--peaks", "annotations", "--no-quality-check",
                  "-o", str(table)],
                 ["infer-report", str(table), "--records-dir", str(mitdb_dir), "--json", str(rep)]):
        out = subprocess.run([sys.executable, "-m", "ecgcore.cli", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
    ref = np.asarray(json.loads(rep.read_text())["confusion"])
    assert ref[:5, 5].sum() == 0  # every annotated beat classified
    np.testing.assert_array_equal(cm, ref[:5, :5])
    fig = tool.figures(cm, classes)
    assert fig["jk"] == pytest.approx(jk_index(cm)) and fig["beats"] == cm.sum()
    assert tool.summed([], 5).tolist() == np.zeros((5, 5), int).tolist()
    assert fig["recall"]["V"] == pytest.approx(cm[2, 2] / cm[2].sum())


def test_pooled_figures_and_the_paired_comparison(repo_tool):
    tool = repo_tool("beats_aami_folds")
    classes = ["N", "S", "V", "F", "Q"]
    rng = np.random.default_rng(0)
    a = {f: np.diag([900, 30, 60, 5, 1]) + rng.integers(0, 20, (5, 5)) for f in ("F1", "F2", "F3")}
    b = {f: np.diag([900, 10, 40, 5, 1]) + rng.integers(0, 20, (5, 5)) for f in ("F1", "F2")}
    ra = {**tool.summarise(a, classes), "fold_records": {f: list(tool.FOLDS[f]) for f in a}}
    rb = {**tool.summarise(b, classes), "fold_records": {f: list(tool.FOLDS[f]) for f in b}}
    assert ra["pooled"]["confusion"] == (a["F1"] + a["F2"] + a["F3"]).tolist()
    c = tool.compare(ra, rb)  # paired on the folds both hold (F1, F2)
    pooled = lambda r, fs: tool.figures(sum(np.asarray(r[f]) for f in fs), classes)["jk"]  # noqa: E731
    assert c["folds"] == ["F1", "F2"]
    assert c["pooled_jk_difference"] == pytest.approx(pooled(a, c["folds"]) - pooled(b, c["folds"]))
    assert c["folds_higher"] == sum(ra["folds"][f]["jk"] > rb["folds"][f]["jk"] for f in ("F1", "F2")) == 2
    with pytest.raises(ValueError, match="share no fold"):
        tool.compare(ra, {**tool.summarise({"F5": a["F1"]}, classes), "fold_records": {"F5": list(tool.FOLDS["F5"])}})
    with pytest.raises(ValueError, match=r"folds \['F2'\] hold other records"):
        tool.compare(ra, {**rb, "fold_records": {**rb["fold_records"], "F2": ["101"]}})


def test_an_existing_export_scored_per_fold_and_per_record(repo_tool, mitdb_dir, tmp_path):
    """``--model F5=DIR`` scores an export without training: folds.json holds F5's figures and each of its three
    records' confusion matrix, which sum to the fold's."""
    import ecgcore

    tool = repo_tool("beats_aami_folds")
    bundled = Path(ecgcore.__file__).parent / "data" / "models" / "beats-aami"
    out = tmp_path / "out"
    assert tool.main(["TF", str(out), "--records-dir", str(mitdb_dir), "--folds", "F5", "--model", f"F5={bundled}"]) == 0
    res = json.loads((out / "folds.json").read_text())
    assert sorted(res["record_confusion"]) == sorted(tool.FOLDS["F5"]) and list(res["folds"]) == ["F5"]
    total = sum(np.asarray(cm) for cm in res["record_confusion"].values())
    assert total.tolist() == res["folds"]["F5"]["confusion"] == res["pooled"]["confusion"]
    assert total.sum() > 7000
