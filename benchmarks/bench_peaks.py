"""R-peak detection: ecgcore vs wfdb's XQRS and neurokit2's default detector on the same MIT-BIH excerpt.

Each peer runs on one 5-minute excerpt of record 100 (lead MLII, 360 Hz) in the same run; ecgcore is
measured single-threaded (workers=1) so the ratio is per-core, with its default options (detection at 120 Hz) and at
the full rate, and also on all 48 full records at once.
"""
from __future__ import annotations

import numpy as np
import pytest
import wfdb

FS = 360.0
EXCERPT = int(300 * FS)


@pytest.fixture(scope="module")
def excerpt(mitdb_dir):
    return wfdb.rdrecord(str(mitdb_dir / "100"), sampto=EXCERPT).p_signal[:, 0].copy()


@pytest.fixture(scope="module")
def database(mitdb_dir, mitdb_records):
    rows = []
    for r in mitdb_records:
        rec = wfdb.rdrecord(str(mitdb_dir / r))
        rows.append(rec.p_signal[:, rec.sig_name.index("MLII") if "MLII" in rec.sig_name else 0])
    return np.stack(rows)


@pytest.mark.benchmark(group="detect_r_peaks")
def test_ecgcore(benchmark, excerpt):
    from ecgcore.dsp import peaks

    r = benchmark(peaks.detect_r_peaks, excerpt, fs=FS, workers=1)
    assert r.size > 300


@pytest.mark.benchmark(group="detect_r_peaks")
def test_ecgcore_full_rate(benchmark, excerpt):
    """Every detection stage at 360 Hz (``detect_fs=None``; the default detects at 120 Hz and refines at 360)."""
    from ecgcore.dsp import peaks

    r = benchmark(peaks.detect_r_peaks, excerpt, fs=FS, workers=1, detect_fs=None)
    assert r.size > 300


@pytest.mark.benchmark(group="detect_r_peaks")
def test_wfdb_xqrs(benchmark, excerpt):
    from wfdb import processing

    r = benchmark.pedantic(processing.xqrs_detect, args=(excerpt,), kwargs={"fs": FS, "verbose": False},
                           rounds=3, iterations=1)
    assert r.size > 300


@pytest.mark.benchmark(group="detect_r_peaks")
def test_neurokit2(benchmark, excerpt):
    nk = pytest.importorskip("neurokit2")

    def run():
        _, info = nk.ecg_peaks(nk.ecg_clean(excerpt, sampling_rate=int(FS)), sampling_rate=int(FS))
        return info["ECG_R_Peaks"]

    r = benchmark.pedantic(run, rounds=5, iterations=1)
    assert len(r) > 300


@pytest.mark.benchmark(group="detect_r_peaks_database")
def test_ecgcore_all_48_records(benchmark, database):
    from ecgcore.dsp import peaks

    out = benchmark.pedantic(peaks.detect_r_peaks, args=(database,), kwargs={"fs": FS}, rounds=3, iterations=1)
    assert len(out) == database.shape[0]


@pytest.mark.benchmark(group="detect_r_peaks_noise_stress")
def test_noise_stress_table_vs_peers(benchmark, mitdb_dir, data_dir):
    """Issue 25: the EC57 noise-stress table (records 118 and 119, NSTDB em/ma/bw at 24..0 dB, scored from 5:00)
    of ecgcore, XQRS and neurokit2 in one run; F1 per cell and pooled per noise and SNR in ``extra_info``.
    ECGCORE_BENCH_FULL=1 runs ten records (100, 103, 105, 118, 119, 203, 208, 213, 219, 228)."""
    import os

    from ecgcore.datasets.peaks_stress import noise_stress_table

    records = (["100", "103", "105", "118", "119", "203", "208", "213", "219", "228"]
               if os.environ.get("ECGCORE_BENCH_FULL") else ["118", "119"])
    res = benchmark.pedantic(noise_stress_table, args=(mitdb_dir, data_dir / "nstdb"),
                             kwargs={"records": records, "snrs": (24, 18, 12, 6, 0), "progress": False},
                             rounds=1, iterations=1)
    pooled: dict = {}
    for r in res["rows"]:
        key = f"{r['noise']} {r['snr_db']} dB {r['detector']}" if r["snr_db"] is not None else f"clean {r['detector']}"
        tp, fn, fp = pooled.get(key, (0, 0, 0))
        pooled[key] = (tp + r["tp"], fn + r["fn"], fp + r["fp"])
    f1 = {k: round(200.0 * tp / max(2 * tp + fn + fp, 1), 2) for k, (tp, fn, fp) in pooled.items()}
    benchmark.extra_info["records"] = records
    benchmark.extra_info["pooled_f1"] = f1
    seconds: dict = {}
    for r in res["rows"]:
        seconds[r["detector"]] = seconds.get(r["detector"], 0.0) + r["seconds"]
    benchmark.extra_info["detector_seconds"] = seconds
    assert {r["detector"] for r in res["rows"]} >= {"ecgcore"}
