"""Noise with the MIT-BIH Noise Stress Test Database (NSTDB): ``bw`` baseline wander, ``ma`` muscle artefact,
``em`` electrode motion.

Two ways of adding it:

* :func:`noise_stress` builds ANSI/AAMI EC57 noise-stress records exactly as PhysioNet's ``nst`` does (the records
  118e24 … 119e_6 of the NSTDB were made this way), see its docstring;
* :func:`mix_at_snr` scales a noise segment to a power ratio against a clean segment of the same length
  (``noisy = clean + a * noise``, ``a = sqrt(P_signal / (P_noise * 10**(snr_db / 10)))``, powers = mean squares of
  the mean-removed segments): ecgcore's denoise-pairs recipe uses it per 10 s pair so that every training pair has
  exactly its nominal SNR. It is *not* EC57's SNR (which is defined from the QRS amplitude).
"""
from __future__ import annotations

import numpy as np

__all__ = ["NOISE_TYPES", "noise_scale", "mix_at_snr", "snr_db", "trimmed_mean", "qrs_amplitude", "rms_amplitude",
           "nst_gain", "nst_protocol", "noise_stress", "NST_NORMAL"]

NOISE_TYPES = ("bw", "ma", "em")


def _power(x: np.ndarray, axis=-1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.mean((x - x.mean(axis=axis, keepdims=True)) ** 2, axis=axis)


def noise_scale(clean, noise, snr: float, axis: int = -1) -> np.ndarray:
    """Gain ``a`` that puts ``a * noise`` at ``snr`` dB below ``clean`` (per row along ``axis``)."""
    ps, pn = _power(clean, axis), _power(noise, axis)
    if np.any(pn <= 0):
        raise ValueError("the noise segment is constant (zero power): cannot scale it to an SNR")
    return np.sqrt(ps / (pn * 10.0 ** (snr / 10.0)))


def mix_at_snr(clean, noise, snr: float, axis: int = -1) -> np.ndarray:
    """``clean + a * noise`` with ``a`` from :func:`noise_scale`; shapes must match."""
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} segments must have the same shape")
    a = np.expand_dims(noise_scale(clean, noise, snr, axis), axis)
    return clean + a * (noise - noise.mean(axis=axis, keepdims=True))


def snr_db(clean, noisy, axis: int = -1) -> np.ndarray:
    """SNR of ``noisy`` relative to the reference ``clean``: 10 log10(P_clean / P_(noisy - clean))."""
    clean = np.asarray(clean, dtype=np.float64)
    err = np.asarray(noisy, dtype=np.float64) - clean
    return 10.0 * np.log10(_power(clean, axis) / _power(err, axis))


# --- EC57 noise-stress records, as PhysioNet's nst / sigamp make them ---------------------------------------------

# Annotation codes that WFDB's map1() calls NORMAL (sigamp measures the QRS amplitude on these beats only).
NST_NORMAL = frozenset("NLRej")


def trimmed_mean(values) -> np.ndarray:
    """sigamp's trimmed mean: sort, drop ``n // 20`` values at each end, average the rest (per column)."""
    a = np.sort(np.asarray(values, np.float64), axis=0)
    n = a.shape[0]
    if n == 0:
        raise ValueError("no measurements to average")
    lo = n // 20
    return a[lo:n - lo].mean(axis=0)


