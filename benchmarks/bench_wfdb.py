"""Reading all 48 MIT-BIH records (format 212): ecgcore's native decoder vs wfdb.rdrecord.

Same output on both sides: digital int64 [n, 2] (wfdb's d_signal dtype, return_res=64), digital int16
(return_res=16 / dtype=np.int16) and physical float64 (wfdb's p_signal); the module fixture checks dtype and values on every record before timing.

Run: python -m pytest benchmarks/bench_wfdb.py --benchmark-only -p no:cacheprovider \
         --benchmark-columns=min,mean,rounds
"""
from __future__ import annotations

import numpy as np
import pytest
import wfdb

from ecgcore.io import read_record


def _read_all_wfdb(paths, physical, res=64):
    for p in paths:
        wfdb.rdrecord(p, physical=physical, return_res=res)


def _read_all_ecgcore(paths, physical, dtype=None):
    for p in paths:
        read_record(p, physical=physical, annotator=None, dtype=dtype)


@pytest.fixture(scope="module")
def paths(mitdb_dir, mitdb_records):
    paths = [str(mitdb_dir / r) for r in mitdb_records]
    for p in paths:  # same output, or the timings compare different work
        for physical in (False, True):
            ref = wfdb.rdrecord(p, physical=physical)
            ref = ref.p_signal if physical else ref.d_signal
            ours = read_record(p, physical=physical, annotator=None).signal
            assert ours.dtype == ref.dtype and ours.shape == ref.shape, p
            np.testing.assert_array_equal(ours, ref, err_msg=p)
        ref16 = wfdb.rdrecord(p, physical=False, return_res=16).d_signal
        ours16 = read_record(p, physical=False, annotator=None, dtype=np.int16).signal
        assert ours16.dtype == ref16.dtype == np.int16
        np.testing.assert_array_equal(ours16, ref16, err_msg=p)
    return paths


@pytest.mark.benchmark(group="read-digital")
def test_wfdb_rdrecord_digital(benchmark, paths):
    benchmark.pedantic(_read_all_wfdb, args=(paths, False), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-digital")
def test_ecgcore_read_digital(benchmark, paths):
    benchmark.pedantic(_read_all_ecgcore, args=(paths, False), rounds=7, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-physical")
def test_wfdb_rdrecord_physical(benchmark, paths):
    benchmark.pedantic(_read_all_wfdb, args=(paths, True), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-physical")
def test_ecgcore_read_physical(benchmark, paths):
    benchmark.pedantic(_read_all_ecgcore, args=(paths, True), rounds=7, iterations=1, warmup_rounds=1)


# Digital samples as int16 on both sides (wfdb's return_res=16): a quarter of the memory writes.
@pytest.mark.benchmark(group="read-digital-int16")
def test_wfdb_rdrecord_digital_int16(benchmark, paths):
    benchmark.pedantic(_read_all_wfdb, args=(paths, False, 16), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-digital-int16")
def test_ecgcore_read_digital_int16(benchmark, paths):
    benchmark.pedantic(_read_all_ecgcore, args=(paths, False, np.int16), rounds=7, iterations=1, warmup_rounds=1)
