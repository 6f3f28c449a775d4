"""Zero-phase band-pass of all 48 MIT-BIH records x 2 leads: ecgcore vs scipy.signal.sosfiltfilt.

Run: python -m pytest benchmarks/bench_filter.py --benchmark-only
The speed-up is the ratio of the two times in the same run (group "sosfiltfilt": 96 rows on all cores;
"sosfiltfilt-one-row": one 30-min lead, ecgcore on one thread).
SIMD build in use: `python -c "from ecgcore import _core; print(_core.simd_path())"`.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

import ecgcore.dsp as dsp
from ecgcore.io import read_record


@pytest.fixture(scope="module")
def batch(mitdb_dir, mitdb_records):
    x = np.stack([read_record(mitdb_dir / r, annotator=None).signal.T for r in mitdb_records])
    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]))  # [96, 650000]


SOS = ss.butter(4, (0.5, 50.0), btype="bandpass", fs=360, output="sos")


@pytest.mark.benchmark(group="sosfiltfilt")
def test_scipy_sosfiltfilt(benchmark, batch):
    benchmark.pedantic(ss.sosfiltfilt, args=(SOS, batch), rounds=3, iterations=1)


@pytest.mark.benchmark(group="sosfiltfilt")
def test_ecgcore_sosfiltfilt(benchmark, batch):
    benchmark.pedantic(dsp.sosfiltfilt, args=(SOS, batch), rounds=10, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="sosfiltfilt-float32")
def test_scipy_sosfiltfilt_f32(benchmark, batch):
    x = batch.astype(np.float32)
    benchmark.pedantic(ss.sosfiltfilt, args=(SOS, x), rounds=3, iterations=1)


@pytest.mark.benchmark(group="sosfiltfilt-float32")
def test_ecgcore_sosfiltfilt_f32(benchmark, batch):
    x = batch.astype(np.float32)
    benchmark.pedantic(dsp.sosfiltfilt, args=(SOS, x), rounds=10, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="resample_poly-360to500")
def test_scipy_resample_poly(benchmark, batch):
    benchmark.pedantic(ss.resample_poly, args=(batch[:16], 25, 18), kwargs={"axis": -1}, rounds=3, iterations=1)


@pytest.mark.benchmark(group="resample_poly-360to500")
def test_ecgcore_resample_poly(benchmark, batch):
    benchmark.pedantic(dsp.resample_poly, args=(batch[:16], 25, 18), rounds=5, iterations=1, warmup_rounds=1)


# One long row (a single 30-min lead): ecgcore splits the row in time across the SIMD lanes.
@pytest.mark.benchmark(group="sosfiltfilt-one-row")
def test_scipy_sosfiltfilt_one_row(benchmark, batch):
    benchmark.pedantic(ss.sosfiltfilt, args=(SOS, batch[0]), rounds=10, iterations=1)


@pytest.mark.benchmark(group="sosfiltfilt-one-row")
def test_ecgcore_sosfiltfilt_one_row(benchmark, batch):
    benchmark.pedantic(dsp.sosfiltfilt, args=(SOS, batch[0]), kwargs={"workers": 1}, rounds=20, iterations=1,
                       warmup_rounds=1)
