"""R-peak detector: EC57 accuracy on MIT-BIH, other sampling rates, batch/dtype consistency, errors, GIL."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from ecgcore.datasets.ec57 import beat_mask, evaluate_qrs, gross, match_beats
from ecgcore.datasets.mitdb import RECORDS
from ecgcore.dsp.peaks import detect_r_peaks, refine_r_peaks

FS = 360.0
# A clean record, one with many PVCs, one with noise, one with paced beats.
QUICK = ["100", "119", "208", "107"]


@pytest.mark.parametrize("name", QUICK)
def test_detector_matches_reference_annotations(load_mitdb, name):
    x, sample, symbol, _ = load_mitdb(name)
    stats = evaluate_qrs(sample, symbol, detect_r_peaks(x, fs=FS), fs=FS, record=name, start_s=0.0)
    # 208 (992 PVCs, 373 fusion beats) misses 28 beats from 0:00 with the noise-aware threshold (98.98 %; 21 with the
    # fixed one, 15 with one band)
    assert stats.se >= 98.9 and stats.ppv >= 99.4, stats


def _gross_at(load_mitdb, names, fs_out, start_s):
    """Gross EC57 stats of the detector on MIT-BIH records resampled (scipy) to fs_out, annotations rescaled."""
    stats = []
    for name in names:
        x, sample, symbol, _ = load_mitdb(name)
        y = x if fs_out == 360 else scipy.signal.resample_poly(x, fs_out, 360)
        ref = np.rint(sample * fs_out / 360).astype(np.int64)
        stats.append(evaluate_qrs(ref, symbol, detect_r_peaks(y, fs=float(fs_out)), fs=float(fs_out), record=name,
                                  start_s=start_s))
    return gross(stats)


@pytest.mark.slow
def test_gross_ec57_all_48_records(load_mitdb):
    xs, anns = [], []
    for name in RECORDS:
        x, sample, symbol, _ = load_mitdb(name)
        xs.append(x)
        anns.append((sample, symbol))
    detections = detect_r_peaks(np.stack(xs), fs=FS)
    for start in (300.0, 0.0):
        g = gross(evaluate_qrs(s, y, d, fs=FS, start_s=start) for (s, y), d in zip(anns, detections))
        # issue 25: not lower than the single-band detector's 99.76 / 99.83 % (measured 99.83 / 99.89 from 5:00)
        assert g.se >= 99.76 and g.ppv >= 99.83, (start, g.se, g.ppv)
    for fs_out in (128, 250, 500, 1000):  # the same database resampled (measured 99.82-99.83 / 99.88-99.89 %)
        g = _gross_at(load_mitdb, RECORDS, fs_out, 300.0)
        assert g.se >= 99.7 and g.ppv >= 99.8, (fs_out, g.se, g.ppv)


# Clean, PVCs, noisy, paced, and three hard ones (noise, multiform PVCs, bigeminy with low-amplitude beats).
RATE_RECORDS = QUICK + ["105", "203", "228"]


@pytest.mark.parametrize("fs_out", [128, 250, 500, 1000])
def test_gross_at_other_sampling_rates(load_mitdb, fs_out):
    """Issue 25: Se and +P hold on whole records resampled to 128, 250, 500 and 1000 Hz."""
    at360 = _gross_at(load_mitdb, RATE_RECORDS, 360, 300.0)
    g = _gross_at(load_mitdb, RATE_RECORDS, fs_out, 300.0)
    assert g.se >= at360.se - 0.1 and g.ppv >= at360.ppv - 0.1, (fs_out, g, at360)
    assert g.se >= 99.0 and g.ppv >= 99.0, (fs_out, g)


@pytest.fixture(scope="module")
def em_stress(mitdb_dir, data_dir):
    """Records 118 and 119 with NSTDB electrode-motion noise at 12 dB, built as nst does (EC57's own test)."""
    from ecgcore.datasets.noise import noise_stress
    from ecgcore.io import read_record

    em = read_record(data_dir / "nstdb" / "em")
    ma = read_record(data_dir / "nstdb" / "ma")
    out = {}
    for name in ("118", "119"):
        clean = read_record(mitdb_dir / name)
        out[name] = (clean, {k: noise_stress(clean, noise, 12.0).signal[:, 0] for k, noise in (("em", em), ("ma", ma))})
    return out


def _stress_f1(em_stress, noise, **kw):
    stats = [evaluate_qrs(clean.annotations.sample, clean.annotations.symbol,
                          detect_r_peaks(noisy[noise], fs=clean.fs, **kw), fs=clean.fs, start_s=300.0)
             for clean, noisy in em_stress.values()]
    return gross(stats).f1


def test_two_bands_hold_up_in_electrode_motion_noise(em_stress):
    """Issue 25: at 12 dB em noise the contrast-mixed second band removes most false positives of the classic
    single band (fixed threshold, no early-beat rule: measured pooled F1 98.9 % vs 96.2 %; the default, with the
    noise-aware threshold and the early-beat rule, 99.2 %), and muscle noise at 12 dB stays clean."""
    two = _stress_f1(em_stress, "em", noise_gain=0.0, early_rr=0.0)
    one = _stress_f1(em_stress, "em", band2=None, integration=0.15, noise_gain=0.0, early_rr=0.0)
    assert two >= 98.7 and two >= one + 2.0, (two, one)
    assert _stress_f1(em_stress, "em") >= 99.0
    assert _stress_f1(em_stress, "ma") >= 99.0


@pytest.fixture(scope="module")
def ma_stress(mitdb_dir, data_dir):
    """Record 119 (tuning record) with NSTDB muscle noise at 6 dB, as nst builds it."""
    from ecgcore.datasets.noise import noise_stress
    from ecgcore.io import read_record

    clean = read_record(mitdb_dir / "119")
    return clean, noise_stress(clean, read_record(data_dir / "nstdb" / "ma"), 6.0).signal[:, 0]


def test_noise_aware_threshold_cuts_false_positives_in_muscle_noise(ma_stress, load_mitdb):
    """Issue 25: the threshold fraction grows with the noise-to-signal level ratio (noise_gain 1.5 above a ratio
    of 0.05). On 119 with muscle noise at 6 dB it removes false positives without losing beats (measured F1 95.07
    vs 93.94 %, +P 90.75 vs 88.71 %, Se 99.82 both); on the clean record 100 it finds the same beats as the fixed
    threshold."""
    clean, noisy = ma_stress

    def stats(**kw):
        return evaluate_qrs(clean.annotations.sample, clean.annotations.symbol, detect_r_peaks(noisy, fs=clean.fs, **kw),
                            fs=clean.fs, start_s=300.0)

    aware, fixed = stats(early_rr=0.0), stats(noise_gain=0.0, early_rr=0.0)  # this rule alone (see the next test)
    assert aware.f1 >= fixed.f1 + 0.8 and aware.ppv >= fixed.ppv + 1.5 and aware.se >= fixed.se - 0.5, (aware, fixed)
    x = load_mitdb("100")[0]
    a, f = detect_r_peaks(x, fs=FS, early_rr=0.0), detect_r_peaks(x, fs=FS, noise_gain=0.0, early_rr=0.0)
    m, _ = match_beats(a, f, window=1)
    assert np.count_nonzero(m >= 0) >= max(a.size, f.size) - 2


def test_early_candidates_in_noise_need_the_size_of_a_beat(ma_stress, load_mitdb):
    """Issue 25: in a noisy stretch (noise level above 0.08 x the signal level) a candidate closer than half the mean
    RR interval to the previous beat must reach the signal level to count as a beat. On 119 with muscle noise at
    6 dB it removes false positives and no beat (measured 169 -> 137 false, 1,658 beats found both); on the clean
    record 100 it finds the same beats as without the rule."""
    clean, noisy = ma_stress

    def stats(**kw):
        return evaluate_qrs(clean.annotations.sample, clean.annotations.symbol, detect_r_peaks(noisy, fs=clean.fs, **kw),
                            fs=clean.fs, start_s=300.0)

    on, off = stats(), stats(early_rr=0.0)
    assert on.fp <= off.fp - 25 and on.tp >= off.tp - 2, (on, off)
    x = load_mitdb("100")[0]
    a, f = detect_r_peaks(x, fs=FS), detect_r_peaks(x, fs=FS, early_rr=0.0)
    m, _ = match_beats(a, f, window=1)
    assert np.count_nonzero(m >= 0) >= max(a.size, f.size) - 2
    with pytest.raises(ValueError, match="early_rr"):
        detect_r_peaks(x[:3600], fs=FS, early_rr=1.0)


def test_v1_preset_keeps_the_calibrated_detector(ma_stress):
    """``V1`` (signal-quality bSQI and HeartID beat alignment were calibrated with it) is the detector before issue
    25's noise-aware threshold, early-beat rule and wide-complex search-back: on 119 with muscle noise at 6 dB it
    equals all three switched off at the full rate, and differs from the default."""
    from ecgcore.dsp.peaks import V1

    clean, noisy = ma_stress
    v1 = detect_r_peaks(noisy, fs=clean.fs, **V1)
    off = detect_r_peaks(noisy, fs=clean.fs, noise_gain=0.0, early_rr=0.0, wide_level=0.0, detect_fs=None)
    assert np.array_equal(v1, off)
    assert not np.array_equal(v1, detect_r_peaks(noisy, fs=clean.fs))


def _wide_rhythm(burst: bool):
    """A synthetic trigeminy at 360 Hz: narrow beats (+-10 ms) and wide inverted ventricular beats (+-30 ms, 0.45 s
    after a narrow beat, 0.75 s before the next). Every fourth wide beat is 0.8 x the others' size, which the
    slope-energy stages miss; with ``burst`` the last of those is a lone wave of the same width turned upside
    down (about the same energy in every band, a shape the record never showed). Returns the signal, the beat
    samples, which of them are the small wide beats, and the burst's sample."""
    fs = 360.0
    t, times, small = 1.0, [], []
    for k in range(150):
        wide = k % 3 == 2
        t += 0.45 if wide else (0.75 if k % 3 == 0 and k > 0 else 0.6)
        times.append(t)
        small.append(wide and k % 12 == 11)
    tt = np.arange(int((t + 2.0) * fs)) / fs
    x = 0.01 * np.random.default_rng(0).standard_normal(tt.size)
    small = np.array(small)
    burst_at = np.flatnonzero(small)[-1] if burst else -1
    for k, tb in enumerate(times):
        tc = tt - tb
        if k == burst_at:
            x += 0.96 * np.exp(-0.5 * (tc / 0.03) ** 2)  # the wide beat upside down
        elif k % 3 == 2:
            x += (0.96 if small[k] else 1.2) * (-np.exp(-0.5 * (tc / 0.03) ** 2) + 0.3 * np.exp(-0.5 * ((tc - 0.25) / 0.06) ** 2))
        else:
            x += np.exp(-0.5 * (tc / 0.01) ** 2) + 0.25 * np.exp(-0.5 * ((tc - 0.25) / 0.05) ** 2)
    beats = np.round(np.array(times) * fs).astype(np.int64)
    return x, beats, small, (beats[burst_at] if burst else None)


@pytest.mark.parametrize("detect_fs", [120.0, None])
def test_wide_complex_search_back_finds_missed_ventricular_beats(detect_fs):
    """Issue 25: a gap the slope-energy search-back left empty gets a beat where the low-band energy is that of a
    beat and the complex has the shape of two earlier beats. Synthetic trigeminy, detection at 120 Hz and at the
    full rate: the 12 smaller wide beats are missed without the stage and found with it, the other beats are found
    either way; the same wave upside down is not a beat (its shape was never seen; with the shape test off it is
    taken)."""
    fs = 360.0
    x, beats, small, _ = _wide_rhythm(burst=False)
    for level, want in ((0.0, ~small), (0.7, np.ones_like(small))):
        p = detect_r_peaks(x, fs=fs, wide_level=level, detect_fs=detect_fs)
        m, _ = match_beats(beats, p, window=int(0.15 * fs))
        assert np.array_equal(m >= 0, want) and p.size == np.count_nonzero(want), (level, p.size)
    x, beats, small, burst = _wide_rhythm(burst=True)
    p = detect_r_peaks(x, fs=fs, detect_fs=detect_fs)
    m, _ = match_beats(beats, p, window=int(0.15 * fs))
    assert np.count_nonzero(m[small] >= 0) == np.count_nonzero(small) - 1 and np.abs(p - burst).min() > 0.15 * fs
    assert p.size == beats.size - 1
    loose = detect_r_peaks(x, fs=fs, wide_corr=-1.0, detect_fs=detect_fs)
    assert np.abs(loose - burst).min() < 0.05 * fs  # without the shape test: taken for a beat


def test_wide_complex_search_back_on_mitdb(load_mitdb):
    """Record 208 (992 PVCs) from 0:00: more annotated beats found and no false detection added (measured 28 -> 21
    missed, 3 false either way); record 100 (no long gap) detects the same with and without. Option checks."""
    x, sample, symbol, _ = load_mitdb("208")
    on = evaluate_qrs(sample, symbol, detect_r_peaks(x, fs=FS), fs=FS, start_s=0.0)
    off = evaluate_qrs(sample, symbol, detect_r_peaks(x, fs=FS, wide_level=0.0), fs=FS, start_s=0.0)
    assert on.tp >= off.tp + 5 and on.fp <= off.fp, (on, off)
    x = load_mitdb("100")[0]
    assert np.array_equal(detect_r_peaks(x, fs=FS), detect_r_peaks(x, fs=FS, wide_level=0.0))
    for bad in ({"wide_corr": 1.5}, {"wide_level": -1.0}, {"wide_level": float("inf")}, {"wide_noise": -0.1}):
        with pytest.raises(ValueError, match="wide_"):
            detect_r_peaks(x[:3600], fs=FS, **bad)


def test_gaps_hold_the_last_sample_on_every_path(load_mitdb):
    """A NaN or infinite stretch is filled with the last finite sample before detection, on the decimated default
    path (whose finiteness check rides on the decimation) and at the full rate, float64 and float32."""
    x = load_mitdb("100")[0][: 360 * 120 + 2].copy()  # n mod 3 = 2: the last samples are no decimation tap
    filled = x.copy()
    gap = x.copy()
    gap[20000:20300] = np.nan
    gap[30000] = np.inf
    gap[-2:] = -np.inf  # the last samples: after the last decimated output's taps
    filled[20000:20300] = x[19999]
    filled[30000] = x[29999]
    filled[-2:] = x[-3]
    for kw in ({}, {"detect_fs": None}):
        np.testing.assert_array_equal(detect_r_peaks(gap, fs=FS, **kw), detect_r_peaks(filled, fs=FS, **kw))
        np.testing.assert_array_equal(detect_r_peaks(gap.astype(np.float32), fs=FS, **kw),
                                      detect_r_peaks(filled.astype(np.float32), fs=FS, **kw))


def test_refined_peaks_sit_on_reference_r_marks(load_mitdb):
    x, sample, symbol, _ = load_mitdb("100")
    ref = sample[beat_mask(symbol)]
    det = detect_r_peaks(x, fs=FS)
    ref_match, _ = match_beats(ref, det, window=54)
    offsets = det[ref_match[ref_match >= 0]] - ref[ref_match >= 0]
    assert np.median(np.abs(offsets)) <= 2
    assert np.percentile(np.abs(offsets), 95) <= 3


@pytest.mark.parametrize("fs_out", [100, 128, 130, 250, 500, 1000])
def test_any_sampling_rate(load_mitdb, fs_out):
    # Record 100 resampled with scipy (the reference resampler); annotations scaled to the new rate.
    x, sample, symbol, _ = load_mitdb("100")
    x = x[: 360 * 600]
    y = scipy.signal.resample_poly(x, fs_out, 360)
    keep = sample < x.size
    ref = np.rint(sample[keep] * fs_out / 360).astype(np.int64)
    stats = evaluate_qrs(ref, symbol[keep], detect_r_peaks(y, fs=float(fs_out)), fs=float(fs_out), start_s=0.0)
    assert stats.se >= 99.5 and stats.ppv >= 99.5, (fs_out, stats)


def test_agrees_with_neurokit2_on_a_clean_record(load_mitdb):
    nk = pytest.importorskip("neurokit2")
    x, _, _, _ = load_mitdb("100")
    x = x[: 360 * 300]
    _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=360), sampling_rate=360)
    theirs = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    ours = detect_r_peaks(x, fs=FS)
    ref_match, det_match = match_beats(theirs, ours, window=54)
    assert np.count_nonzero(ref_match >= 0) >= 0.995 * max(theirs.size, ours.size)


