"""The denoiser on EC57 noise-stress records (issue 22): what a user running ``ecgcore infer denoiser`` on a
noisy recording gets, against classical filtering.

For each clean MIT-BIH record, NSTDB noise type and SNR, :func:`ecgcore.datasets.noise.noise_stress` builds the record
exactly as PhysioNet's ``nst`` does, with the noise taken from the NSTDB's held-out portion (``noise_start_s``:
where the denoise-pairs dataset's test noise starts, 70 % into each noise record). Only the noisy stretches whose
noise lies wholly in that held-out part are scored (with the default protocol and 30-min noise records: the
stretch from 5:00 to 7:00). Each scored stretch, with 30 s of context on each side, is denoised at its own 360 Hz by :func:`ecgcore.infer.denoise_signal`
(the model through onnxruntime, as ``ecgcore infer``), and by the two baselines of the pair evaluation
(zero-phase Butterworth 0.5–40 Hz order 3; sym8 wavelet shrinkage), all at 360 Hz.

Per stretch, against the reference = the clean lead band-passed 0.5–45 Hz (the denoiser's training target):
output SNR and SNR improvement (dB, mean-removed powers), RMSE, PRD (%), and R-peak Se/+P/F1 of
:func:`ecgcore.dsp.detect_r_peaks` on the output (stretch plus context), scored (EC57, 150 ms) on the annotated beats inside
the stretch — before (the noisy record) and after denoising.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["stress_methods", "evaluate_noise_stress", "summarise_stress", "margin_over_butterworth"]


def margin_over_butterworth(snr_db: float) -> float:
    """Issue 22's target for the denoiser's output SNR minus the Butterworth filter's at input SNR ``snr_db``:
    +3 dB at 12 dB and below, never worse (0 dB) above."""
    return 3.0 if float(snr_db) <= 12 else 0.0


def stress_methods(model="denoiser"):
    """``{name: fn(x, fs) -> y}`` of the compared methods (the denoiser through onnxruntime, two baselines).

    When the model's card has a filter guard (``preprocessing.guard``), ``denoiser`` is what users get (network and
    guard) and ``network alone`` the network's output without it.
    """
    from ...export import resolve_model
    from ...infer import denoise_signal
    from ._evaluate import butterworth_baseline, wavelet_baseline

    methods = {"noisy": lambda x, fs: x,
               "denoiser": lambda x, fs: denoise_signal(x, fs, model=model),
               "butterworth": lambda x, fs: butterworth_baseline(x, fs),
               "wavelet": lambda x, fs: wavelet_baseline(x[None, :])[0]}
    if resolve_model(model)[1].preprocessing.get("guard"):  # the card only; no second onnxruntime session
        methods["network alone"] = lambda x, fs: denoise_signal(x, fs, model=model, guard=False)
    return methods


def evaluate_noise_stress(mitdb_dir, nstdb_dir, *, model="denoiser", records=None, noises=("bw", "ma", "em"),
                          snrs=(24, 18, 12, 6, 0, -6), noise_fraction: float = 0.7, lead: int = 0,
                          progress: bool = True) -> list[dict]:
    """One row per (record, noise, SNR, method, stretch): the figures of the module doc."""
    from tqdm.auto import tqdm

    from ...datasets.ec57 import beat_mask, match_beats, scored_mask
    from ...datasets.mitdb import DS2
    from ...datasets.noise import noise_stress
    from ...dsp import bandpass, detect_r_peaks
    from ...io import read_record
    from ._evaluate import pair_metrics

    records = list(records or DS2)
    methods = stress_methods(model)
    noise_recs = {n: read_record(Path(nstdb_dir) / n) for n in noises}
    rows = []
    jobs = [(r, n, s) for r in records for n in noises for s in snrs]
    cache = {}
    for r, n, s in tqdm(jobs, desc="denoiser noise stress", disable=not progress):
        if r not in cache:
            cache = {r: read_record(Path(mitdb_dir) / r)}
        clean = cache[r]
        fs = float(clean.fs)
        nz = noise_recs[n]
        start = int(round(noise_fraction * nz.n_samples)) / float(nz.fs)
        held = nz.n_samples - int(round(start * nz.fs))  # held-out noise samples before the wrap
        noisy, info = noise_stress(clean, nz, s, noise_start_s=start, return_info=True)
        ref = bandpass(clean.signal[:, lead], fs=fs, low=0.5, high=45.0)
        a = clean.annotations
        beats = a.sample[beat_mask(a.symbol)]
        beats = beats[scored_mask(a.sample, a.symbol, beats)]
        x = noisy.signal[:, lead]
        margin = int(round(30 * fs))
        for lo, hi in info["noisy_stretches"]:
            if hi > held:
                continue  # its noise is (partly) from the training portion
            a0, a1 = max(0, lo - margin), min(x.size, hi + margin)  # the stretch with 30 s of context each side
            seg_ref = ref[lo:hi]
            b = beats[(beats >= lo) & (beats < hi)]
            for name, fn in methods.items():
                y = fn(x[a0:a1], fs)
                seg_in, seg_out = x[lo:hi], y[lo - a0:hi - a0]
                # The pair evaluation's definitions, on mean-removed stretches (nst's offsets and the kept input
                # mean are not noise the filters should be charged with).
                m = pair_metrics(*(v[None, :] - v.mean() for v in (seg_ref, seg_in, seg_out)))
                peaks = np.asarray(detect_r_peaks(y, fs=fs), np.int64) + a0
                d = peaks[(peaks >= lo) & (peaks < hi)]
                rm, dm = match_beats(b, d, window=int(round(0.15 * fs)))
                tp = int(np.count_nonzero(rm >= 0))
                rows.append({"record": r, "noise": n, "snr_db": s, "method": name, "stretch": [int(lo), int(hi)],
                             **{k: float(m[k][0]) for k in ("snr_out", "snr_improvement", "rmse", "prd")},
                             "tp": tp, "fn": int(b.size - tp), "fp": int(np.count_nonzero(dm < 0))})
    return rows


def summarise_stress(rows: list[dict]) -> dict:
    """Per (noise, SNR, method): mean output SNR / improvement, pooled R-peak F1; and each method minus Butterworth."""
    out: dict = {}
    keys = sorted({(r["noise"], r["snr_db"]) for r in rows}, key=lambda k: (k[0], -k[1]))
    for noise, snr in keys:
        sel = [r for r in rows if r["noise"] == noise and r["snr_db"] == snr]
        cell = {}
        for m in sorted({r["method"] for r in sel}):
            rs = [r for r in sel if r["method"] == m]
            tp, fn, fp = (sum(r[k] for r in rs) for k in ("tp", "fn", "fp"))
            cell[m] = {"snr_out": float(np.mean([r["snr_out"] for r in rs])),
                       "snr_improvement": float(np.mean([r["snr_improvement"] for r in rs])),
                       "rmse": float(np.mean([r["rmse"] for r in rs])), "prd": float(np.mean([r["prd"] for r in rs])),
                       "rpeak_f1": 100.0 * 2 * tp / max(2 * tp + fn + fp, 1), "stretches": len(rs)}
        if "butterworth" in cell:
            for m in cell:
                cell[m]["snr_out_minus_butterworth"] = cell[m]["snr_out"] - cell["butterworth"]["snr_out"]
        out[f"{noise} {snr:g} dB"] = cell
    return out
