"""HuBERT-ECG shard features (SPEC 5.2) against NumPy/SciPy transcriptions of the seed's dumping.py."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss
import scipy.stats as st
import wfdb

from ecgcore.features import hubert_shard_features, hubert_shards, shard_features, shard_statistics

from kaldi_reference import compute_deltas, kaldi_mfcc
from tf_helpers import releases_gil


def statistics_reference(x):
    s = np.abs(np.fft.fft(x, axis=-1)) ** 2 / x.shape[-1]
    rms = np.sqrt(np.mean(x ** 2, -1))
    peak = np.max(np.abs(x), -1)
    return np.stack([x.min(-1), x.max(-1), x.mean(-1), rms, x.var(-1), x.std(-1), np.mean(x ** 2, -1), peak,
                     np.ptp(x, -1), peak / rms, st.skew(x, -1), st.kurtosis(x, -1),
                     s.max(-1), s.sum(-1), s.mean(-1), s.var(-1)], -1)


def seed_shards(ecg, samp_rate):
    """dumping.py: data[:, :2500], decimate per lead, trim, concatenate, NaN -> mean, 93 shards."""
    data = ecg[:, :2500]
    q = 500 // samp_rate
    if q > 1:
        data = np.stack([ss.decimate(lead, q) for lead in data])
    if samp_rate == 100:
        leads = [lead[2:-2] for lead in data]
    elif samp_rate == 50:
        leads = [lead[1:-1] for lead in data]
    else:
        leads = [lead[2:-2] if i % 2 == 0 else lead[2:-3] for i, lead in enumerate(data)]
    flat = np.concatenate(leads)
    flat = np.where(np.isnan(flat), np.nanmean(flat), flat)
    return flat.reshape(93, -1)


@pytest.fixture(scope="module")
def ecg12(mitdb_dir):
    """A 12 x 5000 "ECG" at 500 Hz built from real MIT-BIH signal (the seed's input contract is (12, L) at 500 Hz):
    both leads of record 100 resampled 360 -> 500 Hz, six 10-s stretches, min-max scaled to [-1, 1]."""
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=360 * 30)
    sig = ss.resample_poly(rec.p_signal.T, 25, 18, axis=-1)  # 360 -> 500 Hz
    leads = np.concatenate([sig[:, i * 5000:(i + 1) * 5000] for i in range(3)])[:6]
    leads = np.concatenate([leads, -leads[:, ::-1]])
    lo, hi = leads.min(1, keepdims=True), leads.max(1, keepdims=True)
    return 2 * (leads - lo) / (hi - lo + 1e-8) - 1


def test_statistics_match_numpy_scipy(windows_100):
    for n in (32, 64, 65, 322):
        x = windows_100[:, :n * 4].reshape(-1, n)
        ref = statistics_reference(x)
        ours = shard_statistics(x)
        assert ours.shape == (len(x), 16)
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("fs,shard", [(500, 322), (100, 64), (50, 32)])
def test_shard_layout_matches_seed(ecg12, fs, shard):
    ours = hubert_shards(ecg12, fs=fs)
    ref = seed_shards(ecg12, fs)
    assert ours.shape == ref.shape == (93, shard)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("fs", [500, 100, 50])
def test_features_match_seed_transcription(ecg12, fs):
    shards = seed_shards(ecg12, fs)
    stats = statistics_reference(shards)
    frame_ms = shards.shape[1] / fs * 1000
    m13 = np.stack([kaldi_mfcc(s, fs, frame_ms, 100.0)[0] for s in shards])
    tf = shard_features(ecg12, "timefreq", fs=fs)
    mf = shard_features(ecg12, "mfcc", fs=fs)
    mixed = shard_features(ecg12, "mixed", fs=fs)
    assert (tf.shape, mf.shape, mixed.shape) == ((93, 16), (93, 39), (93, 29))
    assert hubert_shard_features is shard_features  # the former name stays an alias
    assert tf.dtype == mf.dtype == mixed.dtype == np.float32
    np.testing.assert_allclose(tf, stats.astype(np.float32), rtol=2e-6, atol=1e-6 * np.abs(stats).max())
    np.testing.assert_allclose(mf[:, :13], m13, rtol=1e-5, atol=1e-5 * np.abs(m13).max())
    # The seed's deltas of a single frame are zero.
    assert np.all(mf[:, 13:] == 0)
    np.testing.assert_array_equal(mixed[:, :16], tf)
    np.testing.assert_array_equal(mixed[:, 16:], mf[:, :13])


def test_deltas_across_shards(ecg12):
    mf = shard_features(ecg12, "mfcc", fs=100, deltas="across_shards")
    d1 = compute_deltas(mf[:, :13].T.astype(np.float64)).T
    np.testing.assert_allclose(mf[:, 13:26], d1, atol=1e-4)
    np.testing.assert_allclose(mf[:, 26:], compute_deltas(compute_deltas(mf[:, :13].T.astype(np.float64))).T,
                               atol=1e-4)
    assert np.abs(mf[:, 13:]).max() > 0


def test_nan_samples_become_the_mean(ecg12):
    e = ecg12.copy()
    e[3, 100:110] = np.nan  # decimation spreads NaN over lead 3; the seed then fills with the global mean
    ours = hubert_shards(e, fs=100)
    np.testing.assert_allclose(ours, seed_shards(e, 100), atol=1e-9)
    assert not np.isnan(ours).any()


@pytest.mark.parametrize("bad", [
    dict(kind="spectral"), dict(fs=250), dict(deltas="zero"), dict(input_fs=333.0),
])
def test_bad_arguments(ecg12, bad):
    kw = dict(kind="mixed") | bad
    with pytest.raises(ValueError):
        shard_features(ecg12, **kw)


def test_bad_shapes():
    with pytest.raises(ValueError, match="12"):
        shard_features(np.zeros((8, 5000)))
    with pytest.raises(ValueError, match="5 s"):
        shard_features(np.zeros((12, 1000)))
    with pytest.raises(ValueError, match="NaN"):
        shard_features(np.full((12, 5000), np.nan))


def test_statistics_release_gil():
    x = np.random.default_rng(1).standard_normal((300_000, 64))
    assert releases_gil(lambda: shard_statistics(x, workers=1))
