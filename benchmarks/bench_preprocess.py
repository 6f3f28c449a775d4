"""``ecgcore preprocess beats-scalograms`` vs a faithful re-implementation of the Conformer seed's stage 1
(wfdb + PyWavelets, one process per core, h5py output), on the same records and the same 2 cores.

Default: 6 records (bench time stays reasonable: pywt is slow); ECGCORE_BENCH_FULL=1 runs all 45.
Run: python -m pytest benchmarks/bench_preprocess.py --benchmark-only
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ecgcore.pipelines.engine import preprocess

SEED_MAP = {**dict.fromkeys("NLRejnB", 0), **dict.fromkeys("AaJS", 1), **dict.fromkeys("VE", 2), "F": 3,
            **dict.fromkeys("/fQ?", 4)}


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


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_seed_pipeline_wfdb_pywt(benchmark, mitdb_dir, records, tmp_path):
    def run():
        shutil.rmtree(tmp_path / "seed", ignore_errors=True)
        return seed_pipeline(mitdb_dir, tmp_path / "seed", records)

    n = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["beats"] = n


@pytest.mark.benchmark(group="preprocess-beats-scalograms")
def test_ecgcore_preprocess(benchmark, mitdb_dir, records, tmp_path):
    def run():
        shutil.rmtree(tmp_path / "ours", ignore_errors=True)
        return preprocess("beats-scalograms", mitdb_dir, tmp_path / "ours", records=records, progress=False)

    s = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["beats"] = s.n_items
