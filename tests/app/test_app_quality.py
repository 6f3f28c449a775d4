"""Signal quality before diagnosis in the app (issue 18 §4), and the wording fixes that came with it.

Noise, ramps and flat lines get "signal quality too low" and no diagnosis (before: "169 bpm tachycardia",
"as seen in atrial fibrillation", "49 V beats"); unusable stretches of a real ECG are left out of every
number; PVC bigeminy/trigeminy is not called irregularly irregular; a wave boundary is drawn only when its
interval is shown; disagreeing models get a note; the intervals are marked unvalidated.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ecgcore.app.analysis import INTERVALS_UNVALIDATED, analyse_record, models_disagree, plain_summary
from ecgcore.app.measure import measure_record
from ecgcore.app.models import ModelSuite
from ecgcore.app.pages import results_page
from ecgcore.app.report import build_pdf
from ecgcore.export.card import list_bundled
from ecgcore.io import Record, read_record
from system_tools import need

BUNDLED = Path(__file__).resolve().parents[2] / "python" / "ecgcore" / "data" / "mitdb"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")

# Words that diagnose or describe an ECG: none may appear for a signal that is not one.
DIAGNOSIS = ("tachycardia", "bradycardia", "atrial fibrillation", "bundle-branch", "ventricular ectopic",
             "irregularly irregular", "first-degree", "Heart rate:", "Rhythm:", "PR interval", "QRS duration",
             "QT interval", "ST segment", "Beat classification", "Segment screening", "P waves")


def _non_ecg(kind: str, fs: float = 250.0, seconds: float = 60.0) -> Record:
    n = int(fs * seconds)
    rng = np.random.default_rng(4)
    sig = {"white noise": lambda: rng.standard_normal(n),
           "ramp": lambda: np.arange(n, dtype=np.float64),          # the ramp CSV: 0, 1, 2, ...
           "flat line": lambda: np.zeros(n),
           "sine": lambda: np.sin(2 * np.pi * 1.2 * np.arange(n) / fs)}[kind]()
    return Record(signal=sig[:, None], fs=fs, leads=["lead0"], units=["mV"], name=kind.replace(" ", "_"))


@pytest.fixture(scope="module")
def suite():
    # Every bundled model by name; none is loaded unless a usable ECG reaches it.
    return ModelSuite()


@pytest.mark.parametrize("kind", ["white noise", "ramp", "flat line", "sine"])
def test_non_ecg_gets_no_diagnosis(kind, suite):
    a = analyse_record(_non_ecg(kind), suite)
    assert a.quality_too_low
    assert a.summary[0].startswith("Signal quality too low")
    text = " ".join(a.summary)
    for word in DIAGNOSIS:
        assert word not in text, (kind, word, text)
    m = a.measurements
    assert all(m[k] is None for k in ("hr_bpm", "rhythm", "n_beats", "pr_ms", "qrs_ms", "qt_ms", "p_present"))
    assert a.beat_counts is None and a.segments is None and a.superclass is None and not a.beat_rows
    # The models were not run, and the page says why.
    assert set(a.model_notes) == set(suite.names)
    assert all(v.startswith("not run: signal quality too low") for v in a.model_notes.values())
    page = results_page("j", [a], [], seconds=1.0)
    assert "data-quality='too low'" in page and "Signal quality too low" in page
    section = page[page.index("class='card ecg'"):]
    for word in ("tachycardia", "atrial fibrillation", "bundle-branch", "irregularly irregular"):
        assert word not in section, word
    assert json.loads(json.dumps(a.to_json()))["quality"]["leads"][0]["usable_percent"] == 0.0


def test_noise_reasons_are_named(suite):
    assert "flat line" in analyse_record(_non_ecg("flat line"), suite).summary[0]
    assert "slow drift" in analyse_record(_non_ecg("ramp"), suite).summary[0]
    assert "QRS detectors disagree" in analyse_record(_non_ecg("white noise"), suite).summary[0]


def test_unusable_stretch_is_left_out(tmp_path):
    rec = read_record(BUNDLED / "100", sampto=360 * 120)
    clean = measure_record(rec)
    noisy = Record(signal=rec.signal.copy(), fs=rec.fs, leads=list(rec.leads), units=list(rec.units), name="100n",
                   annotations=rec.annotations)
    rng = np.random.default_rng(1)
    noisy.signal[360 * 40:360 * 70, :] = rng.standard_normal((360 * 30, rec.n_leads))   # windows 4-6: noise
    a = analyse_record(noisy, None)
    m = a.measurements
    assert m["quality"] == "partly usable" and m["usable_windows"] == 9 and m["n_windows"] == 12
    assert a.summary[0].startswith("Signal quality: 9 of 12 10 s windows")
    # Beats of the noisy stretch are not counted; the rate and rhythm of the rest are those of the clean ECG.
    ref = rec.annotations.beats().sample
    outside = int(np.sum((ref < 360 * 40) | (ref >= 360 * 70)))
    assert abs(m["n_beats"] - outside) <= 2, (m["n_beats"], outside)
    assert abs(m["hr_bpm"] - clean["hr_bpm"]) < 1.5 and m["rhythm"] == "regular"
    assert all(w["usable"] == (not 4 <= i <= 6) for i, w in enumerate(a.quality["windows"]))
    assert "Signal quality per 10 s window" in a.figures


@pytest.mark.skipif("beats-aami" not in list_bundled(), reason="the bundled beat model is not installed")
def test_model_rows_of_unusable_stretches_are_dropped():
    rec = read_record(BUNDLED / "100", sampto=360 * 60)
    rng = np.random.default_rng(2)
    rec.signal[360 * 20:360 * 30, :] = 0.5 * rng.standard_normal((3600, rec.n_leads))
    a = analyse_record(rec, ModelSuite(beats="beats-aami", segments=None, superclass=None))
    rows = a.beat_rows
    assert rows and all(not 360 * 20 <= r["sample"] < 360 * 30 for r in rows)
    assert sum(a.beat_counts.values()) == len(rows)
    assert a.measurements["model_rows_left_out"].get("beats", 0) > 0
    assert any(s.startswith("Left out of the model findings") for s in a.summary)


def test_mostly_unusable_rhythm_lead_falls_back_to_a_usable_one():
    rec = read_record(BUNDLED / "100", sampto=360 * 60)
    sig = rec.signal.copy()
    sig[:, 0] = 0.0                                   # MLII lead off
    a = analyse_record(Record(signal=sig, fs=rec.fs, leads=list(rec.leads), units=list(rec.units), name="off"),
                       None)
    m = a.measurements
    assert m["lead"] == "V5" and m["quality"] == "good" and m["hr_bpm"] > 60
    assert "lead MLII is mostly unusable" in a.summary[0] and "flat line" in a.summary[0]


# -- rhythm wording ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["208", "119"])
def test_pvc_bigeminy_and_trigeminy_are_not_atrial_fibrillation(name):
    # Bundled 5 min of 208 (PVCs in trigeminy, couplets, fusion beats) and 119 (PVC bigeminy/trigeminy).
    m = measure_record(read_record(BUNDLED / name))
    assert m["rhythm"] != "irregularly irregular"
    assert m["rhythm"] in ("bigeminy", "trigeminy", "irregular, with frequent ectopic beats"), m["rhythm"]
    assert m["ectopic_percent"] >= 10
    rhythm = next(s for s in plain_summary(m, None, None, None, {}) if s.startswith("Rhythm:"))
    assert "premature (ectopic) beats" in rhythm and "not the irregularly irregular rhythm" in rhythm


@pytest.mark.parametrize("name", ["203", "221"])
def test_atrial_fibrillation_stays_irregularly_irregular(mitdb_dir, name):
    # 203: atrial fibrillation/flutter 98 % of the record; 221: atrial fibrillation 97 %.
    m = measure_record(read_record(mitdb_dir / name))
    assert m["rhythm"] == "irregularly irregular"


def test_sinus_rhythm_with_a_few_premature_beats_stays_regular():
    m = measure_record(read_record(BUNDLED / "100"))
    assert m["rhythm"] == "regular" and 0 < m["ectopic_percent"] < 5
    rhythm = next(s for s in plain_summary(m, None, None, None, {}) if s.startswith("Rhythm:"))
    assert "the rhythm is regular" in rhythm and "occasional premature (ectopic) beats" in rhythm


@pytest.mark.slow
def test_rhythm_words_on_all_mitdb_records(mitdb_dir, mitdb_records):
    """No record without atrial fibrillation or flutter in its reference rhythm is called irregularly
    irregular; records mostly in atrial fibrillation are."""
    import wfdb

    for name in mitdb_records:
        m = measure_record(read_record(mitdb_dir / name))
        ann = wfdb.rdann(str(mitdb_dir / name), "atr")
        marks = [(s, a.rstrip("\x00")) for s, a in zip(ann.sample, ann.aux_note) if a.startswith("(")]
        ends = [s for s, _ in marks[1:]] + [650000]
        af = sum(e - s for (s, a), e in zip(marks, ends) if a in ("(AFIB", "(AFL")) / 650000
        if af == 0:
            assert m["rhythm"] != "irregularly irregular", name
        if af >= 0.75:
            assert m["rhythm"] == "irregularly irregular", name


# -- median beat markers -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["100", "119", "208"])
def test_no_marker_without_its_interval(name):
    m = measure_record(read_record(BUNDLED / name))
    fid = m["fiducials"]
    assert ("p_on" in fid) == (m["pr_ms"] is not None)
    assert ("qrs_on" in fid) == (m["qrs_ms"] is not None)
    assert ("t_end" in fid) == (m["qt_ms"] is not None)
    if m["pr_ms"] is not None:
        assert 80 <= m["pr_ms"] <= 300


def test_record_208_p_wave_is_not_the_previous_t_wave():
    # Before: "P on" 400 ms before R (on the previous beat's T wave) while the table showed PR "-".
    m = measure_record(read_record(BUNDLED / "208"))
    fid, r = m["fiducials"], m["template_r"]
    assert m["p_present"] is True and m["pr_ms"] is not None
    assert (r - fid["p_on"]) / m["fs"] * 1000 < 300


# -- notes ---------------------------------------------------------------------------------------------

def test_disagreeing_models_get_a_note():
    segments = {"positive_class": "Abnormal", "n_segments": 59, "n_positive": 0, "positive_percent": 0.0,
                "max_probability": 0.31, "max_at_s": 120.0}
    counts = {"N": 630, "S": 20, "V": 350, "F": 0, "Q": 0}            # 37 % non-normal
    note = models_disagree(counts, segments)
    assert note and "37 %" in note and "more abnormal than normal beats" in note and "undertrained" in note
    assert note in plain_summary({"lead": "MLII"}, counts, segments, None, {})
    assert models_disagree({"N": 990, "S": 5, "V": 5, "F": 0, "Q": 0}, segments) is None
    assert models_disagree(counts, None) is None


def test_page_says_intervals_are_unvalidated():
    a = analyse_record(read_record(BUNDLED / "100", sampto=360 * 30), None)
    assert INTERVALS_UNVALIDATED in a.summary
    page = results_page("j", [a], [], seconds=1.0)
    assert "class='note intervals-note'" in page and "not been validated" in page
    assert re.search(r"data-measure='quality' data-value='good'", page)


@pytest.mark.services
def test_pdf_says_quality_too_low_and_intervals_unvalidated(suite):
    tools = need("pdftotext")
    good = analyse_record(read_record(BUNDLED / "100", sampto=360 * 30), None)
    bad = analyse_record(_non_ecg("white noise"), suite)
    text = subprocess.run([tools["pdftotext"], "-", "-"], input=build_pdf([good, bad]), capture_output=True,
                          check=True).stdout.decode()
    flat = " ".join(text.split())
    assert "Signal quality too low" in flat and "No diagnosis is given for this ECG" in flat
    assert "not been validated against a reference database" in flat
    noise_part = flat[flat.index("ECG white_noise"):]
    for word in ("tachycardia", "atrial fibrillation", "bundle-branch"):
        assert word not in noise_part, word
