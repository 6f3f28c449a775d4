"""`ecgcore infer` checks the signal before it classifies: beats and segments in stretches that
:func:`ecgcore.dsp.signal_quality` calls unusable get no class, their reason in the `quality` column, and stay out
of the counts; clean MIT-BIH records are classified whole."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.export import list_bundled
from ecgcore.infer import Scorer
from ecgcore.io import Record, read_record

pytestmark = pytest.mark.skipif(not {"segments-abnormal", "beats-aami"} <= set(list_bundled()),
                                reason="the bundled classifiers are not installed")
FS = 360.0


def _record(x: np.ndarray, name: str) -> Record:
    return Record(signal=np.asarray(x, np.float64).reshape(-1, 1), fs=FS, leads=["MLII"], units=["mV"], name=name)


def _signals(mitdb_dir) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = int(120 * FS)
    ecg = read_record(mitdb_dir / "100", sampto=n, annotator=None).signal[:, 0]
    clipped = np.clip(ecg, None, np.percentile(ecg, 95))
    return {"white noise": rng.standard_normal(n), "ramp": np.linspace(-1, 1, n), "flat line": np.zeros(n),
            "clipped ECG": clipped}


@pytest.mark.parametrize("model", ["segments-abnormal", "beats-aami"])
def test_unusable_signals_are_not_classified(model, mitdb_dir):
    scorer = Scorer(model, threads=1)
    for name, x in _signals(mitdb_dir).items():
        pred = scorer.predict_record(_record(x, name))
        for row in pred.rows:
            assert row["class"] == "" and row["quality"] not in ("", "ok"), (name, row)
            assert all(row[f"prob_{c}"] is None for c in scorer.classes), (name, row)
        assert sum(pred.summary["counts"].values()) == 0 and pred.summary["unusable"] == len(pred.rows), name


def test_nstdb_noise_is_flagged_and_clean_records_pass(data_dir, mitdb_dir):
    scorer = Scorer("segments-abnormal", threads=1)
    for noise in ("bw", "ma"):
        rec = read_record(data_dir / "nstdb" / noise, sampto=int(300 * FS), annotator=None)
        pred = scorer.predict_record(rec)
        flagged = np.mean([r["class"] == "" for r in pred.rows])
        assert flagged >= 0.95, (noise, flagged)
    for name in ("100", "117"):
        pred = scorer.predict_record(read_record(mitdb_dir / name, annotator=None))
        usable = np.mean([r["quality"] == "ok" for r in pred.rows])
        assert usable >= 0.95, (name, usable)
        assert sum(pred.summary["counts"].values()) == len(pred.rows) - pred.summary["unusable"]


def test_quality_check_can_be_switched_off(mitdb_dir):
    x = _signals(mitdb_dir)["white noise"]
    pred = Scorer("segments-abnormal", threads=1, quality=False).predict_record(_record(x, "noise"))
    assert all(r["class"] in ("Normal", "Abnormal") and "quality" not in r for r in pred.rows)