def test_batch_equals_loop_of_single_rows(load_mitdb):
    rows = np.stack([load_mitdb(n)[0][: 360 * 120] for n in ("100", "105", "203")])
    batch = detect_r_peaks(rows, fs=FS, workers=2)
    for row, got in zip(rows, batch):
        np.testing.assert_array_equal(got, detect_r_peaks(row, fs=FS, workers=1))
    # Any leading shape, and the time axis may be elsewhere.
    nested = detect_r_peaks(np.stack([rows[:2], rows[1:]]), fs=FS)
    assert len(nested) == 2 and len(nested[0]) == 2
    np.testing.assert_array_equal(nested[1][1], batch[2])
    np.testing.assert_array_equal(detect_r_peaks(rows.T, fs=FS, axis=0)[1], batch[1])


def test_float32_and_float64_agree(load_mitdb):
    x, sample, symbol, _ = load_mitdb("208")
    d64 = detect_r_peaks(x, fs=FS)
    d32 = detect_r_peaks(x.astype(np.float32), fs=FS)
    m, _ = match_beats(d64, d32, window=1)
    assert np.count_nonzero(m >= 0) >= 0.999 * max(d64.size, d32.size)
    assert abs(d64.size - d32.size) <= 2
    # Integer ADC counts are accepted and give the same beats as physical units (the detector is scale-free).
    _, _, _, rec = load_mitdb("100")
    digital = rec.adc()[:, 0]
    assert digital.dtype.kind == "i"
    m, _ = match_beats(detect_r_peaks(load_mitdb("100")[0], fs=FS), detect_r_peaks(digital, fs=FS), window=1)
    assert np.count_nonzero(m < 0) <= 2


