"""Measurements and the plain-language summary on real MIT-BIH records, checked against their annotations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ecgcore.app.analysis import analyse_record, plain_summary
from ecgcore.app.measure import measure_record, rhythm_label, rhythm_lead
from ecgcore.app.models import ModelSuite
from ecgcore.io import read_record

BUNDLED = Path(__file__).resolve().parents[2] / "python" / "ecgcore" / "data" / "mitdb"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")


def _reference_hr(rec) -> float:
    beats = rec.annotations.beats().sample
    return 60.0 / (np.mean(np.diff(beats)) / rec.fs)


@pytest.fixture(scope="module")
def rec100():
    return read_record(BUNDLED / "100")


def test_rhythm_rule_thresholds():
    assert rhythm_label(49.9) == "regular"
    assert rhythm_label(50.0) == "irregular"
    assert rhythm_label(99.9) == "irregular"
    assert rhythm_label(100.0) == "irregularly irregular"
    assert rhythm_label(None) is None


def test_record_100_sinus_rhythm(rec100):
    m = measure_record(rec100)
    assert m["lead"] == "MLII"
    ref_beats = len(rec100.annotations.beats())
    assert abs(m["n_beats"] - ref_beats) <= 2, (m["n_beats"], ref_beats)
    assert abs(m["hr_bpm"] - _reference_hr(rec100)) < 0.5
    assert m["rhythm"] == "regular"
    assert m["p_present"] is True and m["p_inverted"] is False
    # Normal conduction: PR 120-220 ms, narrow QRS (the template estimate, not a delineator).
    assert 120 <= m["pr_ms"] <= 220, m["pr_ms"]
    assert 60 <= m["qrs_ms"] < 120, m["qrs_ms"]
    assert m["sdnn_ms"] > 0 and m["rmssd_ms"] > 0


def test_atrial_fibrillation_has_no_p_and_irregular_rhythm(mitdb_dir):
    # Record 201: atrial fibrillation for most of the first ten minutes.
    rec = read_record(mitdb_dir / "201", sampto=360 * 600)
    m = measure_record(rec)
    assert m["rhythm"] == "irregularly irregular"
    assert m["p_present"] is False and m["pr_ms"] is None
    assert abs(m["hr_bpm"] - _reference_hr(rec)) < 3.0


def test_wide_qrs_in_bundle_branch_block(mitdb_dir):
    # Record 214: left bundle branch block.
    rec = read_record(mitdb_dir / "214", sampto=360 * 300)
    m = measure_record(rec)
    assert m["qrs_ms"] >= 120, m["qrs_ms"]


def test_rhythm_lead_choice():
    from ecgcore.io import Record

    def rec(leads):
        return Record(signal=np.zeros((10, len(leads))), fs=360.0, leads=leads, units=["mV"] * len(leads))

    assert rhythm_lead(rec(["V5", "MLII"])) == 1
    assert rhythm_lead(rec(["I", "II", "III"])) == 1
    assert rhythm_lead(rec(["V1", "V2"])) == 0


def test_flat_signal_degrades_to_words():
    from ecgcore.io import Record

    rec = Record(signal=np.zeros((3600, 1)), fs=360.0, leads=["lead0"], units=["mV"], name="flat")
    a = analyse_record(rec, None)
    assert a.measurements["hr_bpm"] is None
    # A flat line is no ECG: the signal-quality check says so instead of "fewer than two beats".
    assert a.summary[0].startswith("Signal quality too low") and "flat line" in a.summary[0]
    assert a.figures  # the strip is still drawn


def test_summary_words_follow_the_measurements():
    m = {"lead": "II", "n_beats": 50, "duration_s": 30.0, "hr_bpm": 112.0, "hr_min_bpm": 100.0, "hr_max_bpm": 125.0,
         "rhythm": "irregularly irregular", "rr_std_10s_ms": 140.0, "sdnn_ms": 150.0, "rmssd_ms": 170.0,
         "p_present": False, "pr_ms": None, "qrs_ms": 132.0, "qt_ms": 400.0, "qtc_ms": 480.0, "st_mv": -0.15}
    text = " ".join(plain_summary(m, {"N": 40, "S": 0, "V": 10, "F": 0, "Q": 0},
                                  {"positive_class": "Abnormal", "n_segments": 5, "n_positive": 2,
                                   "positive_percent": 40.0, "max_probability": 0.91, "max_at_s": 10.0},
                                  {"NORM": 0.1, "CD": 0.8}, {"x-model": "not installed"}))
    for phrase in ("tachycardia", "irregularly irregular", "no consistent P wave", "prolonged (120 ms or more",
                   "long (above 460 ms)", "ST depression", "10 ventricular ectopic beats", "20.0 %",
                   "2 of 5 10 s segments", "conduction disturbance (CD, 0.80)", "Not assessed by x-model",
                   "not a diagnosis"):
        assert phrase in text, phrase


def test_analysis_without_models_names_them(rec100, tmp_path):
    suite = ModelSuite(beats=str(tmp_path / "no-model"), segments=None, superclass="hubert-ptbxl-super")
    a = analyse_record(rec100, suite)
    assert str(tmp_path / "no-model") in a.model_notes
    assert "not installed" in a.model_notes[str(tmp_path / "no-model")] or \
        "not available" in a.model_notes[str(tmp_path / "no-model")]
    assert a.model_notes["hubert-ptbxl-super"].startswith("needs a 12-lead ECG")
    assert a.beat_counts is None
    sym = list(rec100.annotations.symbol)
    groups = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}   # AAMI EC57
    assert a.reference_counts == {c: sum(s in g for s in sym) for c, g in groups.items()}
    assert set(a.figures) >= {"Rhythm strip with detected beats", "Heart rate and RR intervals",
                              "Median beat and intervals", "All leads"}
    for png in a.figures.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    js = a.to_json()
    import json

    json.dumps(js)  # JSON-ready


def test_corrupt_model_is_reported_not_raised(tmp_path):
    from ecgcore.export.card import ModelCard, write_card

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"this is not an onnx graph")
    write_card(ModelCard(name="broken", task="classification", framework="pytorch",
                         inputs=[{"name": "x", "shape": [None, 1, 3600], "dtype": "float32"}],
                         outputs=[{"name": "y", "shape": [None, 2], "dtype": "float32"}], fs=360.0,
                         classes=["Normal", "Abnormal"], preprocessing={"kind": "segments"}), folder)
    rec = read_record(BUNDLED / "119", sampto=3600 * 3, annotator=None)
    a = analyse_record(rec, ModelSuite(beats=None, segments=str(folder), superclass=None))
    assert "could not be loaded" in a.model_notes[str(folder)]
    assert a.segments is None and a.measurements["hr_bpm"] > 0
