"""STFT against scipy.signal.stft and NumPy transcriptions of torch.stft and mlx_stft on MIT-BIH signals."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

from ecgcore.dsp.stft import db_spectrogram, get_window, heartid_stft, stft

from tf_helpers import releases_gil


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("nperseg,noverlap,nfft,window", [
    (256, 128, None, "hann"), (256, 200, 512, "hann"), (187, 100, None, "hamming"), (255, 0, 300, "boxcar"),
    (100, 99, 128, "hann"), (360, 180, 1000, "hann"),
])
@pytest.mark.parametrize("center", [True, False])
def test_matches_scipy(windows_100, nperseg, noverlap, nfft, window, center):
    x = windows_100
    kw = {} if center else dict(boundary=None, padded=False)
    _, _, ref = ss.stft(x, nperseg=nperseg, noverlap=noverlap, nfft=nfft, window=window, **kw)
    ours = stft(x, n_fft=nfft or nperseg, win_length=nperseg, hop=nperseg - noverlap, window=window,
                center=center, pad_end=center)
    assert ours.shape == ref.shape
    assert _rel(ours, ref) < 1e-10


def test_matches_scipy_twosided_psd_and_float32(windows_100):
    x = windows_100[:2]
    _, _, ref = ss.stft(x, fs=360.0, nperseg=128, return_onesided=False, scaling="psd")
    assert _rel(stft(x, n_fft=128, onesided=False, scaling="psd", fs=360.0), ref) < 1e-10
    x32 = x.astype(np.float32)
    _, _, ref32 = ss.stft(x32, nperseg=128)
    ours32 = stft(x32, n_fft=128)
    assert ours32.dtype == np.complex64
    assert _rel(ours32, ref32) < 1e-5


def torch_stft_reference(x, n_fft, hop, win_length, window):
    """torch.stft(x, n_fft, hop, win_length, window, center=True, pad_mode='reflect', onesided=True)."""
    pad = n_fft // 2
    xp = np.pad(x, pad, mode="reflect")
    w = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    w[left:left + win_length] = window
    n_frames = 1 + (len(xp) - n_fft) // hop
    frames = np.stack([xp[i * hop:i * hop + n_fft] * w for i in range(n_frames)], axis=-1)
    return np.fft.rfft(frames, axis=0)


def mlx_stft_reference(x, n_fft=1000, win_length=500, hop=250, top_db=80.0):
    """mlx_stft v0.1.1 with return_db=True (SPEC 1.2): symmetric Hann end-padded, zero padding n_fft // 2."""
    n = np.arange(win_length)
    w = np.zeros(n_fft)
    w[:win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / (win_length - 1))
    xp = np.pad(x, n_fft // 2)
    n_frames = 1 + (len(xp) - n_fft) // hop
    k = np.arange(n_fft // 2 + 1)[:, None]
    t = np.arange(n_fft)[None, :]
    cos_b, sin_b = np.cos(2 * np.pi * k * t / n_fft), -np.sin(2 * np.pi * k * t / n_fft)
    frames = np.stack([xp[i * hop:i * hop + n_fft] * w for i in range(n_frames)], axis=-1)
    mag = np.sqrt((cos_b @ frames) ** 2 + (sin_b @ frames) ** 2)
    db = 20 * np.log10(mag + 1e-5)
    return np.maximum(db, db.max(axis=-1, keepdims=True) - top_db)


@pytest.mark.parametrize("n_fft,hop,win_length", [(256, 64, 256), (512, 128, 300), (100, 25, 61)])
def test_torch_convention(windows_100, n_fft, hop, win_length):
    x = windows_100[1]
    w = get_window("hann", win_length)
    ours = stft(x, n_fft=n_fft, hop=hop, win_length=win_length, convention="torch")
    ref = torch_stft_reference(x, n_fft, hop, win_length, w)
    assert ours.shape == ref.shape
    assert _rel(ours, ref) < 1e-10


def test_heartid_mode_matches_mlx_formula(windows_100):
    x = windows_100[:3, :1000]
    ours = db_spectrogram(x)  # its defaults are the HeartID seed's setting
    assert heartid_stft is db_spectrogram  # the former name stays an alias
    assert ours.shape == (3, 501, 5)
    for i in range(3):
        ref = mlx_stft_reference(x[i])
        assert np.abs(ours[i] - ref).max() < 1e-8


@pytest.mark.parametrize("output", ["magnitude", "power", "db"])
def test_output_kinds_follow_the_complex_result(windows_100, output):
    x = windows_100[:2]
    z = stft(x, n_fft=256)
    y = stft(x, n_fft=256, output=output, db_offset=1e-6)
    expected = {"magnitude": np.abs(z), "power": np.abs(z) ** 2, "db": 20 * np.log10(np.abs(z) + 1e-6)}[output]
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_batch_equals_loop_and_threads(windows_100):
    x = windows_100
    batch = stft(x, n_fft=256, workers=2)
    for i in range(len(x)):
        np.testing.assert_array_equal(batch[i], stft(x[i], n_fft=256, workers=1))


@pytest.mark.parametrize("bad", [
    dict(n_fft=0), dict(hop=0), dict(win_length=512), dict(convention="librosa"), dict(window="kaiser"),
    dict(output="phase"), dict(pad_mode="wrap"), dict(scaling="energy"), dict(window=np.ones(10)),
])
def test_bad_arguments(windows_100, bad):
    kw = dict(n_fft=256) | bad
    with pytest.raises(ValueError):
        stft(windows_100[:1], **kw)


def test_too_short_and_complex_input():
    with pytest.raises(ValueError):
        stft(np.ones(10), n_fft=256, center=False)
    with pytest.raises(ValueError):
        stft(np.ones(300) + 1j, n_fft=256)


def test_releases_gil(windows_100):
    x = np.tile(windows_100, (150, 1))
    assert releases_gil(lambda: stft(x, n_fft=256, hop=16, output="magnitude", workers=1))