def test_refine_is_the_refinement_stage_of_detection(load_mitdb):
    x, _, _, _ = load_mitdb("119")
    raw = detect_r_peaks(x, fs=FS, refine=False)
    np.testing.assert_array_equal(refine_r_peaks(x, raw, fs=FS), detect_r_peaks(x, fs=FS))
    moved = np.abs(refine_r_peaks(x, raw, fs=FS) - raw)
    assert moved.max() <= round(0.075 * FS)


def test_gaps_and_short_signals():
    rng = np.random.default_rng(0)
    assert detect_r_peaks(np.zeros(10), fs=FS).size == 0
    assert detect_r_peaks(np.zeros(3600), fs=FS).size == 0  # a flat line has no beats
    x = rng.standard_normal(3600)
    x[100:200] = np.nan  # gaps must not poison the whole record
    assert detect_r_peaks(x, fs=FS).dtype == np.int64


def test_bad_arguments():
    x = np.zeros(3600)
    with pytest.raises(ValueError, match="fs"):
        detect_r_peaks(x, fs=20.0)
    with pytest.raises(ValueError, match="fs"):
        detect_r_peaks(x, fs=None)
    with pytest.raises(ValueError, match="band"):
        detect_r_peaks(x, fs=FS, band=(15.0, 5.0))
    with pytest.raises(ValueError, match="search_back"):
        detect_r_peaks(x, fs=FS, search_back=0.5)
    with pytest.raises(ValueError, match="threshold"):
        detect_r_peaks(x, fs=FS, threshold=1.5)
    with pytest.raises(ValueError, match="band2"):
        detect_r_peaks(x, fs=FS, band2=(30.0, 15.0))
    with pytest.raises(ValueError, match="noise_gain"):
        detect_r_peaks(x, fs=FS, noise_gain=-1.0)
    with pytest.raises(ValueError, match="noise_knee"):
        detect_r_peaks(x, fs=FS, noise_knee=float("nan"))
    with pytest.raises(ValueError, match="dimension"):
        detect_r_peaks(np.float64(1.0), fs=FS)
    with pytest.raises(ValueError, match="real numbers"):
        detect_r_peaks(np.array(["a", "b"]), fs=FS)
    with pytest.raises(ValueError, match="outside the signal"):
        refine_r_peaks(x, [5000], fs=FS)
    with pytest.raises(ValueError, match="integer"):
        refine_r_peaks(x, [1.5], fs=FS)
    with pytest.raises(ValueError, match="1-D"):
        refine_r_peaks(np.zeros((2, 10)), [1], fs=FS)


