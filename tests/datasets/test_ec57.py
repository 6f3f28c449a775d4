"""EC57 / bxb scoring: matching parity with wfdb's Comparitor, learning period, VF exclusion."""
from __future__ import annotations

import numpy as np
import pytest
import wfdb.processing

from ecgcore.datasets.ec57 import QrsStats, beat_mask, evaluate_qrs, format_table, gross, match_beats
from ecgcore.dsp.peaks import detect_r_peaks


@pytest.mark.parametrize("name", ["105", "116", "203"])
def test_matching_agrees_with_wfdb_comparitor(load_mitdb, name):
    x, sample, symbol, _ = load_mitdb(name)
    ref = sample[beat_mask(symbol)]
    det = detect_r_peaks(x, fs=360.0)
    ref_match, det_match = match_beats(ref, det, window=54)
    c = wfdb.processing.compare_annotations(ref, det, 54)
    # Tie-breaking between two equidistant candidates may differ by a beat.
    assert abs(int(np.count_nonzero(ref_match >= 0)) - c.tp) <= 1
    assert abs(int(np.count_nonzero(det_match < 0)) - c.fp) <= 1
    # One-to-one and within the window.
    m = ref_match >= 0
    assert np.unique(ref_match[m]).size == m.sum()
    assert np.all(np.abs(det[ref_match[m]] - ref[m]) <= 54)
    np.testing.assert_array_equal(det_match[ref_match[m]], np.flatnonzero(m))


def test_synthetic_counts():
    ref = np.array([100, 400, 700, 1000])
    det = np.array([110, 395, 500, 1060, 1300])
    s = evaluate_qrs(ref, ["N"] * 4, det, fs=360.0, start_s=0.0)
    assert (s.tp, s.fn, s.fp) == (2, 2, 3)
    assert s.se == pytest.approx(50.0) and s.ppv == pytest.approx(40.0)
    assert s.f1 == pytest.approx(100 * 4 / 9)
    # Non-beat annotations do not count; the learning period drops both sides.
    s = evaluate_qrs([100, 200, 400], ["N", "+", "N"], [100, 400], fs=1.0, start_s=300.0)
    assert (s.tp, s.fn, s.fp) == (1, 0, 0)


def test_vf_episodes_are_not_scored(load_mitdb):
    _, sample, symbol, _ = load_mitdb("207")
    on = sample[symbol == "["][0]
    off = sample[symbol == "]"][0]
    fake = np.arange(on + 10, off - 10, 30)  # detections all over the flutter episode
    beats = sample[beat_mask(symbol)]
    s_with = evaluate_qrs(sample, symbol, np.sort(np.concatenate([beats, fake])), fs=360.0, start_s=0.0)
    assert s_with.fp == 0 and s_with.fn == 0


def test_gross_and_table():
    stats = [QrsStats("a", 90, 10, 0), QrsStats("b", 10, 0, 10)]
    g = gross(stats)
    assert (g.tp, g.fn, g.fp) == (100, 10, 10)
    assert "gross" in format_table(stats)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sorted"):
        match_beats([3, 1], [1], window=5)
    with pytest.raises(ValueError, match="non-negative"):
        match_beats([1], [1], window=-1)
    with pytest.raises(ValueError, match="fs"):
        evaluate_qrs([1], ["N"], [1], fs=0)