def qrs_amplitude(signal, ann_sample, ann_symbol, fs: float, *, window_s: float = 0.05, n_max: int = 300) -> np.ndarray:
    """Per lead, the QRS amplitude ``sigamp -a atr`` reports: the peak-to-peak amplitude over
    ``[t - 0.05 s, t + 0.05 s]`` (both ends included) of each of the first ``n_max`` (300) normal beats
    (:data:`NST_NORMAL`) that lie wholly inside the record, then their :func:`trimmed_mean`. (n_leads,) float64."""
    x = np.asarray(signal, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    d = int(round(window_s * fs))
    amps = []
    for t, sym in zip(np.asarray(ann_sample, np.int64), ann_symbol):
        if sym not in NST_NORMAL:
            continue
        if t - d < 0 or t + d >= x.shape[0]:
            break  # sigamp stops at the first window it cannot read
        w = x[t - d:t + d + 1]
        amps.append(w.max(0) - w.min(0))
        if len(amps) >= n_max:
            break
    if not amps:
        raise ValueError("no normal beat annotations (N, L, R, e, j) to measure the QRS amplitude on")
    return trimmed_mean(np.array(amps))


def rms_amplitude(noise, fs: float, *, window_s: float = 1.0, n_max: int = 300, start: int = 0) -> np.ndarray:
    """Per lead, the amplitude ``sigamp -r`` reports for a noise record: the RMS about its own mean of each of
    the first ``n_max`` (300) consecutive ``window_s`` (1 s) windows from ``start``, then their
    :func:`trimmed_mean`. (n_leads,) float64."""
    x = np.asarray(noise, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    w = int(round(window_s * fs))
    n = min(n_max, (x.shape[0] - start) // w)
    if n < 1:
        raise ValueError(f"the noise is shorter than one {window_s:g} s window")
    blocks = x[start:start + n * w].reshape(n, w, x.shape[1])
    rms = np.sqrt(((blocks - blocks.mean(1, keepdims=True)) ** 2).mean(1))
    return trimmed_mean(rms)


def nst_gain(snr_db: float, qrs_pp, noise_rms) -> np.ndarray:
    """nst's noise gain: ``10**(-snr/20) * sqrt(2) / 4 * qrs_pp / noise_rms``.

    That is EC57's SNR = 10 log10(S / N) with S = (peak-to-peak QRS amplitude)² / 8 (the mean square of a sine of
    that peak-to-peak amplitude) and N the mean square of the added noise (``(gain * noise_rms)²``).
    """
    rms = np.asarray(noise_rms, np.float64)
    if np.any(rms <= 0):
        raise ValueError("the noise amplitude is zero: cannot scale it to an SNR")
    return 10.0 ** (-float(snr_db) / 20.0) * np.sqrt(2.0) / 4.0 * np.asarray(qrs_pp, np.float64) / rms


def nst_protocol(n_samples: int, fs: float, *, onset_s: float = 300.0, period_s: float = 120.0) -> np.ndarray:
    """(n_samples,) bool, True where nst's default protocol adds noise: from ``onset_s`` (5 min) on, alternately
    ``period_s`` (2 min) with noise and ``period_s`` without, to the end of the record."""
    t0, dt = int(round(onset_s * fs)), int(round(period_s * fs))
    on = np.zeros(n_samples, bool)
    for k, start in enumerate(range(t0, n_samples, dt)):
        if k % 2 == 0:
            on[start:start + dt] = True
    return on


def noise_stress(record, noise, snr_db: float, *, onset_s: float = 300.0, period_s: float = 120.0,
                 noise_start_s: float = 0.0, name: str | None = None, return_info: bool = False):
    """An EC57 noise-stress record: ``record`` plus ``noise`` at ``snr_db``, exactly as PhysioNet's ``nst -s``.

    Parameters
    ----------
    record : the clean :class:`~ecgcore.io.Record` (or a WFDB path) with its reference annotations.
    noise : the noise :class:`~ecgcore.io.Record` (or path), e.g. NSTDB ``em``; lead ``i`` of the record gets noise
        lead ``i % n_noise_leads``. It must have the record's sampling rate (nst resamples otherwise; here: an error).
    snr_db : EC57 signal-to-noise ratio in the noisy stretches (24, 18, 12, 6, 0, -6 in the NSTDB).
    onset_s, period_s : the protocol, :func:`nst_protocol` (5 min clean, then 2 min noisy / 2 min clean).
    noise_start_s : where in the noise record to start (nst: 0). Use it to keep noise that a model trained on out of
        its test records; the noise wraps around at its end.

    What nst does, and this does
    ----------------------------
    * the gain per lead is :func:`nst_gain` of the record's :func:`qrs_amplitude` (``sigamp -a atr``) and the noise's
      :func:`rms_amplitude` (``sigamp -r``, on the noise as used here, i.e. from ``noise_start_s``);
    * output = clean + g(t) · noise − z(t), with g = gain inside the noisy stretches and 0 outside; z is constant
      between switches and at each switch (the first sample of a new stretch, and where the noise wraps) it takes
      ``z + (g_new − g_old) · noise[t − 1]``, so the output never jumps (nst's offset correction);
    * the reference annotations are copied unchanged.

    Where the noise wraps (never in the NSTDB with ``noise_start_s=0``: its noise records are as long as the MIT-BIH
    records), the noise's jump is removed from the output the same way.

    Returns the noisy :class:`~ecgcore.io.Record` (physical units, the clean record's leads, units and ADC gains, and
    ``comments`` stating the recipe); with ``return_info``, ``(record, info)``: gains, amplitudes, noisy stretches.
    """
    from ..io import Record, read_record

    rec = record if isinstance(record, Record) else read_record(record)
    nrec = noise if isinstance(noise, Record) else read_record(noise)
    if rec.annotations is None:
        raise ValueError(f"record {rec.name or rec.path}: no reference annotations (EC57's SNR is measured on its "
                         f"normal QRS complexes, and the output carries them)")
    if abs(float(nrec.fs) - float(rec.fs)) > 1e-6 * float(rec.fs):
        raise ValueError(f"noise at {nrec.fs:g} Hz, record at {rec.fs:g} Hz: resample one of them first")
    fs = float(rec.fs)
    x = np.nan_to_num(np.asarray(rec.signal, np.float64))
    n, n_leads = x.shape
    nz = np.nan_to_num(np.asarray(nrec.signal, np.float64))
    start = int(round(noise_start_s * fs))
    if not 0 <= start < nz.shape[0]:
        raise ValueError(f"noise_start_s={noise_start_s} is outside the noise record ({nz.shape[0] / fs:.0f} s)")
    nz = np.roll(nz, -start, axis=0)  # noise sample i is the noise record's sample start + i (wrapping)
    wraps = np.arange(nz.shape[0] - start, n, nz.shape[0])  # output samples where the noise restarts
    lead_of = [i % nz.shape[1] for i in range(n_leads)]
    noise = nz[np.arange(n) % nz.shape[0]][:, lead_of]
    a_sig = qrs_amplitude(x, rec.annotations.sample, rec.annotations.symbol, fs)
    a_noise = rms_amplitude(nz, fs)[lead_of]
    gain = nst_gain(snr_db, a_sig, a_noise)
    on = nst_protocol(n, fs, onset_s=onset_s, period_s=period_s)
    g = np.where(on[:, None], gain[None, :], 0.0)
    # z: piecewise constant, updated at every change of g and where the noise wraps (nst resets its offsets there).
    switches = np.union1d(np.flatnonzero(np.diff(on.astype(np.int8))) + 1, wraps[wraps > 0])
    z = np.zeros((n, n_leads))
    zc = np.zeros(n_leads)
    last = 0
    for t in switches:
        z[last:t] = zc
        if t in wraps:  # the noise jumps back to its start: remove that jump the same way
            zc = zc + g[t] * (noise[t] - noise[t - 1])
        zc = zc + (g[t] - g[t - 1]) * noise[t - 1]
        last = t
    z[last:] = zc
    out = x + g * noise - z
    stretches = []
    edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        stretches.append([int(a), int(b)])
    label = name or f"{rec.name or 'record'}_{nrec.name or 'noise'}{'_' if snr_db < 0 else ''}{abs(snr_db):g}"
    noisy = Record(signal=out, fs=fs, leads=list(rec.leads), units=list(rec.units), name=label, path=None,
                   annotations=rec.annotations, adc_gain=rec.adc_gain, baseline=None,
                   comments=[f"EC57 noise stress test: {rec.name} + {nrec.name} at SNR {snr_db:g} dB (ecgcore "
                             f"noise_stress, as PhysioNet nst -s {snr_db:g}); noise from {noise_start_s:g} s; gains "
                             + " ".join(f"{v:.6g}" for v in gain)])
    info = {"snr_db": float(snr_db), "gain": gain.tolist(), "qrs_amplitude": a_sig.tolist(),
            "noise_rms": a_noise.tolist(), "noisy_stretches": stretches, "onset_s": onset_s,
            "period_s": period_s, "noise_start_s": noise_start_s, "noise_leads": lead_of,
            "record": rec.name, "noise": nrec.name}
    return (noisy, info) if return_info else noisy
