"""Morlet scalograms (scales 1..32, "morl") of 10,000 real MIT-BIH beats of 187 samples:
ecgcore.dsp.morlet_scalogram vs pywt.cwt called per beat (as the Conformer seed does) and on the whole batch.

Run: python -m pytest benchmarks/bench_cwt.py --benchmark-only
Speed-up = ratio of the means within a group; beats/s = 10,000 / mean (also stored as extra_info
"beats_per_s" in --benchmark-json). Every timed call returns the same (10000, 32, 187) float32 C-contiguous
array, checked after the timing against pywt's float64 result on the first 500 beats (1e-4 of each beat's
largest magnitude, the parity tests' tolerance; the float32 group too).
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
REF_BEATS = 500


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
    # pywt puts the scales first, (n_scales, batch, n); the same (batch, n_scales, n) float32 array as the other
    # two takes one transposing copy, folded into the float32 conversion.
    return np.abs(pywt.cwt(b, SCALES, "morl", axis=-1)[0]).transpose(1, 0, 2).astype(np.float32, order="C")


def _same_output(ours, ref):
    """Same shape, dtype and layout; same values (1e-4 of each beat's largest magnitude, the parity tests'
    tolerance) on the beats the reference covers."""
    assert ours.shape == (N_BEATS, len(SCALES), 2 * HALF + 1)
    assert ours.dtype == ref.dtype == np.float32 and ours.flags.c_contiguous
    ours = ours[:len(ref)]
    err = np.abs(ours - ref).max(axis=(1, 2))
    assert np.all(err <= 1e-4 * np.abs(ref).max(axis=(1, 2)))


def _beats_per_s(benchmark):
    benchmark.extra_info["beats_per_s"] = round(N_BEATS / benchmark.stats.stats.mean)


@pytest.fixture(scope="module")
def reference(beats):
    """pywt's scalograms of the first float64 beats, computed outside the timings to check every output."""
    return pywt_batch(beats[:REF_BEATS])


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_pywt_per_beat(benchmark, beats, reference):
    _same_output(benchmark.pedantic(pywt_per_beat, args=(beats,), rounds=1, iterations=1), reference)
    _beats_per_s(benchmark)


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_pywt_whole_batch(benchmark, beats, reference):
    _same_output(benchmark.pedantic(pywt_batch, args=(beats,), rounds=1, iterations=1), reference)
    _beats_per_s(benchmark)


@pytest.mark.benchmark(group="cwt-morl-1..32-float64")
def test_ecgcore(benchmark, beats, reference):
    out = benchmark.pedantic(morlet_scalogram, args=(beats, SCALES), rounds=5, iterations=1, warmup_rounds=1)
    _same_output(out, reference)
    _beats_per_s(benchmark)


@pytest.mark.benchmark(group="cwt-morl-1..32-float32")
def test_pywt_per_beat_f32(benchmark, beats, reference):
    out = benchmark.pedantic(pywt_per_beat, args=(beats.astype(np.float32),), rounds=1, iterations=1)
    _same_output(out, reference)
    _beats_per_s(benchmark)


@pytest.mark.benchmark(group="cwt-morl-1..32-float32")
def test_ecgcore_f32(benchmark, beats, reference):
    out = benchmark.pedantic(morlet_scalogram, args=(beats.astype(np.float32), SCALES), rounds=5, iterations=1,
                             warmup_rounds=1)
    _same_output(out, reference)
    _beats_per_s(benchmark)