def test_gil_is_released(load_mitdb, gil_stall):
    # 12 h of ECG at the full rate: about a quarter of a second of work on one thread
    # (the 120 Hz default path is fast enough that shorter inputs fall under the floor)
    x = np.tile(load_mitdb("100")[0], 24)
    elapsed, stall = gil_stall(lambda: detect_r_peaks(x, fs=FS, workers=1, detect_fs=None))
    assert elapsed > 0.1
    assert stall < 0.5 * elapsed, (elapsed, stall)


def test_refine_equals_numpy_transcription(load_mitdb):
    x, sample, symbol, _ = load_mitdb("203")
    x = x[: 360 * 60]
    peaks = sample[beat_mask(symbol) & (sample < x.size)]
    c = np.concatenate([[0.0], np.cumsum(x)])

    def centred_mean(k, h):
        a, b = max(0, k - h), min(x.size - 1, k + h)
        return (c[b + 1] - c[a]) / (b - a + 1)

    expected = []
    for p in peaks:
        ks = range(max(0, p - 27), min(x.size - 1, p + 27) + 1)
        y = [abs(centred_mean(k, 4) - centred_mean(k, 36)) for k in ks]
        expected.append(ks[int(np.argmax(y))])
    np.testing.assert_array_equal(refine_r_peaks(x, peaks, fs=FS), np.unique(expected))


