"""R-peak detection under the EC57 noise-stress test, ecgcore against its peers in one run (issue 25).

For each clean annotated record, noise type and SNR, :func:`ecgcore.datasets.noise.noise_stress` builds the record as
PhysioNet's ``nst`` does; each detector runs on the lead (MLII by default) of the noisy record, and ``bxb``-style
scoring (:func:`ecgcore.datasets.ec57.evaluate_qrs`, 150 ms) starts after the first 5 minutes (EC57: the clean
learning period). Detectors: ``ecgcore`` (:func:`ecgcore.dsp.detect_r_peaks`), ``xqrs`` (``wfdb.processing.xqrs_detect``)
and ``neurokit2`` (``nk.ecg_peaks`` with its default method, on its own ``ecg_clean``), each skipped with a note when
its package is missing. Detection time is measured per detector.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["DETECTORS", "detect_with", "noise_stress_table", "format_stress_table"]

DETECTORS = ("ecgcore", "xqrs", "neurokit2")


def detect_with(name: str, x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices of ``x`` by detector ``name`` (ImportError when its package is missing)."""
    x = np.asarray(x, np.float64)
    if name == "ecgcore":
        from ..dsp.peaks import detect_r_peaks

        return np.asarray(detect_r_peaks(x, fs=fs), np.int64)
    if name == "xqrs":
        from wfdb import processing

        return np.asarray(processing.xqrs_detect(x, fs=fs, verbose=False), np.int64)
    if name == "neurokit2":
        import neurokit2 as nk

        _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=int(round(fs))), sampling_rate=int(round(fs)))
        return np.asarray(info["ECG_R_Peaks"], np.int64)
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(DETECTORS)}")


def noise_stress_table(records_dir, nstdb_dir, *, records=("118", "119"), noises=("em", "ma", "bw"),
                       snrs=(24, 18, 12, 6, 0, -6), detectors=DETECTORS, lead: int = 0, start_s: float = 300.0,
                       progress: bool = True) -> dict:
    """Se, +P, F1 (%) of every detector on every (record, noise, SNR) noise-stress record, plus the clean record.

    Returns ``{"rows": [{record, noise, snr_db, detector, tp, fn, fp, se, ppv, f1, seconds}], "skipped": {det: why}}``
    (``noise`` = ``"clean"``, ``snr_db`` = None for the clean records).
    """
    from tqdm.auto import tqdm

    from ..io import read_record
    from .ec57 import evaluate_qrs
    from .noise import noise_stress

    usable, skipped = [], {}
    for d in detectors:
        try:
            detect_with(d, np.sin(np.linspace(0, 60, 3600)), 360.0)
            usable.append(d)
        except ImportError as exc:
            skipped[d] = f"not installed ({exc.name})"
        except Exception:  # a detector may find nothing on a sine: that is fine, it runs
            usable.append(d)
    noise_recs = {n: read_record(Path(nstdb_dir) / n) for n in noises}
    jobs = [(r, None, None) for r in records] + [(r, n, s) for r in records for n in noises for s in snrs]
    rows = []
    clean = {r: read_record(Path(records_dir) / r) for r in records}
    for r, n, s in tqdm(jobs, desc="noise stress", disable=not progress):
        rec = clean[r] if n is None else noise_stress(clean[r], noise_recs[n], s)
        x = rec.signal[:, lead]
        for d in usable:
            t0 = time.perf_counter()
            peaks = detect_with(d, x, rec.fs)
            dt = time.perf_counter() - t0
            st = evaluate_qrs(clean[r].annotations.sample, clean[r].annotations.symbol, peaks, fs=rec.fs,
                              record=r, start_s=start_s)
            rows.append({"record": r, "noise": n or "clean", "snr_db": s, "detector": d, "tp": st.tp, "fn": st.fn,
                         "fp": st.fp, "se": st.se, "ppv": st.ppv, "f1": st.f1, "seconds": dt})
    return {"rows": rows, "skipped": skipped, "records": list(records), "noises": list(noises),
            "snrs": list(snrs), "start_s": start_s, "lead": lead}


def format_stress_table(res: dict) -> str:
    """F1 (%) per record and noise: one line per SNR, one column per detector; the best peer marked."""
    dets = sorted({r["detector"] for r in res["rows"]}, key=lambda d: DETECTORS.index(d) if d in DETECTORS else 9)
    out = []
    for rec in res["records"]:
        for noise in ["clean"] + res["noises"]:
            rows = [r for r in res["rows"] if r["record"] == rec and r["noise"] == noise]
            if not rows:
                continue
            out.append(f"record {rec}, {noise}: F1 % (Se / +P)")
            out.append(f"{'SNR dB':>8}" + "".join(f"{d:>24}" for d in dets))
            for s in sorted({r["snr_db"] for r in rows}, key=lambda v: -np.inf if v is None else -v):
                cells = {r["detector"]: r for r in rows if r["snr_db"] == s}
                line = f"{'-' if s is None else f'{s:g}':>8}"
                for d in dets:
                    c = cells.get(d)
                    line += f"{c['f1']:>8.2f} ({c['se']:5.1f}/{c['ppv']:5.1f})" if c else f"{'':>24}"
                out.append(line)
            out.append("")
    if len(res["records"]) > 1:  # beats pooled over the records, per noise and SNR
        for noise in ["clean"] + res["noises"]:
            rows = [r for r in res["rows"] if r["noise"] == noise]
            if not rows:
                continue
            out.append(f"all {len(res['records'])} records pooled, {noise}: F1 % (Se / +P)")
            out.append(f"{'SNR dB':>8}" + "".join(f"{d:>24}" for d in dets))
            for s in sorted({r["snr_db"] for r in rows}, key=lambda v: -np.inf if v is None else -v):
                line = f"{'-' if s is None else f'{s:g}':>8}"
                for d in dets:
                    cell = [r for r in rows if r["snr_db"] == s and r["detector"] == d]
                    tp, fn, fp = (sum(r[k] for r in cell) for k in ("tp", "fn", "fp"))
                    if not cell:
                        line += f"{'':>24}"
                        continue
                    se, ppv = 100.0 * tp / max(tp + fn, 1), 100.0 * tp / max(tp + fp, 1)
                    f1 = 200.0 * tp / max(2 * tp + fn + fp, 1)
                    line += f"{f1:>8.2f} ({se:5.1f}/{ppv:5.1f})"
                out.append(line)
            out.append("")
    if res["skipped"]:
        out.append("skipped: " + ", ".join(f"{d} ({why})" for d, why in res["skipped"].items()))
    return "\n".join(out) + "\n"
