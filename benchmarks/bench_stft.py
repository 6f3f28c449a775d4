"""STFT of 1,000 ten-second MIT-BIH windows (3,600 samples, nperseg 256, hop 128, Hann):
ecgcore.dsp.stft vs scipy.signal.stft on the same array.

Every timed call returns the same array (shape, dtype) as its scipy peer; values are checked after the timings on
the first windows (1e-10 of the largest magnitude; dB: 1e-6 dB).

Run: python -m pytest benchmarks/bench_stft.py --benchmark-only
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ten_second_windows
import scipy.signal as ss

from ecgcore.dsp.stft import heartid_stft, stft

N_WINDOWS = 1000
N_CHECK = 50


def _same_output(ours, ref_fn, windows, atol_rel=1e-10):
    ref_full_shape = (N_WINDOWS,) + ref_fn(windows[:1]).shape[1:]
    ref = ref_fn(windows[:N_CHECK])
    assert ours.shape == ref_full_shape and ours.dtype == ref.dtype
    assert np.abs(ours[:N_CHECK] - ref).max() <= atol_rel * np.abs(ref).max()


def scipy_complex(x):
    return ss.stft(x, nperseg=256)[2]


@pytest.fixture(scope="module")
def windows(mitdb_dir, mitdb_records):
    return ten_second_windows(mitdb_dir, mitdb_records, N_WINDOWS)


@pytest.mark.benchmark(group="stft-256-complex")
def test_scipy_stft(benchmark, windows):
    benchmark.pedantic(ss.stft, args=(windows,), kwargs=dict(nperseg=256), rounds=5, iterations=1)


@pytest.mark.benchmark(group="stft-256-complex")
def test_ecgcore_stft(benchmark, windows):
    out = benchmark.pedantic(stft, args=(windows,), kwargs=dict(n_fft=256), rounds=10, iterations=1, warmup_rounds=1)
    _same_output(out, scipy_complex, windows)


def scipy_magnitude(x):
    return np.abs(ss.stft(x, nperseg=256)[2])


@pytest.mark.benchmark(group="stft-256-magnitude")
def test_scipy_stft_magnitude(benchmark, windows):
    benchmark.pedantic(scipy_magnitude, args=(windows,), rounds=5, iterations=1)


@pytest.mark.benchmark(group="stft-256-magnitude")
def test_ecgcore_stft_magnitude(benchmark, windows):
    out = benchmark.pedantic(stft, args=(windows,), kwargs=dict(n_fft=256, output="magnitude"), rounds=10,
                             iterations=1, warmup_rounds=1)
    _same_output(out, scipy_magnitude, windows)


def scipy_heartid(x):
    # The HeartID setting written with scipy: symmetric Hann 500 end-padded to 1000, 500 zeros each side, hop 250.
    w = ss.get_window("hann", 500, fftbins=False)
    z = ss.stft(x, window=np.pad(w, (0, 500)), nperseg=1000, noverlap=750, boundary="zeros", padded=False,
                scaling="psd", fs=1.0 / np.sum(np.pad(w, (0, 500)) ** 2))[2]  # psd scaling with this fs = unscaled
    db = 20 * np.log10(np.abs(z) + 1e-5)
    return np.maximum(db, db.max(-1, keepdims=True) - 80)


@pytest.mark.benchmark(group="stft-heartid-db")
def test_scipy_heartid(benchmark, windows):
    x = np.ascontiguousarray(windows[:, :1000])
    benchmark.pedantic(scipy_heartid, args=(x,), rounds=5, iterations=1)


@pytest.mark.benchmark(group="stft-heartid-db")
def test_ecgcore_heartid(benchmark, windows):
    x = np.ascontiguousarray(windows[:, :1000])
    out = benchmark.pedantic(heartid_stft, args=(x,), rounds=10, iterations=1, warmup_rounds=1)
    ref = scipy_heartid(x[:N_CHECK])
    assert out.shape == (N_WINDOWS,) + ref.shape[1:] and out.dtype == ref.dtype
    assert np.abs(out[:N_CHECK] - ref).max() <= 1e-6
