"""QRS width of windows (``ecgcore.dsp.qrs.qrs_width``): the definition on real MIT-BIH windows, bundle-branch-block
records against normal ones, and its edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.dsp import bandpass
from ecgcore.dsp.peaks import detect_r_peaks
from ecgcore.dsp.qrs import qrs_width

FS = 360.0
N = 3600  # 10 s windows, as the segments recipe cuts them


def _windows(load_mitdb, name, n=12):
    """The first ``n`` 10 s windows of a record's MLII lead, band-passed 0.5-50 Hz and z-scored per window."""
    x, *_ = load_mitdb(name)
    y = bandpass(x[: n * N], fs=FS, low=0.5, high=50.0, order=5)
    w = y.reshape(n, N)
    return (w - w.mean(1, keepdims=True)) / w.std(1, keepdims=True)


def _reference(w, frac=0.15, half_window=0.15):
    """The module docstring's definition, one beat at a time, with numpy.convolve for the moving average."""
    h = int(round(half_window * FS))
    d = np.convolve(np.abs(np.gradient(w)), np.ones(5) / 5, mode="same")
    widths = []
    for r in detect_r_peaks(w, fs=FS):
        if r - h < 0 or r + h >= len(w):
            continue
        seg = d[r - h:r + h]
        idx = np.flatnonzero(seg > frac * seg.max())
        widths.append((idx[-1] - idx[0]) / FS * 1000.0)
    return float(np.median(widths)) if widths else np.nan


@pytest.mark.parametrize("name", ["100", "109", "118", "208"])
def test_matches_the_definition_beat_by_beat(load_mitdb, name):
    w = _windows(load_mitdb, name)
    got = qrs_width(w, fs=FS)
    want = np.array([_reference(v) for v in w])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert qrs_width(w[3], fs=FS) == pytest.approx(want[3], abs=1e-9)  # one window gives a scalar
    np.testing.assert_allclose(qrs_width(w * 37.0 + 2.0, fs=FS), got, atol=1e-6)  # scale- and offset-free
    # float32 rows take the same C++ kernel (computed in double), one thread or several alike
    w32 = w.astype(np.float32)
    peaks = detect_r_peaks(w32.astype(np.float64), fs=FS)
    np.testing.assert_array_equal(qrs_width(w32, fs=FS, peaks=peaks, workers=1),
                                  qrs_width(w32.astype(np.float64), fs=FS, peaks=peaks, workers=2))


def test_bundle_branch_block_records_are_wide_and_normal_ones_narrow(load_mitdb):
    """MIT-BIH 109 (left) and 118, 124 (right bundle-branch block) against three records of normal conduction:
    the median over their first 12 windows is >= 95 ms for the blocks and <= 75 ms for the others (measured: 136,
    122 and 106 ms against 47, 44 and 67 ms)."""
    med = {r: float(np.median(qrs_width(_windows(load_mitdb, r), fs=FS))) for r in
           ("109", "118", "124", "100", "101", "112")}
    assert min(med["109"], med["118"], med["124"]) >= 95.0, med
    assert max(med["100"], med["101"], med["112"]) <= 75.0, med


def test_known_pulses():
    """Hand-derived: a triangle rising over 20 samples and falling over 20 has |gradient| 0.05 inside, 0.025 at its two
    ends and 0 at its apex; the 5-sample average exceeds 15 % of its maximum (0.0075) from one sample before the
    start to one after the end, so it measures 42 samples. A Gaussian pulse of sd 20 ms measures about 106 ms."""
    x = np.zeros(N)
    a = 1000
    x[a:a + 21] = np.linspace(0.0, 1.0, 21)
    x[a + 20:a + 41] = np.linspace(1.0, 0.0, 21)
    assert qrs_width(x, fs=FS, peaks=[np.array([a + 20])]) == pytest.approx(42 / FS * 1000.0, abs=1e-9)
    t = np.arange(N) / FS
    g = np.exp(-0.5 * ((t - 5.0) / 0.020) ** 2)
    assert 100.0 <= qrs_width(g, fs=FS, peaks=[np.array([1800])]) <= 112.0


def test_edge_cases():
    flat = np.zeros((2, N))
    assert np.isnan(qrs_width(flat, fs=FS)).all()
    assert qrs_width(np.zeros((0, N)), fs=FS).shape == (0,)
    # a beat too close to either end is not measured: one spike at 50 ms has no complete +-150 ms span
    x = np.zeros(N)
    x[18] = 1.0
    assert np.isnan(qrs_width(x, fs=FS, peaks=[np.array([18])]))
    # the span is [r - h, r + h): a beat at r = h is measured, one at r = n - h is not (h = 54 samples at 360 Hz)
    y = np.zeros(N)
    y[40:69] = np.hanning(29)
    assert np.isfinite(qrs_width(y, fs=FS, peaks=[np.array([54])]))
    assert np.isnan(qrs_width(y[::-1].copy(), fs=FS, peaks=[np.array([N - 54])]))
    assert np.isfinite(qrs_width(y[::-1].copy(), fs=FS, peaks=[np.array([N - 55])]))
    with pytest.raises(ValueError, match="frac"):
        qrs_width(flat, fs=FS, frac=1.5)
    with pytest.raises(ValueError, match="peak arrays"):
        qrs_width(flat, fs=FS, peaks=[np.array([100])])
    with pytest.raises(ValueError, match="shape"):
        qrs_width(np.zeros((2, 2, N)), fs=FS)
