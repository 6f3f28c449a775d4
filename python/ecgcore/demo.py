"""``ecgcore demo``: read, filter and summarise the bundled MIT-BIH excerpts."""
from __future__ import annotations

import time

import numpy as np

from .data import sample_dir, sample_records
from .dsp import bandpass
from .io import read_record

__all__ = ["demo_rows", "model_rows", "run_demo"]


def _band_power_fraction(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / fs)
    total = spec.sum()
    return float(spec[(freqs >= lo) & (freqs < hi)].sum() / total) if total > 0 else 0.0


def demo_rows(band=(0.5, 50.0), order: int = 4) -> list[dict]:
    """One summary per bundled record: beats, heart rate, baseline-wander and out-of-band power removed."""
    rows = []
    for name in sample_records():
        t0 = time.perf_counter()
        rec = read_record(sample_dir() / name)
        y = bandpass(rec.signal, fs=rec.fs, low=band[0], high=band[1], order=order, axis=0)
        elapsed = time.perf_counter() - t0
        lead = 0
        x0, x1 = rec.signal[:, lead], y[:, lead]
        beats = rec.annotations.beats() if rec.annotations is not None else None
        n_beats = len(beats) if beats is not None else 0
        hr = float(60.0 * rec.fs / np.median(np.diff(beats.sample))) if n_beats > 2 else float("nan")
        abnormal = int(sum(1 for s in beats.symbol if s != "N")) if beats is not None else 0
        rows.append({
            "record": name, "lead": rec.leads[lead], "fs": rec.fs, "duration_s": rec.duration,
            "beats": n_beats, "non_normal_beats": abnormal, "heart_rate_bpm": hr,
            "baseline_power_before": _band_power_fraction(x0, rec.fs, 0.0, band[0]),
            "baseline_power_after": _band_power_fraction(x1, rec.fs, 0.0, band[0]),
            "rms_before_mV": float(np.sqrt(np.mean((x0 - x0.mean()) ** 2))),
            "rms_after_mV": float(np.sqrt(np.mean(x1 ** 2))),
            "seconds": elapsed,
        })
    return rows


def model_rows() -> list[dict]:
    """The bundled classifiers (ONNX Runtime, no training framework) on each bundled record.

    One row per (model, record): units scored, the class counts and, where the record has reference
    annotations, the agreement of the per-beat / per-segment predictions with them.
    """
    from .export import list_bundled

    bundled = list_bundled()
    rows = []
    wanted = [m for m in ("beats-aami", "segments-abnormal") if m in bundled]
    if not wanted:
        return rows
    from .infer import Scorer

    records = {name: read_record(sample_dir() / name) for name in sample_records()}
    for model in wanted:
        scorer = Scorer(model)
        for name, rec in records.items():
            t0 = time.perf_counter()
            pred = scorer.predict_record(rec)
            elapsed = time.perf_counter() - t0
            counts: dict[str, int] = {}
            agree = total = 0
            for r in pred.rows:
                counts[r["class"]] = counts.get(r["class"], 0) + 1
                ref = r.get("reference")
                if ref not in (None, "", "-"):
                    total += 1
                    agree += int(ref == r["class"])
            rows.append({"model": model, "record": name, "units": len(pred.rows), "counts": counts,
                         "agreement": agree / total if total else float("nan"), "seconds": elapsed})
    return rows


def run_demo(band=(0.5, 50.0), order: int = 4) -> str:
    rows = demo_rows(band, order)
    lines = [
        f"ecgcore demo: zero-phase Butterworth band-pass {band[0]:g}-{band[1]:g} Hz, order {order}, "
        f"on the bundled MIT-BIH excerpts ({sample_dir()})",
        "",
        f"{'record':<7} {'lead':<5} {'fs':>5} {'dur s':>6} {'beats':>6} {'non-N':>6} {'HR bpm':>7} "
        f"{'<0.5Hz pow before':>18} {'after':>9} {'RMS mV before':>14} {'after':>7} {'ms':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r['record']:<7} {r['lead']:<5} {r['fs']:>5g} {r['duration_s']:>6.0f} {r['beats']:>6d} "
            f"{r['non_normal_beats']:>6d} {r['heart_rate_bpm']:>7.1f} {100 * r['baseline_power_before']:>17.2f}% "
            f"{100 * r['baseline_power_after']:>8.4f}% {r['rms_before_mV']:>14.3f} {r['rms_after_mV']:>7.3f} "
            f"{1000 * r['seconds']:>6.1f}")
    mrows = model_rows()
    if mrows:
        lines += ["", "Bundled models (ONNX Runtime; `ecgcore models` for their cards, `ecgcore infer` for archives):", "",
                  f"{'model':<18} {'record':<7} {'units':>6} {'agree':>6} {'ms':>7}  classes"]
        for r in mrows:
            counts = " ".join(f"{k}:{v}" for k, v in sorted(r["counts"].items(), key=lambda kv: -kv[1]))
            agree = "  n/a" if r["agreement"] != r["agreement"] else f"{100 * r['agreement']:5.1f}%"
            lines.append(f"{r['model']:<18} {r['record']:<7} {r['units']:>6d} {agree:>6} "
                         f"{1000 * r['seconds']:>7.1f}  {counts}")
    lines += ["", "Data: MIT-BIH Arrhythmia Database excerpts (Moody & Mark 2001; PhysioNet), ODC-By 1.0."]
    return "\n".join(lines)
