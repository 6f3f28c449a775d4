"""Filter design and zero-phase filtering: parity with scipy.signal on real MIT-BIH signals.

Tolerances (relative to the peak magnitude of scipy's output row): 1e-9 for float64 input, 1e-5 for float32;
design coefficients within 1e-12 absolute.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import scipy.signal as ss
import wfdb

import ecgcore.dsp as dsp

F64_TOL = 1e-9
F32_TOL = 1e-5


def rel_err(ours, ref, axis=-1):
    ref = np.asarray(ref, dtype=np.float64)
    peak = np.max(np.abs(ref), axis=axis, keepdims=True)
    return float(np.max(np.abs(np.asarray(ours, dtype=np.float64) - ref) / np.where(peak > 0, peak, 1.0)))


@pytest.fixture(scope="module")
def all_records(mitdb_dir, mitdb_records):
    """[48, 2, 650000] physical signals of every MIT-BIH record (read with wfdb, the reference reader)."""
    return np.stack([wfdb.rdrecord(str(mitdb_dir / r)).p_signal.T for r in mitdb_records])


@pytest.fixture(scope="module")
def rec100(mitdb_dir):
    return wfdb.rdrecord(str(mitdb_dir / "100"), sampto=60000).p_signal  # [n, 2]


DESIGNS = [
    (4, (0.5, 50.0), "bandpass", 360.0), (5, (0.5, 50.0), "bandpass", 360.0), (3, (0.5, 40.0), "bandpass", 360.0),
    (4, (0.5, 40.0), "bandpass", 360.0), (4, 40.0, "lowpass", 360.0), (4, 0.5, "highpass", 360.0),
    (3, 0.67, "highpass", 500.0), (4, (48.0, 52.0), "bandstop", 360.0), (8, (0.05, 47.0), "bandpass", 500.0),
    (1, 10.0, "lowpass", 130.0), (7, (1.0, 30.0), "bandpass", 128.0), (2, (0.05, 47.0), "bandpass", 100.0),
]


@pytest.mark.parametrize("order,cutoff,btype,fs", DESIGNS)
def test_butter_sos_matches_scipy(order, cutoff, btype, fs):
    ours = dsp.butter(order, cutoff, btype, fs=fs)
    ref = ss.butter(order, cutoff, btype=btype, fs=fs, output="sos")
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order,cutoff,btype,fs", DESIGNS[:8])
def test_butter_ba_and_zpk_match_scipy(order, cutoff, btype, fs):
    b, a = dsp.butter(order, cutoff, btype, fs=fs, output="ba")
    rb, ra = ss.butter(order, cutoff, btype=btype, fs=fs, output="ba")
    np.testing.assert_allclose(b, rb, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a, ra, rtol=1e-10, atol=1e-12)
    z, p, k = dsp.butter(order, cutoff, btype, fs=fs, output="zpk")
    rz, rp, rk = ss.butter(order, cutoff, btype=btype, fs=fs, output="zpk")
    np.testing.assert_allclose(np.sort_complex(p), np.sort_complex(rp), atol=1e-12)
    assert k == pytest.approx(rk, rel=1e-12)


@pytest.mark.parametrize("q", [2, 3, 4, 5, 8, 13])
def test_cheby1_matches_scipy(q):
    ours = dsp.cheby1(8, 0.05, 0.8 / q, fs=2.0)
    np.testing.assert_allclose(ours, ss.cheby1(8, 0.05, 0.8 / q, output="sos"), rtol=0, atol=1e-12)


@pytest.mark.parametrize("w0,Q,fs", [(50.0, 30.0, 360.0), (60.0, 30.0, 360.0), (50.0, 25.0, 500.0)])
def test_iirnotch_matches_scipy(w0, Q, fs):
    b, a = dsp.iirnotch(w0, Q, fs=fs)
    rb, ra = ss.iirnotch(w0, Q, fs=fs)
    np.testing.assert_allclose(b, rb, atol=1e-15)
    np.testing.assert_allclose(a, ra, atol=1e-15)


def test_initial_conditions_match_scipy():
    sos = ss.butter(5, (0.5, 50.0), btype="bandpass", fs=360, output="sos")
    np.testing.assert_allclose(dsp.sosfilt_zi(sos), ss.sosfilt_zi(sos), rtol=1e-12, atol=1e-14)
    b, a = ss.iirnotch(50.0, 30.0, fs=360)
    np.testing.assert_allclose(dsp.lfilter_zi(b, a), ss.lfilter_zi(b, a), rtol=1e-12, atol=1e-15)
    # An order-6 (b, a) band-pass is ill-conditioned (poles near z = 1): both solvers agree to ~1e-7.
    b, a = ss.butter(3, (0.5, 40.0), btype="bandpass", fs=360)
    np.testing.assert_allclose(dsp.lfilter_zi(b, a), ss.lfilter_zi(b, a), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("order,band", [(4, (0.5, 50.0)), (5, (0.5, 50.0)), (3, (0.5, 40.0))])
def test_sosfiltfilt_all_records_float64(all_records, order, band):
    """Every MIT-BIH record, both leads, as one [96, 650000] batch."""
    x = all_records.reshape(-1, all_records.shape[-1])
    sos = ss.butter(order, band, btype="bandpass", fs=360, output="sos")
    assert rel_err(dsp.sosfiltfilt(sos, x), ss.sosfiltfilt(sos, x)) < F64_TOL


def test_sosfiltfilt_all_records_float32(all_records):
    x = all_records.reshape(-1, all_records.shape[-1])
    sos = ss.butter(4, (0.5, 50.0), btype="bandpass", fs=360, output="sos")
    y = dsp.sosfiltfilt(sos, x.astype(np.float32))
    assert y.dtype == np.float32
    assert rel_err(y, ss.sosfiltfilt(sos, x)) < F32_TOL


def test_bandpass_is_butter_plus_sosfiltfilt(rec100):
    ref = ss.sosfiltfilt(ss.butter(4, (0.5, 50.0), btype="bandpass", fs=360, output="sos"), rec100, axis=0)
    assert rel_err(dsp.bandpass(rec100, fs=360, axis=0), ref, axis=0) < F64_TOL


@pytest.mark.parametrize("padtype,padlen", [("odd", None), ("even", None), ("constant", None), (None, None),
                                            ("odd", 0), ("odd", 500)])
def test_sosfiltfilt_padding_options(rec100, padtype, padlen):
    sos = ss.butter(4, (0.5, 40.0), btype="bandpass", fs=360, output="sos")
    ours = dsp.sosfiltfilt(sos, rec100, axis=0, padtype=padtype, padlen=padlen)
    ref = ss.sosfiltfilt(sos, rec100, axis=0, padtype=padtype, padlen=padlen)
    assert rel_err(ours, ref, axis=0) < F64_TOL


def test_sosfilt_with_and_without_state(rec100):
    sos = ss.butter(4, (0.5, 50.0), btype="bandpass", fs=360, output="sos")
    assert rel_err(dsp.sosfilt(sos, rec100, axis=0), ss.sosfilt(sos, rec100, axis=0), axis=0) < F64_TOL
    zi = np.random.default_rng(0).normal(size=(sos.shape[0], 2, 2))
    y, zf = dsp.sosfilt(sos, rec100, axis=0, zi=zi)
    ry, rzf = ss.sosfilt(sos, rec100, axis=0, zi=zi)
    assert rel_err(y, ry, axis=0) < F64_TOL
    np.testing.assert_allclose(zf, rzf, rtol=1e-9, atol=1e-12)


def test_filtfilt_and_lfilter_ba(rec100):
    for b, a in [ss.iirnotch(50.0, 30.0, fs=360), ss.butter(3, (0.5, 40.0), btype="bandpass", fs=360)]:
        assert rel_err(dsp.filtfilt(b, a, rec100, axis=0), ss.filtfilt(b, a, rec100, axis=0), axis=0) < F64_TOL
        assert rel_err(dsp.lfilter(b, a, rec100, axis=0), ss.lfilter(b, a, rec100, axis=0), axis=0) < F64_TOL
        zi = np.ones((max(len(a), len(b)) - 1, 2))
        y, zf = dsp.lfilter(b, a, rec100, axis=0, zi=zi)
        ry, rzf = ss.lfilter(b, a, rec100, axis=0, zi=zi)
        assert rel_err(y, ry, axis=0) < F64_TOL
        np.testing.assert_allclose(zf, rzf, rtol=1e-9, atol=1e-12)


def test_notch_removes_mains(rec100):
    fs = 360.0
    t = np.arange(rec100.shape[0]) / fs
    hum = 0.3 * np.sin(2 * np.pi * 50.0 * t)
    y = dsp.notch(rec100[:, 0] + hum, fs=fs, freq=50.0)
    b, a = ss.iirnotch(50.0, 30.0, fs=fs)
    assert rel_err(y, ss.filtfilt(b, a, rec100[:, 0] + hum)) < F64_TOL
    # and it really removes the hum: residual 50 Hz amplitude far below the injected 0.3 mV
    spec = np.abs(np.fft.rfft(y - dsp.notch(rec100[:, 0], fs=fs, freq=50.0))) * 2 / y.size
    assert spec.max() < 0.03


@pytest.mark.parametrize("up,down", [(13, 36), (25, 18), (5, 18), (1, 3), (2, 1), (1, 4), (7, 1), (1, 1)])
def test_resample_poly_matches_scipy(rec100, up, down):
    ours = dsp.resample_poly(rec100, up, down, axis=0)
    ref = ss.resample_poly(rec100, up, down, axis=0)
    assert ours.shape == ref.shape
    assert rel_err(ours, ref, axis=0) < F64_TOL
    ours32 = dsp.resample_poly(rec100.astype(np.float32), up, down, axis=0)
    assert ours32.dtype == np.float32 and rel_err(ours32, ref, axis=0) < F32_TOL


def test_resample_poly_mean_padding(rec100):
    ref = ss.resample_poly(rec100, 13, 36, axis=0, padtype="mean")
    assert rel_err(dsp.resample_poly(rec100, 13, 36, axis=0, padtype="mean"), ref, axis=0) < F64_TOL


@pytest.mark.parametrize("q", [2, 3, 4])
def test_decimate_matches_scipy(rec100, q):
    ref = ss.decimate(rec100, q, axis=0)
    ours = dsp.decimate(rec100, q, axis=0)
    assert ours.shape == ref.shape and rel_err(ours, ref, axis=0) < F64_TOL


# -- layout, batching, dtypes ------------------------------------------------------------------------

def test_batch_equals_loop_and_layouts_agree(all_records):
    x = all_records[:5, :, :20000]  # [5, 2, n]
    sos = dsp.butter(4, (0.5, 50.0), fs=360)
    batch = dsp.sosfiltfilt(sos, x)  # time on the last axis, [5, 2] batch
    loop = np.stack([[dsp.sosfiltfilt(sos, x[i, c]) for c in range(2)] for i in range(5)])
    np.testing.assert_array_equal(batch, loop)
    # [n, ch] layout filtered along axis 0 gives the same numbers, and keeps its layout
    nch = np.ascontiguousarray(x[0].T)
    y = dsp.sosfiltfilt(sos, nch, axis=0)
    assert y.shape == nch.shape
    np.testing.assert_array_equal(y, batch[0].T)
    # 3-D with time in the middle
    mid = np.ascontiguousarray(np.moveaxis(x, 2, 1))  # [5, n, 2]
    np.testing.assert_array_equal(dsp.sosfiltfilt(sos, mid, axis=1), np.moveaxis(batch, 2, 1))
    # a non-contiguous view (every other record)
    np.testing.assert_array_equal(dsp.sosfiltfilt(sos, x[::2]), batch[::2])


def test_thread_count_does_not_change_results(all_records):
    x = all_records[:8, 0, :30000]
    sos = dsp.butter(4, (0.5, 50.0), fs=360)
    np.testing.assert_array_equal(dsp.sosfiltfilt(sos, x, workers=1), dsp.sosfiltfilt(sos, x, workers=2))


def test_integer_input_is_filtered_as_float64(rec100):
    digital = np.round(rec100 * 200).astype(np.int16)
    y = dsp.bandpass(digital, fs=360, axis=0)
    assert y.dtype == np.float64
    assert rel_err(y, dsp.bandpass(digital.astype(np.float64), fs=360, axis=0), axis=0) == 0.0


def test_gil_is_released(all_records):
    """While one thread is inside the C++ kernel, the main thread keeps running Python code.

    The worker notes the time right before and right after the kernel call; the main thread time-stamps its
    loop iterations. With the GIL held by the kernel, no main-thread iteration could fall inside that window.
    """
    x = np.ascontiguousarray(all_records[:, 0, :])  # 48 leads of 30 min: ~0.1 s on one thread (8 took 0.02 s)
    sos = dsp.butter(4, (0.5, 50.0), fs=360)
    window = {}
    done = threading.Event()

    def work():
        window["start"] = time.perf_counter()
        dsp.sosfiltfilt(sos, x, workers=1)
        window["end"] = time.perf_counter()
        done.set()

    stamps = []
    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        stamps.append(time.perf_counter())
    t.join()
    stamps = np.asarray(stamps)
    inside = np.count_nonzero((stamps > window["start"]) & (stamps < window["end"]))
    assert window["end"] - window["start"] > 0.02  # the kernel really ran for a while
    assert inside > 1000, (inside, window)


# -- bad input ---------------------------------------------------------------------------------------

def test_errors_are_clear():
    with pytest.raises(ValueError, match="Nyquist|fs/2"):
        dsp.butter(4, (0.5, 200.0), fs=360)
    with pytest.raises(ValueError, match="low band edge"):
        dsp.butter(4, (40.0, 0.5), fs=360)
    with pytest.raises(ValueError, match="positive integer"):
        dsp.butter(0, 10.0, "lowpass", fs=360)
    with pytest.raises(ValueError, match="btype"):
        dsp.butter(4, 10.0, "sideways", fs=360)
    with pytest.raises(ValueError, match="two critical"):
        dsp.butter(4, 10.0, "bandpass", fs=360)
    sos = dsp.butter(4, (0.5, 50.0), fs=360)
    with pytest.raises(ValueError, match="too short"):
        dsp.sosfiltfilt(sos, np.ones(20))
    x = np.ones(5000)
    x[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dsp.sosfiltfilt(sos, x)
    # the same error from the time-split path (one long row) and the cache-blocked path (many long rows)
    long = np.ones(400_000)
    long[300_000] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        dsp.sosfiltfilt(sos, long)
    rows = np.ones((8, 400_000))
    rows[5, 123_456] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        dsp.sosfiltfilt(sos, rows)
    with pytest.raises(ValueError, match="shape"):
        dsp.sosfiltfilt(np.ones((2, 5)), np.ones(5000))
    bad = sos.copy()
    bad[0, 3] = 2.0
    with pytest.raises(ValueError, match="ones"):
        dsp.sosfiltfilt(bad, np.ones(5000))
    with pytest.raises(ValueError, match="numeric"):
        dsp.sosfiltfilt(sos, np.array(["a"] * 100))
    with pytest.raises(ValueError, match="positive integers"):
        dsp.resample_poly(np.ones(100), 0, 3)
    with pytest.raises(ValueError, match="Nyquist"):
        dsp.bandpass(np.ones(5000), fs=100, low=0.5, high=50.0)


@pytest.mark.parametrize("num", [21667, 60000 * 500 // 360, 60000, 30001, 12345, 120000])
def test_fft_resample_matches_scipy(rec100, num):
    ref = ss.resample(rec100, num, axis=0)
    ours = dsp.resample(rec100, num, axis=0)
    assert ours.shape == ref.shape and rel_err(ours, ref, axis=0) < F64_TOL
    ours32 = dsp.resample(rec100.astype(np.float32), num, axis=0)
    assert ours32.dtype == np.float32 and rel_err(ours32, ref, axis=0) < F32_TOL


def test_resample_ratio():
    assert dsp.resample_ratio(360, 130) == (13, 36)
    assert dsp.resample_ratio(360, 500) == (25, 18)
    assert dsp.resample_ratio(500, 100) == (1, 5)


# -- one long row: the row is split in time across the SIMD lanes ----------------------------------

@pytest.mark.parametrize("order,band", [(4, (0.5, 50.0)), (2, (5.0, 15.0)), (3, (0.5, 40.0))])
def test_sosfiltfilt_single_rows_all_records(all_records, order, band):
    """Each record's lead filtered alone (the time-split path) equals scipy on every MIT-BIH record."""
    sos = ss.butter(order, band, btype="bandpass", fs=360, output="sos")
    worst = 0.0
    for rec in all_records:
        for lead in rec:
            worst = max(worst, rel_err(dsp.sosfiltfilt(sos, lead), ss.sosfiltfilt(sos, lead)))
    assert worst < F64_TOL