def test_second_band_is_off_when_asked_or_above_the_rate(load_mitdb):
    x = load_mitdb("100")[0][: 360 * 120]
    one = detect_r_peaks(x, fs=FS, band2=None)
    np.testing.assert_array_equal(one, detect_r_peaks(x, fs=FS, band2=(170.0, 179.0)))  # 170 Hz >= 0.45 fs: off
    two = detect_r_peaks(x, fs=FS, band2=(15.0, 30.0), integration=0.15)
    m, _ = match_beats(one, two, window=round(0.05 * FS))  # on a clean record both find the same beats
    assert np.count_nonzero(m >= 0) >= 0.995 * max(one.size, two.size)


@pytest.mark.parametrize("fs_out", [360, 500])
def test_decimated_detection_keeps_the_beats(load_mitdb, fs_out):
    """detect_fs=120 (the default) runs stages 1-4 at fs / D (360 -> 120 Hz, 500 -> 125 Hz) and refines at fs: on the rate records
    the gross Se/+P stay within 0.1 point of full-rate detection (all 48 records at 360 Hz: 99.83 / 99.87 vs
    99.82 / 99.87 %) and beats found by both sit on the same samples (refinement at the full rate)."""
    st_full, st_dec, same = [], [], []
    for name in RATE_RECORDS:
        x, sample, symbol, _ = load_mitdb(name)
        y = x if fs_out == 360 else scipy.signal.resample_poly(x, fs_out, 360)
        ref = np.rint(sample * fs_out / 360).astype(np.int64)
        full = detect_r_peaks(y, fs=float(fs_out), detect_fs=None)
        dec = detect_r_peaks(y, fs=float(fs_out), detect_fs=120.0)
        st_full.append(evaluate_qrs(ref, symbol, full, fs=float(fs_out), record=name, start_s=300.0))
        st_dec.append(evaluate_qrs(ref, symbol, dec, fs=float(fs_out), record=name, start_s=300.0))
        j = np.clip(np.searchsorted(full, dec), 1, len(full) - 1)
        d = np.minimum(np.abs(full[j] - dec), np.abs(full[j - 1] - dec))
        same.append(np.mean(d[d < 0.05 * fs_out] == 0))
    g, h = gross(st_full), gross(st_dec)
    assert h.se >= g.se - 0.1 and h.ppv >= g.ppv - 0.1, (fs_out, g, h)
    assert min(same) > 0.98, same
    x = load_mitdb("100")[0][:20000]
    np.testing.assert_array_equal(detect_r_peaks(x, fs=FS, detect_fs=120.0), detect_r_peaks(x, fs=FS))  # the default
    with pytest.raises(ValueError, match="detect_fs"):
        detect_r_peaks(x, fs=FS, detect_fs=50.0)


