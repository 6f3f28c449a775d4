"""Segmentation: parity with plain NumPy slicing on real records, windows and seed labels, sequences, RR."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from ecgcore.datasets.mitdb import RECORDS, aami_labels
from ecgcore.dsp.segment import beat_sequences, rr_features, segment_beats, segment_windows, window_labels

FS = 360.0


def numpy_beats(x, peaks, before, after, edge="drop", pad_value=0.0):
    """Plain NumPy reference: slice x[r - before : r + after + 1] per beat."""
    beats, kept = [], []
    for i, r in enumerate(peaks):
        if r - before >= 0 and r + after < x.size:
            beats.append(x[r - before: r + after + 1])
        elif edge == "pad":
            padded = np.pad(x, (before, after), constant_values=pad_value)
            beats.append(padded[r: r + before + after + 1])
        else:
            continue
        kept.append(i)
    return np.array(beats).reshape(len(kept), before + 1 + after), np.array(kept, dtype=np.int64)


def annotated_beats(sample, symbol):
    labels = aami_labels(symbol)
    return sample[labels != ""], labels[labels != ""]


def check_record(load_mitdb, name):
    x, sample, symbol, _ = load_mitdb(name)
    peaks, _ = annotated_beats(sample, symbol)
    beats, kept = segment_beats(x, peaks)
    ref, ref_kept = numpy_beats(x, peaks, 93, 93)
    np.testing.assert_array_equal(beats, ref)
    np.testing.assert_array_equal(kept, ref_kept)
    # Beat count = annotated beats minus the documented edge drops (R within 93 samples of an end).
    edge = np.count_nonzero((peaks < 93) | (peaks >= x.size - 93))
    assert beats.shape == (peaks.size - edge, 187)
    assert np.all(beats[:, 93] == x[peaks[kept]])


@pytest.mark.parametrize("name", ["100", "207", "232"])
def test_beats_equal_numpy_slicing(load_mitdb, name):
    check_record(load_mitdb, name)


@pytest.mark.slow
def test_beats_equal_numpy_slicing_all_records(load_mitdb):
    for name in RECORDS:
        check_record(load_mitdb, name)


def test_pad_policy_and_multilead(load_mitdb):
    x, sample, symbol, rec = load_mitdb("100")
    peaks = np.array([0, 50, 1000, x.size - 10, x.size - 1])
    beats, kept = segment_beats(x, peaks, before=93, after=93, edge="pad", pad_value=-7.0)
    ref, ref_kept = numpy_beats(x, peaks, 93, 93, edge="pad", pad_value=-7.0)
    np.testing.assert_array_equal(beats, ref)
    np.testing.assert_array_equal(kept, np.arange(5))
    _, kept_drop = segment_beats(x, peaks)
    np.testing.assert_array_equal(kept_drop, [2])
    # Two leads share the R-peaks: (2, n_kept, 187), each lead equal to its own single-lead cut.
    both = rec.p_signal.T
    b2, k2 = segment_beats(both, sample[5:50], before=90, after=110)
    assert b2.shape == (2, k2.size, 201)
    for lead in range(2):
        np.testing.assert_array_equal(b2[lead], segment_beats(both[lead], sample[5:50], before=90, after=110)[0])
    np.testing.assert_array_equal(segment_beats(rec.p_signal, sample[5:50], axis=0)[0],
                                  segment_beats(both, sample[5:50])[0])


def test_dtypes_are_kept(load_mitdb):
    x, sample, _, _ = load_mitdb("100")
    b32, _ = segment_beats(x.astype(np.float32), sample[1:20])
    b64, _ = segment_beats(x, sample[1:20])
    assert b32.dtype == np.float32 and b64.dtype == np.float64
    np.testing.assert_array_equal(b32, b64.astype(np.float32))
    assert segment_windows(x.astype(np.float32)).dtype == np.float32


def test_resampling_on_the_way(load_mitdb):
    x, sample, symbol, _ = load_mitdb("100")
    x = x[: 360 * 60]
    peaks, _ = annotated_beats(sample[sample < x.size], symbol[sample < x.size])
    beats, kept = segment_beats(x, peaks, before=40, after=40, fs=360, target_fs=130)
    y = scipy.signal.resample_poly(x, 13, 36)  # the reference resampler
    ref, ref_kept = numpy_beats(y, np.rint(peaks * 130 / 360).astype(np.int64), 40, 40)
    np.testing.assert_array_equal(kept, ref_kept)
    np.testing.assert_allclose(beats, ref, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="fs and target_fs"):
        segment_beats(x, peaks, target_fs=130)


def test_windows_and_seed_labels(load_mitdb):
    x, sample, symbol, _ = load_mitdb("208")
    w = segment_windows(x, size=3600, step=1800)
    assert w.shape == (360, 3600)  # 650,000 samples -> 360 windows (SPEC §3.1)
    ref = np.lib.stride_tricks.sliding_window_view(x, 3600)[::1800]
    np.testing.assert_array_equal(w, ref)
    labels = window_labels(sample, symbol, n_samples=x.size)
    # The seed's rule transcribed literally (SPEC §3.1).
    normal, abnormal = set("N."), set("LRBAaJSVrFejnE/fQ?")
    expected = []
    for start in range(0, x.size - 3600 + 1, 1800):
        inside = [s for t, s in zip(sample, symbol) if start <= t < start + 3600]
        n_norm = sum(s in normal for s in inside)
        n_abn = sum(s in abnormal for s in inside)
        expected.append(1 if n_abn > n_norm else 0)
    np.testing.assert_array_equal(labels, expected)
    assert 0 < labels.sum() < labels.size
    # Batch of records: (2, 360, 3600), each row as alone.
    w2 = segment_windows(np.stack([x, x[::-1]]))
    np.testing.assert_array_equal(w2[1], segment_windows(x[::-1].copy()))
    assert segment_windows(x[:100]).shape == (0, 3600)


def test_beat_sequences_label_of_last_beat():
    beats = np.arange(10 * 4, dtype=np.float32).reshape(10, 4)
    labels = np.array(list("NNVNSNNFNV"))
    seq, lab = beat_sequences(beats, labels)
    assert seq.shape == (8, 3, 4)
    for i in range(8):
        np.testing.assert_array_equal(seq[i], beats[i:i + 3])
        assert lab[i] == labels[i + 2]
    seq, lab = beat_sequences(beats, labels, length=4, stride=3)
    assert [s[0, 0] for s in seq] == [0, 12, 24] and list(lab) == ["N", "N", "V"]
    seq, lab = beat_sequences(beats[:2], labels[:2])
    assert seq.shape == (0, 3, 4) and lab.size == 0
    with pytest.raises(ValueError, match="one entry per beat"):
        beat_sequences(beats, labels[:5])


def test_rr_features_equal_numpy(load_mitdb):
    _, sample, symbol, _ = load_mitdb("119")
    peaks, _ = annotated_beats(sample, symbol)
    f = rr_features(peaks, fs=FS, local_beats=10)
    rr = np.diff(peaks) / FS
    np.testing.assert_allclose(f[1:, 0], rr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f[:-1, 1], rr, rtol=0, atol=1e-12)
    assert np.isnan(f[0, 0]) and np.isnan(f[-1, 1])
    local = [np.mean(rr[max(0, i - 10): i]) for i in range(1, peaks.size)]
    np.testing.assert_allclose(f[1:, 2], local, rtol=0, atol=1e-9)
    np.testing.assert_allclose(f[:, 3], rr.mean(), rtol=1e-12)


def test_bad_arguments(load_mitdb):
    x = np.zeros(1000)
    with pytest.raises(ValueError, match="outside the signal"):
        segment_beats(x, [1000])
    with pytest.raises(ValueError, match="edge"):
        segment_beats(x, [500], edge="wrap")
    with pytest.raises(ValueError, match="before"):
        segment_beats(x, [500], before=-1)
    with pytest.raises(ValueError, match="integer"):
        segment_beats(x, [500.5])
    with pytest.raises(ValueError, match="1-D"):
        segment_beats(x, [[500]])
    with pytest.raises(ValueError, match="size and step"):
        segment_windows(x, size=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        rr_features([5, 3], fs=FS)
    with pytest.raises(ValueError, match="fs"):
        rr_features([1, 3], fs=0)


def test_rr_intervals_v2_prematurity_pause_and_irregularity():
    """``rr-intervals-v2`` by its definition: v1's four columns, then pre/local, post/pre and the robust RR
    irregularity. A sinus rhythm (0.8 s) with one premature beat (0.5 s, then a 1.1 s pause): the premature beat's
    prematurity is 0.5 / local, its pause ratio 2.2, and the isolated ectopic leaves the irregularity (a median of
    |dRR|) at 0; an AF-like rhythm (RR uniform 0.4-1.2 s) is irregular everywhere."""
    from ecgcore.pipelines.recipes.beats_scalograms import (RR_FEATURE_FUNCTIONS, rr_features_for_beats,
                                                           rr_features_for_beats_v2)

    fs = 360.0
    rr = np.full(60, 0.8)
    rr[30], rr[31] = 0.5, 1.1
    peaks = np.round(np.concatenate([[1.0], 1.0 + np.cumsum(rr)]) * fs).astype(np.int64)
    f2 = rr_features_for_beats_v2(peaks, fs=fs)
    assert RR_FEATURE_FUNCTIONS["rr-intervals-v2"] is rr_features_for_beats_v2 and f2.shape == (61, 7)
    np.testing.assert_array_equal(f2[:, :4], rr_features_for_beats(peaks, fs=fs))
    b = 31  # the premature beat: its pre-RR is rr[30]
    local = np.mean(np.r_[0.8 * np.ones(9), 0.5])  # mean of the last 10 pre-RR, its own included
    assert f2[b, 4] == pytest.approx(0.5 / local, abs=2e-3)
    assert f2[b, 5] == pytest.approx(1.1 / 0.5, abs=5e-3)
    assert np.abs(f2[:, 6]).max() < 1e-2  # one ectopic beat: median |dRR| stays ~0 (sample rounding only)
    assert np.median(np.abs(f2[40:, 4] - 1)) < 1e-2 and np.median(np.abs(f2[40:, 5] - 1)) < 1e-2
    rng = np.random.default_rng(0)
    af = np.round(np.concatenate([[1.0], 1.0 + np.cumsum(rng.uniform(0.4, 1.2, 200))]) * fs).astype(np.int64)
    irr = rr_features_for_beats_v2(af, fs=fs)[:, 6]
    assert (irr[10:-10] > 0.1).all() and np.median(irr) > 0.2  # |U1 - U2| / 0.8: median ~0.29


def test_rr_morph_v3_compares_each_beat_with_the_records_own_beat(mitdb_dir):
    """``rr-morph-v3``: v2's seven RR columns, then seven morphology columns relative to the record's median beat.
    Synthetic: a sinus rhythm of one narrow QRS shape with every 10th beat wide and inverted (a VEB-like beat): the
    normal beats correlate ~1 with the template over the QRS and the wide ones negatively, with a QRS-width ratio
    above 2 and an rms difference above 1. The columns are ratios and correlations, so scaling the signal and adding
    an offset change nothing. Real: on record 119 (bigeminy) the annotated V beats differ from the record's
    template in QRS and ST-T correlation, QRS rms and width, the N beats do not. Without the signal the feature function refuses."""
    from ecgcore.pipelines.recipes.beats_scalograms import (RR_FEATURE_FUNCTIONS, beat_side_features,
                                                           rr_features_for_beats_v2, rr_morph_features_v3)

    fs = 360.0
    n_beats = 80
    peaks = np.round((1.0 + 0.8 * np.arange(n_beats)) * fs).astype(np.int64)
    t = np.arange(int(peaks[-1] + fs)) / fs
    x = np.zeros_like(t)
    wide = np.zeros(n_beats, bool)
    wide[5::10] = True
    for i, p in enumerate(peaks):
        tc = t - p / fs
        if wide[i]:
            x += -1.2 * np.exp(-0.5 * (tc / 0.04) ** 2)
        else:
            x += np.exp(-0.5 * (tc / 0.012) ** 2) + 0.15 * np.exp(-0.5 * ((tc + 0.18) / 0.025) ** 2)
        x += 0.3 * np.exp(-0.5 * ((tc - 0.3) / 0.05) ** 2)
    f = rr_morph_features_v3(peaks, fs=fs, signal=x)
    assert RR_FEATURE_FUNCTIONS["rr-morph-v3"] is rr_morph_features_v3 and f.shape == (n_beats, 14)
    np.testing.assert_array_equal(f[:, :7], rr_features_for_beats_v2(peaks, fs=fs))
    inner = np.arange(n_beats) > 1
    assert f[~wide & inner, 7].min() > 0.99 and f[wide, 7].max() < 0.0
    assert f[wide, 11].min() > 2.0 and np.abs(f[~wide & inner, 11] - 1).max() < 0.2
    assert f[wide, 10].min() > 1.0 and f[~wide & inner, 10].max() < 0.2
    np.testing.assert_allclose(rr_morph_features_v3(peaks, fs=fs, signal=3.0 * x + 7.5), f, atol=1e-4)
    with pytest.raises(ValueError, match="need the signal"):
        beat_side_features("rr-morph-v3", peaks, fs=fs)
    np.testing.assert_array_equal(beat_side_features("rr-intervals-v2", peaks, fs=fs), f[:, :7])
    v4 = beat_side_features("rr-morph-v4", peaks, fs=fs, signal=x)  # v3 without the P-region columns 8 and 13
    np.testing.assert_array_equal(v4, f[:, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12]])

    from ecgcore.io import read_record

    rec = read_record(mitdb_dir / "119")
    ann = rec.annotations
    sym = np.asarray(ann.symbol)
    keep = np.isin(sym, ["N", "V"]) & (ann.sample > 93) & (ann.sample < rec.n_samples - 93)
    g = rr_morph_features_v3(ann.sample[keep], fs=rec.fs, signal=rec.signal[:, 0])
    med_n, med_v = np.median(g[sym[keep] == "N"], axis=0), np.median(g[sym[keep] == "V"], axis=0)
    assert med_n[7] > 0.95 and med_v[7] < 0.8  # QRS correlation with the record's template (V measured 0.68)
    assert med_n[9] > 0.95 and med_v[9] < 0.0  # ST-T correlation: a VEB's T wave is discordant
    assert med_n[10] < 0.3 and med_v[10] > 1.0 and med_v[11] > 2 * med_n[11]  # QRS rms difference, width ratio


def test_rr_morph_v5_takes_the_usual_beat_from_the_slowest_quarter():
    """``rr-morph-v5``: v3's columns, the template and the P-region reference taken from the beats whose pre-RR
    reaches the record's 75th percentile. Synthetic: premature beats (pre-RR 0.55 s, inverted P wave of twice the amplitude) outnumber the
    normal ones (after a 1.3 s pause, upright P) two to one. v3's median beat is the premature beat, so its P-region
    correlation calls the normal beats unusual; v5's template is the normal beat, so the premature beats are the
    unusual ones, and v5's P-region rms is the normal beats' own (ratio ~1) where v3's is the premature
    template's. On a regular rhythm every beat is among the slowest quarter and v5 equals v3 but for the P-region
    rms, which v5 compares with the beats' own median rms."""
    from ecgcore.pipelines.recipes.beats_scalograms import (RR_FEATURE_FUNCTIONS, beat_side_features,
                                                           rr_morph_features_v3, rr_morph_features_v5)

    fs = 360.0
    gaps = np.tile([1.3, 0.55, 0.55], 40)
    peaks = np.round((1.0 + np.concatenate([[0.0], np.cumsum(gaps)])) * fs).astype(np.int64)
    premature = np.r_[False, gaps < 1.0]  # each beat's pre-RR below 1 s
    t = np.arange(int(peaks[-1] + fs)) / fs
    x = np.zeros_like(t)
    for i, p in enumerate(peaks):
        tc = t - p / fs
        p_wave = -0.4 if premature[i] else 0.2
        x += np.exp(-0.5 * (tc / 0.012) ** 2) + p_wave * np.exp(-0.5 * ((tc + 0.16) / 0.025) ** 2)
        x += 0.3 * np.exp(-0.5 * ((tc - 0.3) / 0.05) ** 2)
    assert premature.mean() > 0.6
    f3, f5 = rr_morph_features_v3(peaks, fs=fs, signal=x), rr_morph_features_v5(peaks, fs=fs, signal=x)
    assert RR_FEATURE_FUNCTIONS["rr-morph-v5"] is rr_morph_features_v5 and f5.shape == (peaks.size, 14)
    np.testing.assert_array_equal(f5[:, :7], f3[:, :7])
    inner = (np.arange(peaks.size) > 1) & (np.arange(peaks.size) < peaks.size - 1)
    p_corr3, p_corr5 = f3[:, 8], f5[:, 8]
    assert p_corr3[inner & ~premature].max() < 0.0 < p_corr3[inner & premature].min()  # v3: normal beats odd
    assert p_corr5[inner & premature].max() < 0.0 < p_corr5[inner & ~premature].min()  # v5: premature beats odd
    # P-region rms: v5 against the normal beats' own (normal ~1, premature ~2), v3 against the premature template
    assert np.abs(f5[inner & ~premature, 13] - 1).max() < 0.1 and f5[inner & premature, 13].min() > 1.5
    assert f3[inner & ~premature, 13].max() < 0.7
    np.testing.assert_array_equal(beat_side_features("rr-morph-v5", peaks, fs=fs, signal=x), f5)

    regular = np.round((1.0 + 0.8 * np.arange(60)) * fs).astype(np.int64)
    y = np.zeros(int(regular[-1] + fs))
    ty = np.arange(y.size) / fs
    for p in regular:
        tc = ty - p / fs
        y += np.exp(-0.5 * (tc / 0.012) ** 2) + 0.15 * np.exp(-0.5 * ((tc + 0.18) / 0.025) ** 2)
    g3, g5 = rr_morph_features_v3(regular, fs=fs, signal=y), rr_morph_features_v5(regular, fs=fs, signal=y)
    np.testing.assert_allclose(g5[:, :13], g3[:, :13], atol=1e-6)
    assert np.abs(np.median(g5[2:-1, 13]) - 1.0) < 1e-3  # P-region rms against the beats' own median
    with pytest.raises(ValueError, match="usual"):
        rr_morph_features_v3(regular, fs=fs, signal=y, usual="fast")