def test_time_split_equals_row_lanes_to_rounding(all_records):
    """A long row alone (split in time) and the same row inside a batch (rows as lanes) agree to 1e-13."""
    sos = dsp.butter(2, (5.0, 15.0), fs=360)
    x = all_records[:4, 0]  # four full records: the batch path
    batch = dsp.sosfiltfilt(sos, x)
    for i in range(4):
        alone = dsp.sosfiltfilt(sos, x[i])
        assert rel_err(alone, batch[i]) < 1e-13
    # float32 and padding variants on the split path
    assert rel_err(dsp.sosfiltfilt(sos, x[0].astype(np.float32)), batch[0]) < F32_TOL
    for padtype, padlen in [("even", None), ("constant", 500), (None, None)]:
        ref = ss.sosfiltfilt(sos, x[0], padtype=padtype, padlen=padlen)
        assert rel_err(dsp.sosfiltfilt(sos, x[0], padtype=padtype, padlen=padlen), ref) < F64_TOL


def test_baseline_build_matches_scipy(tmp_path):
    """The baseline (non-AVX2) kernels, forced with ECGCORE_SIMD=baseline, pass the same parity checks."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, scipy.signal as ss, ecgcore.dsp as d\n"
        "from ecgcore import _core\n"
        "assert _core.simd_path() == 'baseline', _core.simd_path()\n"
        "x = np.random.default_rng(0).normal(size=(3, 400000)).cumsum(axis=1) * 1e-3\n"
        "for o, b in [(4, (0.5, 50.0)), (2, (5.0, 15.0))]:\n"
        "    sos = ss.butter(o, b, btype='bandpass', fs=360, output='sos')\n"
        "    for y, r in [(d.sosfiltfilt(sos, x), ss.sosfiltfilt(sos, x)), (d.sosfiltfilt(sos, x[0]), ss.sosfiltfilt(sos, x[0])),\n"
        "                 (d.sosfilt(sos, x), ss.sosfilt(sos, x))]:\n"
        "        e = np.max(np.abs(y - r)) / np.max(np.abs(r))\n"
        "        assert e < 1e-9, e\n"
        "print('ok')\n"
    )
    env = dict(os.environ, ECGCORE_SIMD="baseline")
    env["PYTHONPATH"] = os.environ["ECGCORE_PKG_PARENT"] + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_simd_path_is_reported():
    from ecgcore import _core

    assert _core.simd_path() in ("avx2", "baseline")


def test_blocked_path_any_row_alignment(all_records):
    """Many long rows through the cache-blocked driver, whose final stores stream when the rows share their
    alignment: aligned rows, rows offset by one sample, and rows whose alignments differ all equal scipy."""
    sos = ss.butter(4, (0.5, 50.0), btype="bandpass", fs=360, output="sos")
    x = np.ascontiguousarray(all_records[:5, 0, :400_001])
    for view in (x, x[:, 1:], x[1:, 3:]):
        assert rel_err(dsp.sosfiltfilt(sos, view), ss.sosfiltfilt(sos, view)) < F64_TOL
