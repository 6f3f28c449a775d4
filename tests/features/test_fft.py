"""FFT parity with numpy.fft on real MIT-BIH signals and on awkward lengths (primes, Bluestein)."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.dsp import fft as efft

from tf_helpers import releases_gil

LENGTHS = [1, 2, 3, 5, 8, 12, 60, 97, 127, 187, 256, 360, 500, 625, 1000, 1009, 3600, 7919, 12014]


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("n", LENGTHS)
def test_rfft_irfft_match_numpy_on_ecg(windows_100, n):
    x = np.resize(windows_100[:3].ravel(), (3, n))
    ref = np.fft.rfft(x)
    assert _rel(efft.rfft(x), ref) < 1e-12
    assert _rel(efft.irfft(ref, n), np.fft.irfft(ref, n)) < 1e-12


@pytest.mark.parametrize("n", LENGTHS)
def test_complex_fft_matches_numpy(n):
    rng = np.random.default_rng(n)
    z = rng.standard_normal((2, n)) + 1j * rng.standard_normal((2, n))
    assert _rel(efft.fft(z), np.fft.fft(z)) < 1e-12
    assert _rel(efft.ifft(z), np.fft.ifft(z)) < 1e-12


def test_padding_truncation_axis_and_float32(windows_100):
    x = windows_100[:2, :300]
    assert _rel(efft.rfft(x, 512), np.fft.rfft(x, 512)) < 1e-12
    assert _rel(efft.rfft(x, 200), np.fft.rfft(x, 200)) < 1e-12
    assert _rel(efft.rfft(x.T, axis=0), np.fft.rfft(x.T, axis=0)) < 1e-12
    y = efft.rfft(x.astype(np.float32))
    assert y.dtype == np.complex64
    assert _rel(y, np.fft.rfft(x.astype(np.float32).astype(np.float64))) < 1e-6


def test_batch_equals_loop(windows_100):
    x = windows_100[:5, :1000]
    batch = efft.rfft(x)
    for i in range(len(x)):
        np.testing.assert_array_equal(batch[i], efft.rfft(x[i]))


def test_bad_arguments():
    with pytest.raises(ValueError):
        efft.rfft(np.ones(8), 0)
    with pytest.raises(ValueError):
        efft.rfft(np.ones(8) + 1j)
    with pytest.raises(ValueError):
        efft.rfft(np.float64(3.0))


def test_releases_gil():
    x = np.random.default_rng(0).standard_normal((1000, 7919))  # prime length: Bluestein, ~0.3 s on one core
    assert releases_gil(lambda: efft.rfft(x, workers=1))
