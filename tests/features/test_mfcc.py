"""MFCCs against librosa and against a NumPy transcription of torchaudio's Kaldi MFCC, on MIT-BIH windows."""
from __future__ import annotations

import librosa
import numpy as np
import pytest

from ecgcore.features import mel_filterbank, mfcc, mfcc_deltas

from kaldi_reference import compute_deltas, kaldi_mfcc, mel_banks
from tf_helpers import releases_gil

LIBROSA_TOL = 1e-6  # of the largest |coefficient| (librosa keeps its mel filterbank in float32)
KALDI_TOL = 1e-9


def librosa_reference(x, fs, n_mfcc, deltas, **kw):
    m = librosa.feature.mfcc(y=x, sr=fs, n_mfcc=n_mfcc, **kw)
    if not deltas:
        return m
    return np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("kw", [
    dict(n_fft=256, hop_length=64, n_mels=40),
    dict(n_fft=512, hop_length=128, n_mels=64, fmin=0.5, fmax=100.0),
    dict(n_fft=360, hop_length=90, win_length=200, n_mels=32, htk=True, lifter=22),
])
def test_librosa_mode(windows_100, kw):
    x = windows_100[:3]
    names = dict(hop_length="hop")
    ours = mfcc(x, fs=360, n_mfcc=13, **{names.get(k, k): v for k, v in kw.items()})
    for i in range(len(x)):
        ref = librosa_reference(x[i], 360, 13, True, **kw)
        assert ours[i].shape == ref.shape == (39, ref.shape[1])
        assert _rel(ours[i], ref) < LIBROSA_TOL


def test_librosa_filterbank(windows_100):
    fb = librosa.filters.mel(sr=360, n_fft=256, n_mels=40)
    assert _rel(mel_filterbank(fs=360, n_fft=256, n_mels=40), fb) < 1e-6


@pytest.mark.parametrize("fs,frame_ms,shift_ms", [(360, 25.0, 10.0), (360, 250.0, 100.0), (500, 644.0, 100.0)])
def test_kaldi_mode(windows_100, fs, frame_ms, shift_ms):
    x = windows_100[:3]
    ours = mfcc(x, fs=fs, mode="kaldi", frame_length_ms=frame_ms, frame_shift_ms=shift_ms)
    for i in range(len(x)):
        c = kaldi_mfcc(x[i], fs, frame_ms, shift_ms).T
        d1 = compute_deltas(c)
        ref = np.concatenate([c, d1, compute_deltas(d1)])
        assert ours[i].shape == ref.shape
        assert _rel(ours[i], ref) < KALDI_TOL


def test_kaldi_filterbank():
    ref = np.pad(mel_banks(23, 512, 500.0, 20.0, 0.0), ((0, 0), (0, 1)))
    np.testing.assert_allclose(mel_filterbank(fs=500, n_fft=512, n_mels=23, fmin=20.0, mode="kaldi"), ref,
                               atol=1e-12)


def test_delta_layouts_and_float32(windows_100):
    x = windows_100[:2]
    full = mfcc(x, fs=360, n_fft=256, hop=64, n_mels=40)
    assert mfcc(x, fs=360, n_fft=256, hop=64, n_mels=40, deltas=False).shape[1] == 13
    np.testing.assert_array_equal(mfcc(x, fs=360, n_fft=256, hop=64, n_mels=40, deltas=1), full[:, :26])
    f32 = mfcc(x.astype(np.float32), fs=360, n_fft=256, hop=64, n_mels=40)
    assert f32.dtype == np.float32
    assert _rel(f32, full) < 1e-4  # the float32 signal itself differs from the float64 one by ~1e-7


def test_deltas_function(windows_100):
    c = mfcc(windows_100[0], fs=360, n_fft=256, hop=64, n_mels=40, deltas=False)
    np.testing.assert_allclose(mfcc_deltas(c), librosa.feature.delta(c), atol=1e-9)
    np.testing.assert_allclose(mfcc_deltas(c, order=2), librosa.feature.delta(c, order=2), atol=1e-9)
    np.testing.assert_allclose(mfcc_deltas(c, mode="kaldi", order=2), compute_deltas(compute_deltas(c)), atol=1e-12)


def test_batch_equals_loop(windows_100):
    x = windows_100
    batch = mfcc(x, fs=360, mode="kaldi", workers=2)
    for i in range(len(x)):
        np.testing.assert_array_equal(batch[i], mfcc(x[i], fs=360, mode="kaldi", workers=1))


@pytest.mark.parametrize("bad", [
    dict(mode="htk"), dict(n_mfcc=0), dict(n_mfcc=200), dict(deltas=3), dict(fs=0), dict(fmax=1000.0),
    dict(delta_width=4), dict(n_fft=0), dict(win_length=4096),
])
def test_bad_arguments(windows_100, bad):
    kw = dict(fs=360, n_fft=256, hop=64, n_mels=40) | bad
    with pytest.raises(ValueError):
        mfcc(windows_100[:1], **kw)


def test_too_few_frames_for_deltas_is_an_error():
    with pytest.raises(ValueError, match="delta width"):
        mfcc(np.ones(1000), fs=360, n_fft=256, hop=256, n_mels=40)
    with pytest.raises(ValueError):
        mfcc(np.ones(5), fs=360, mode="kaldi")  # a 25 ms frame is 9 samples


def test_releases_gil(windows_100):
    x = np.tile(windows_100, (900, 1))  # long enough (~0.4 s here) for the check on a faster machine
    assert releases_gil(lambda: mfcc(x, fs=360, n_fft=256, hop=64, n_mels=40, workers=1))