@pytest.mark.parametrize("name, fs_out, offset, length, tol", [
    ("100", 120, 0.0, None, 2e-6), ("203", 120, 0.0, None, 2e-6), ("208", 125, 0.0, None, 2e-6),
    ("208", 120, 1e5, None, 2e-6), ("119", 120, 0.0, 3857, 2e-6), ("100", 360, 0.0, None, 1e-5)])
def test_float_bandpass_pair_matches_scipy(load_mitdb, name, fs_out, offset, length, tol):
    """The detector filters both bands at once in float32 lanes (issue 25's speed): each output is scipy's
    zero-phase order-2 Butterworth band-pass (odd padding of 1 s) to within 2e-6 of its peak value at the
    detection rates (measured <= 7.8e-7 on the AVX2 build, <= 1.2e-6 on the baseline build, on records 100, 203 and
    208, also at an offset of 1e5, and on a row just long enough for the lanes: 3,857 samples) and 1e-5 at 360 Hz
    (``detect_fs=None``: poles nearer the unit circle, whose rounding grows as 1 / (1 - r); measured 4.6e-6)."""
    from ecgcore import _core

    x, *_ = load_mitdb(name)
    y = x if fs_out == 360 else scipy.signal.resample_poly(x, fs_out, 360)
    y = (y if length is None else y[:length]) + offset
    b1, b2, lanes = _core.qrs_bandpasses(y, float(fs_out), 5.0, 15.0, 15.0, 30.0)
    assert lanes
    for out, band in ((b1, (5.0, 15.0)), (b2, (15.0, 30.0))):
        sos = scipy.signal.butter(2, band, btype="bandpass", fs=fs_out, output="sos")
        ref = scipy.signal.sosfiltfilt(sos, y, padtype="odd", padlen=int(fs_out))
        err = np.max(np.abs(out - ref)) / np.max(np.abs(ref))
        assert err < tol, (band, err)


