"""``ecgcore preprocess beats-scalograms`` vs a faithful re-implementation of the Conformer seed's stage 1
(wfdb + PyWavelets, one process per core, h5py output), on the same records and the same 2 cores.

Default: 6 records (bench time stays reasonable: pywt is slow); ECGCORE_BENCH_FULL=1 runs all 45.
Each round starts from an empty output folder (the previous round's output is removed in an untimed setup).
After the timed rounds the two outputs are compared: the same ``metadata.json`` byte for byte, the same
beats per record, and scalograms within 1e-4 of pywt's (relative to the record's largest coefficient).
The speed-up (seed time / ecgcore min and mean) is printed and stored in the benchmark's extra_info.
Run: python -m pytest benchmarks/bench_preprocess.py --benchmark-only -s
"""
from __future__ import annotations

import json
import os
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


def _compare(seed: Path, ours: Path, records: list[str]) -> None:
    import h5py

    assert (ours / "metadata.json").read_bytes() == (seed / "metadata.json").read_bytes()
    for rec in records:
        with h5py.File(seed / f"{rec}.h5", "r") as a, h5py.File(ours / f"{rec}.h5", "r") as b:
            ref, got = a["scalograms"], b["scalograms"]
            assert ref.shape == got.shape and got.dtype == np.float32, rec
            for i in range(0, ref.shape[0], 1024):
                r, g = ref[i:i + 1024], got[i:i + 1024]
                assert np.max(np.abs(g - r)) <= 1e-4 * max(float(np.max(r)), 1e-12), (rec, i)


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_seed_pipeline_wfdb_pywt(benchmark, mitdb_dir, records, out_root):
    out = out_root / "seed"
    n = benchmark.pedantic(seed_pipeline, args=(mitdb_dir, out, records), setup=_fresh(out), rounds=1,
                           iterations=1)
    benchmark.extra_info.update(beats=n, records=len(records))
    SEED_SECONDS["mean"] = benchmark.stats.stats.mean


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_ecgcore_preprocess(benchmark, mitdb_dir, records, out_root):
    out = out_root / "ours"

    def run():
        return preprocess("beats-scalograms", mitdb_dir, out, records=records, progress=False)

    s = benchmark.pedantic(run, setup=_fresh(out), rounds=3, iterations=1)
    st = benchmark.stats.stats
    benchmark.extra_info.update(beats=s.n_items, records=len(records), beats_per_s=round(s.n_items / st.min),
                                records_per_s=round(len(records) / st.min, 2))
    seed = out_root / "seed"
    if "mean" in SEED_SECONDS and (seed / "metadata.json").is_file():
        _compare(seed, out, records)
        ratio_min, ratio_mean = SEED_SECONDS["mean"] / st.min, SEED_SECONDS["mean"] / st.mean
        benchmark.extra_info.update(speedup_min=round(ratio_min, 2), speedup_mean=round(ratio_mean, 2))
        print(f"\nbeats-scalograms, {len(records)} records, {s.n_items} beats: seed {SEED_SECONDS['mean']:.2f} s, "
              f"ecgcore min {st.min:.2f} s / mean {st.mean:.2f} s -> {ratio_min:.1f}x (min) {ratio_mean:.1f}x (mean); "
              f"outputs compared: same metadata.json, scalograms within 1e-4")
