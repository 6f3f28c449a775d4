"""Reading all 48 MIT-BIH records (format 212): ecgcore's native decoder vs wfdb.rdrecord.

Run: python -m pytest benchmarks/bench_wfdb.py --benchmark-only
"""
from __future__ import annotations

import pytest
import wfdb

from ecgcore.io import read_record


def _read_all_wfdb(paths, physical):
    for p in paths:
        wfdb.rdrecord(p, physical=physical)


def _read_all_ecgcore(paths, physical):
    for p in paths:
        read_record(p, physical=physical, annotator=None)


@pytest.fixture(scope="module")
def paths(mitdb_dir, mitdb_records):
    return [str(mitdb_dir / r) for r in mitdb_records]


@pytest.mark.benchmark(group="read-digital")
def test_wfdb_rdrecord_digital(benchmark, paths):
    benchmark.pedantic(_read_all_wfdb, args=(paths, False), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-digital")
def test_ecgcore_read_digital(benchmark, paths):
    benchmark.pedantic(_read_all_ecgcore, args=(paths, False), rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-physical")
def test_wfdb_rdrecord_physical(benchmark, paths):
    benchmark.pedantic(_read_all_wfdb, args=(paths, True), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="read-physical")
def test_ecgcore_read_physical(benchmark, paths):
    benchmark.pedantic(_read_all_ecgcore, args=(paths, True), rounds=5, iterations=1, warmup_rounds=1)