@pytest.mark.parametrize("length, fs, band", [(3855, 120, (5.0, 15.0)), (20_000, 500, (5.0, 15.0)),
                                              (20_000, 120, (0.5, 40.0))])
def test_rows_outside_the_float_lanes_filter_in_double(load_mitdb, length, fs, band):
    """Rows too short for the float lanes' warm-ups (one sample under the threshold at 120 Hz), and cascades whose
    poles lie too near the unit circle for float (5-15 Hz at 500 Hz, 0.5-40 Hz at 120 Hz), take double sosfiltfilt:
    scipy's values to 1e-12."""
    from ecgcore import _core

    x, *_ = load_mitdb("100")
    y = scipy.signal.resample_poly(x, fs, 360)[:length]
    b1, b2, lanes = _core.qrs_bandpasses(y, float(fs), *band, 15.0, 30.0)
    assert not lanes
    for out, b in ((b1, band), (b2, (15.0, 30.0))):
        sos = scipy.signal.butter(2, b, btype="bandpass", fs=fs, output="sos")
        ref = scipy.signal.sosfiltfilt(sos, y, padtype="odd", padlen=fs)
        assert np.max(np.abs(out - ref)) <= 1e-12 * np.max(np.abs(ref))


@pytest.mark.parametrize("level", [0.0, 1e3, 1e5])
def test_flat_stretch_at_any_level_has_no_beats(load_mitdb, level):
    """A lead-off stretch (a constant, here 111 s of record 100) holds no detection at any level: the float lanes
    filter the signal's differences, so a constant of 1e5 leaves no rounding residue to detect."""
    x, *_ = load_mitdb("100")
    z = x.copy()
    z[50_000:90_000] = level
    r = detect_r_peaks(z, fs=FS)
    assert not np.any((r >= 50_000 + 360) & (r < 90_000 - 360)), r[(r >= 50_000) & (r < 90_000)]
    assert np.sum(r < 50_000) > 150  # the beats around it are still found


def test_baseline_build_detects_the_same(load_mitdb, mitdb_dir):
    """The baseline (x86-64-v2) build, forced with ECGCORE_SIMD=baseline, finds the same beats as this one: the float
    lanes round differently without FMA, never enough to move a detection (checked on 168 variants of 48 records
    when this path was written)."""
    import json
    import os
    import subprocess
    import sys

    from ecgcore import _core

    if _core.simd_path() == "baseline":
        pytest.skip("this build already runs the baseline kernels (no AVX2, or ECGCORE_SIMD=baseline)")
    names = ["100", "119", "203", "208"]
    code = ("import json, sys, wfdb\n"
            "from ecgcore.dsp.peaks import detect_r_peaks\n"
            "from ecgcore import _core\n"
            "assert _core.simd_path() == 'baseline'\n"
            "out = {}\n"
            "for r in sys.argv[2:]:\n"
            "    rec = wfdb.rdrecord(sys.argv[1] + '/' + r)\n"
            "    out[r] = detect_r_peaks(rec.p_signal[:, rec.sig_name.index('MLII')], fs=360.0).tolist()\n"
            "print(json.dumps(out))\n")
    env = dict(os.environ, ECGCORE_SIMD="baseline")
    env["PYTHONPATH"] = os.environ["ECGCORE_PKG_PARENT"] + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code, str(mitdb_dir), *names], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    base = json.loads(res.stdout.strip().splitlines()[-1])
    for r in names:
        x, *_ = load_mitdb(r)
        assert detect_r_peaks(x, fs=FS).tolist() == base[r], r
