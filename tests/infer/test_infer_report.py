"""``ecgcore infer --peaks detect`` and ``ecgcore infer-report``: beats from ecgcore's own detector on annotated
records, their reference classes by EC57 matching, and the figures of a beat table against the annotations."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ecgcore.cli import main
from infer_helpers import csv_rows as _rows
from infer_helpers import run_cli as _run

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")
K = ["N", "S", "V", "F", "Q"]






def test_detected_beats_carry_their_matched_reference(beats_model, mini_dir, tmp_path):
    from ecgcore.datasets.ec57 import beat_mask, match_beats
    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.dsp import detect_r_peaks
    from ecgcore.io import read_record

    folder, _, _ = beats_model
    out = tmp_path / "det.csv"
    res = _run("infer", folder, mini_dir / "208", "--peaks", "detect", "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    rec = read_record(mini_dir / "208")
    peaks = detect_r_peaks(rec.signal[:, 0], fs=rec.fs)
    peaks = peaks[(peaks > 93) & (peaks < rec.n_samples - 93)]  # the recipe's beat window must fit
    assert [int(r["sample"]) for r in rows] == peaks.tolist()
    ann = rec.annotations
    beats = np.flatnonzero(beat_mask(ann.symbol))
    ref_match, det_match = match_beats(ann.sample[beats], peaks, window=int(round(0.15 * rec.fs)))
    cls = aami_labels(ann.symbol[beats], "conformer")
    want = [cls[j] if j >= 0 else "" for j in det_match]
    assert [r["reference"] for r in rows] == want
    assert {"V", "N"} <= set(want)  # record 208 holds both
    # the reference annotations are not the beats any more: a few detections sit off the annotated R marks
    auto = tmp_path / "auto.csv"
    assert _run("infer", folder, mini_dir / "208", "-o", auto, "--threads", 1, "--no-progress").exit_code == 0
    assert [int(r["sample"]) for r in _rows(auto)] != [int(r["sample"]) for r in rows]
    # a changed beat source is another run: the table is not silently extended
    res = _run("infer", folder, mini_dir / "208", "-o", auto, "--peaks", "detect", "--threads", 1, "--no-progress")
    assert res.exit_code != 0 and "--overwrite" in res.output


def test_peaks_is_refused_for_models_without_beats(segments_model, mini_dir, tmp_path):
    folder, _, _ = segments_model
    res = CliRunner().invoke(main, ["infer", str(folder), str(mini_dir / "100"), "--peaks", "detect", "-o",
                                    str(tmp_path / "s.csv"), "--no-progress"])
    assert res.exit_code != 0 and "takes no beat positions" in res.output


@pytest.mark.parametrize("peaks", ["auto", "detect"])
def test_report_counts_every_annotated_beat(beats_model, mini_dir, tmp_path, peaks):
    """The report's matrix, rebuilt from the table's own reference column plus the beats no row holds."""
    from ecgcore.datasets.ec57 import beat_mask
    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.io import read_annotations

    folder, _, _ = beats_model
    out = tmp_path / "t.csv"
    args = ["infer", folder, mini_dir, "-o", out, "--threads", 1, "--no-progress", "--no-quality-check"]
    assert _run(*args, *(["--peaks", peaks] if peaks != "auto" else [])).exit_code == 0
    rows = _rows(out)
    res = _run("infer-report", out, "--records-dir", mini_dir, "--json", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    assert "jk" in res.output and "confusion" in res.output
    rep = json.loads((tmp_path / "m.json").read_text())
    cm = np.array(rep["confusion"])
    want = np.zeros((6, 6))
    for r in rows:
        want[K.index(r["reference"]) if r["reference"] else 5, K.index(r["class"])] += 1
    n_annotated = 0
    for name in ("100", "119", "208"):
        ann = read_annotations(mini_dir / name, "atr")
        cls = aami_labels(ann.symbol[beat_mask(ann.symbol)], "conformer")
        n_annotated += int(np.count_nonzero(cls != ""))
    # annotated beats no row matched: the "none" column, by class
    want[:5, 5] = cm[:5].sum(1) - want[:5, :5].sum(1)
    np.testing.assert_array_equal(cm, want)
    assert cm[:5].sum() == n_annotated == rep["n_annotated"]
    assert 0 <= rep["n_missed_or_unclassified"] < 0.02 * n_annotated
    if peaks == "auto":
        assert rep["n_extra_detections"] == 0  # the annotations themselves were scored
    acc = np.trace(cm[:5, :5]) / cm[:5].sum()
    assert rep["accuracy"] == pytest.approx(acc)
    v = rep["per_class"]["V"]
    assert v["Se"] == pytest.approx(cm[2, 2] / cm[2].sum()) and v["+P"] == pytest.approx(cm[2, 2] / cm[:, 2].sum())
    assert set(rep["records"]) == {"100", "119", "208"}


def test_report_refuses_a_table_that_is_not_a_beat_table(tmp_path, mini_dir):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    res = CliRunner().invoke(main, ["infer-report", str(bad), "--records-dir", str(mini_dir)])
    assert res.exit_code != 0 and "not a beat table" in res.output


def test_report_of_a_window_table(segments_model, mini_dir, tmp_path):
    """segments-abnormal tables: ROC-AUC of prob_Abnormal and the decision's F1, recomputed with scikit-learn."""
    from sklearn.metrics import f1_score, roc_auc_score

    folder, _, _ = segments_model
    out = tmp_path / "seg.csv"
    assert _run("infer", folder, mini_dir, "-o", out, "--threads", 1, "--no-progress",
                "--no-quality-check").exit_code == 0
    rows = [r for r in _rows(out) if r["reference"]]
    res = _run("infer-report", out, "--records-dir", mini_dir, "--json", tmp_path / "m.json")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "m.json").read_text())
    classes = sorted({r["reference"] for r in rows})
    positive = rep["positive"]
    y = [int(r["reference"] == positive) for r in rows]
    assert rep["n"] == len(rows) and rep["n_positive"] == sum(y) and set(rep["records"]) == {"100", "119", "208"}
    if len(classes) == 2:
        assert rep["roc_auc"] == pytest.approx(roc_auc_score(y, [float(r[f"prob_{positive}"]) for r in rows]))
    assert rep["f1"] == pytest.approx(f1_score(y, [int(r["class"] == positive) for r in rows], zero_division=0))
