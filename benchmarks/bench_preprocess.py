"""``ecgcore preprocess beats-scalograms`` vs a faithful re-implementation of the Conformer seed's stage 1
(wfdb + PyWavelets, one process per core, h5py output), on the same records and the same 2 cores.

Default: 6 records (bench time stays reasonable: pywt is slow); ECGCORE_BENCH_FULL=1 runs all 45.
Each round starts from an empty output folder (the previous round's output is removed in an untimed setup).
After the timed rounds the two outputs are compared: the same ``metadata.json`` byte for byte, the same
beats per record, and scalograms within 1e-4 of pywt's (relative to the record's largest coefficient; the
share of bit-identical values and the largest difference are printed).
The speed-up (seed time / ecgcore min and mean) is printed and stored in the benchmark's extra_info, with
the CPU-time ratio (user + system of every process of the seed; of ecgcore's record tasks and the calling
process), which the other jobs on a shared machine disturb less than wall time.
Run: python -m pytest benchmarks/bench_preprocess.py --benchmark-only -s
"""
from __future__ import annotations

import json
import os
import resource
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from ecgcore.pipelines.engine import preprocess

SEED_MAP = {**dict.fromkeys("NLRejnB", 0), **dict.fromkeys("AaJS", 1), **dict.fromkeys("VE", 2), "F": 3,
            **dict.fromkeys("/fQ?", 4)}
SEED_SECONDS: dict[str, float] = {}


def _seed_record(args):
    """One record the way the seed's preprocess_data.py does it."""
    import h5py
    import numpy as np
    import pywt
    import wfdb

    src, out, rec = args
    sig = wfdb.rdrecord(f"{src}/{rec}").p_signal[:, 0]
    ann = wfdb.rdann(f"{src}/{rec}", "atr")
    scal, labels = [], []
    for p, sym in zip(ann.sample, ann.symbol):
        if sym in SEED_MAP and 93 < p < len(sig) - 93:
            coef, _ = pywt.cwt(sig[p - 93:p + 94], np.arange(1, 33), "morl")
            scal.append(np.abs(coef).astype(np.float32))
            labels.append(SEED_MAP[sym])
    with h5py.File(f"{out}/{rec}.h5", "w") as h5:
        h5.create_dataset("scalograms", data=np.array(scal))
    return [{"record_name": rec, "beat_index": i, "label": lab} for i, lab in enumerate(labels)]


def seed_pipeline(src: Path, out: Path, records: list[str]) -> int:
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        meta = [m for rows in pool.map(_seed_record, [(str(src), str(out), r) for r in records]) for m in rows]
    meta.sort(key=lambda m: (m["record_name"], m["beat_index"]))
    (out / "metadata.json").write_text(json.dumps(meta, indent=4))
    return len(meta)


@pytest.fixture(scope="module")
def records(mitdb_records):
    recs = [r for r in mitdb_records if r not in ("102", "104", "107")]
    return recs if os.environ.get("ECGCORE_BENCH_FULL") else recs[:6]


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_preprocess")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _fresh(folder: Path):
    def setup():
        shutil.rmtree(folder, ignore_errors=True)
    return setup


def _compare(seed: Path, ours: Path, records: list[str]) -> tuple[float, float]:
    """Assert the two outputs hold the same data; returns (largest relative difference, fraction bit-equal)."""
    import h5py

    assert (ours / "metadata.json").read_bytes() == (seed / "metadata.json").read_bytes()
    worst, equal, total = 0.0, 0, 0
    for rec in records:
        with h5py.File(seed / f"{rec}.h5", "r") as a, h5py.File(ours / f"{rec}.h5", "r") as b:
            ref, got = a["scalograms"], b["scalograms"]
            assert ref.shape == got.shape and got.dtype == np.float32, rec
            for i in range(0, ref.shape[0], 1024):
                r, g = ref[i:i + 1024], got[i:i + 1024]
                rel = float(np.max(np.abs(g - r))) / max(float(np.max(r)), 1e-12)
                assert rel <= 1e-4, (rec, i, rel)
                worst = max(worst, rel)
                equal += int(np.count_nonzero(g == r))
                total += r.size
    return worst, equal / max(total, 1)


def _cpu(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_seed_pipeline_wfdb_pywt(benchmark, mitdb_dir, records, out_root):
    out = out_root / "seed"
    cpu = []

    def run():
        c0 = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
        n = seed_pipeline(mitdb_dir, out, records)  # the pool's workers are reaped: their CPU is counted
        cpu.append(_cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - c0)
        return n

    n = benchmark.pedantic(run, setup=_fresh(out), rounds=1, iterations=1)
    benchmark.extra_info.update(beats=n, records=len(records), cpu_s=round(cpu[0], 2))
    SEED_SECONDS["mean"] = benchmark.stats.stats.mean
    SEED_SECONDS["cpu"] = cpu[0]


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_ecgcore_preprocess(benchmark, mitdb_dir, records, out_root):
    out = out_root / "ours"

    cpu = []

    def run():
        c0 = _cpu(resource.RUSAGE_SELF)
        s = preprocess("beats-scalograms", mitdb_dir, out, records=records, progress=False)
        cpu.append(s.cpu_seconds + _cpu(resource.RUSAGE_SELF) - c0)  # record tasks (workers) + this process
        return s

    s = benchmark.pedantic(run, setup=_fresh(out), rounds=3, iterations=1)
    st = benchmark.stats.stats
    benchmark.extra_info.update(beats=s.n_items, records=len(records), beats_per_s=round(s.n_items / st.min),
                                records_per_s=round(len(records) / st.min, 2), cpu_s=[round(c, 2) for c in cpu])
    seed = out_root / "seed"
    if "mean" in SEED_SECONDS and (seed / "metadata.json").is_file():
        worst, same = _compare(seed, out, records)
        ratio_min, ratio_mean = SEED_SECONDS["mean"] / st.min, SEED_SECONDS["mean"] / st.mean
        cpu_ratio = SEED_SECONDS["cpu"] / min(cpu)
        benchmark.extra_info.update(speedup_min=round(ratio_min, 2), speedup_mean=round(ratio_mean, 2),
                                    cpu_speedup=round(cpu_ratio, 2))
        print(f"\nbeats-scalograms, {len(records)} records, {s.n_items} beats: seed {SEED_SECONDS['mean']:.2f} s, "
              f"ecgcore min {st.min:.2f} s / mean {st.mean:.2f} s -> {ratio_min:.1f}x (min) {ratio_mean:.1f}x (mean); "
              f"CPU seed {SEED_SECONDS['cpu']:.1f} s / ecgcore {min(cpu):.1f} s -> {cpu_ratio:.1f}x; "
              f"outputs compared: same metadata.json; scalograms {same:.6%} bit-equal, largest difference "
              f"{worst:.1e} of the record's largest coefficient")
