"""Morlet scalograms (scales 1..32, "morl") of 10,000 real MIT-BIH beats of 187 samples:
ecgcore.dsp.morlet_scalogram vs pywt.cwt called per beat (as the Conformer seed does) and on the whole batch.

Run: python -m pytest benchmarks/bench_cwt.py --benchmark-only
Speed-up = ratio of the means within a group; beats/s = 10,000 / mean.
"""
from __future__ import annotations

import numpy as np
import pytest
import pywt
import wfdb

from ecgcore.dsp.cwt import morlet_scalogram

N_BEATS = 10_000
HALF = 93
SCALES = np.arange(1, 33)


@pytest.fixture(scope="module")
def beats(mitdb_dir, mitdb_records):
    out = []
    for rec in mitdb_records:
        sig = wfdb.rdrecord(str(mitdb_dir / rec), channels=[0]).p_signal[:, 0]
        ann = wfdb.rdann(str(mitdb_dir / rec), "atr")
        out += [sig[r - HALF:r + HALF + 1] for r in ann.sample if HALF < r < len(sig) - HALF]
        if len(out) >= N_BEATS:
            break
    return np.stack(out[:N_BEATS])


def pywt_per_beat(b):
    return np.stack([np.abs(pywt.cwt(x, SCALES, "morl")[0]).astype(np.float32) for x in b])


def pywt_batch(b):
    return np.abs(pywt.cwt(b, SCALES, "morl", axis=-1)[0]).astype(np.float32)


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_pywt_per_beat(benchmark, beats):
    benchmark.pedantic(pywt_per_beat, args=(beats,), rounds=1, iterations=1)


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_pywt_whole_batch(benchmark, beats):
    benchmark.pedantic(pywt_batch, args=(beats,), rounds=1, iterations=1)


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_ecgcore(benchmark, beats):
    benchmark.pedantic(morlet_scalogram, args=(beats, SCALES), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="cwt-morl-1..32-float32")
def test_pywt_per_beat_f32(benchmark, beats):
    benchmark.pedantic(pywt_per_beat, args=(beats.astype(np.float32),), rounds=1, iterations=1)


@pytest.mark.benchmark(group="cwt-morl-1..32-float32")
def test_ecgcore_f32(benchmark, beats):
    benchmark.pedantic(morlet_scalogram, args=(beats.astype(np.float32), SCALES), rounds=5, iterations=1,
                       warmup_rounds=1)
