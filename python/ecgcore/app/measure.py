"""Heart rate, RR statistics and intervals of one ECG, without any model.

R-peaks come from :func:`ecgcore.dsp.detect_r_peaks` on the rhythm lead (MLII, else II, else the first
lead). Rhythm follows the seed app's rule (SPEC §5.9 step 2): regular if the RR standard deviation is
below 50 ms, irregular below 100 ms, else irregularly irregular. The seed judged one 10 s strip; over a
long record the RR spread also holds slow heart-rate changes, so the rule is applied to the RR standard
deviation inside each 10 s window and the median over windows is used (SDNN over the whole record is
reported separately).

Intervals (PR, QRS, QT/QTc), P-wave presence and polarity and the ST level are read from the median
beat (the template of beats with a typical RR, 0.5-40 Hz band-passed): QRS onset/offset where the
slope envelope falls below 12 % of its peak, P onset where the P wave's slope falls below 25 % of its
steepest, T end by the tangent method, the baseline from the PR segment. They are estimates for a summary, not a validated delineator: each is None when the
template does not show the wave clearly.
"""
from __future__ import annotations

import numpy as np

from ..dsp import bandpass, detect_r_peaks, segment_beats
from ..io import Record

__all__ = ["rhythm_lead", "measure_record", "rhythm_label"]

REGULAR_MS = 50.0
IRREGULAR_MS = 100.0
_TEMPLATE_BEFORE_S = 0.40
_TEMPLATE_AFTER_S = 0.60


def rhythm_lead(record: Record) -> int:
    """Index of the lead used for R-peaks and intervals: MLII, else II, else lead 0."""
    for name in ("MLII", "II", "ii"):
        if name in record.leads:
            return record.leads.index(name)
    return 0


def rhythm_label(rr_std_ms: float | None) -> str | None:
    """The seed's rhythm words for an RR standard deviation in ms."""
    if rr_std_ms is None or not np.isfinite(rr_std_ms):
        return None
    if rr_std_ms < REGULAR_MS:
        return "regular"
    if rr_std_ms < IRREGULAR_MS:
        return "irregular"
    return "irregularly irregular"


def _clean(x: np.ndarray) -> np.ndarray:
    if np.isnan(x).any():
        # Gaps (NaN) would poison the filters: hold the last valid value (the detector treats NaN alike).
        x = x.copy()
        idx = np.where(~np.isnan(x), np.arange(x.size), 0)
        np.maximum.accumulate(idx, out=idx)
        x = x[idx]
        x[np.isnan(x)] = 0.0
    return x


def _windowed_rr_std(r_peaks: np.ndarray, fs: float, window_s: float = 10.0) -> float | None:
    if r_peaks.size < 3:
        return None
    rr = np.diff(r_peaks) / fs * 1000.0
    t = r_peaks[1:] / fs
    stds = []
    for start in np.arange(0.0, t[-1] + 1e-9, window_s):
        sel = rr[(t >= start) & (t < start + window_s)]
        if sel.size >= 3:
            stds.append(float(np.std(sel)))
    if not stds:
        return float(np.std(rr))
    return float(np.median(stds))


def _moving_max(x: np.ndarray, half: int) -> np.ndarray:
    if half <= 0:
        return x
    pad = np.pad(x, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(pad, 2 * half + 1)
    return win.max(axis=1)


def _template(x: np.ndarray, r_peaks: np.ndarray, fs: float) -> tuple[np.ndarray | None, int, np.ndarray]:
    """Median beat of beats with a typical RR, the R index inside it, and the beats used."""
    before = int(round(_TEMPLATE_BEFORE_S * fs))
    after = int(round(_TEMPLATE_AFTER_S * fs))
    if r_peaks.size < 3:
        return None, before, np.empty((0, before + after + 1))
    rr = np.diff(r_peaks)
    med = np.median(rr)
    # Typical beats: both neighbouring RR within 20 % of the median, so ectopics do not blur P and T.
    prev_ok = np.r_[False, np.abs(rr - med) < 0.2 * med]
    next_ok = np.r_[np.abs(rr - med) < 0.2 * med, False]
    chosen = r_peaks[prev_ok & next_ok]
    if chosen.size < 3:
        chosen = r_peaks
    if chosen.size > 400:
        chosen = chosen[np.linspace(0, chosen.size - 1, 400).astype(int)]
    beats, _ = segment_beats(x, chosen, before=before, after=after, edge="drop", workers=1)
    if beats.shape[0] < 3:
        return None, before, beats
    return np.median(beats, axis=0), before, beats


def _fiducials(t: np.ndarray, r: int, fs: float, rr_s: float, beats: np.ndarray) -> dict:
    """Wave boundaries on the median beat ``t`` (R at index ``r``); indices into ``t`` or None."""
    ms = fs / 1000.0
    out: dict = {}
    d = np.abs(np.gradient(t))
    env = _moving_max(d, max(1, int(round(15 * ms))))
    lo, hi = max(1, r - int(150 * ms)), min(t.size - 2, r + int(200 * ms))
    dmax = env[max(0, r - int(60 * ms)):r + int(60 * ms) + 1].max()
    if not dmax > 0:
        return out
    thr = 0.12 * dmax
    on = r
    while on > lo and env[on] >= thr:
        on -= 1
    off = r
    while off < hi and env[off] >= thr:
        off += 1
    out["qrs_on"], out["qrs_off"] = int(on), int(off)
    iso_lo, iso_hi = max(0, on - int(40 * ms)), max(1, on - int(10 * ms))
    iso = float(np.median(t[iso_lo:iso_hi])) if iso_hi > iso_lo else float(t[on])
    out["iso"] = iso
    dev = t - iso
    qrs_ptp = float(np.ptp(t[on:off + 1])) if off > on else float(np.ptp(t))
    out["qrs_ptp"] = qrs_ptp
    # P wave: the largest deflection 30-300 ms before QRS onset.
    p_lo, p_hi = max(0, on - int(300 * ms)), on - int(30 * ms)
    if p_hi - p_lo > 3:
        seg = dev[p_lo:p_hi]
        p = p_lo + int(np.argmax(np.abs(seg)))
        p_amp = float(dev[p])
        # Per-beat consistency: the same-signed deflection at the template's P position in most beats.
        beat_iso = np.median(beats[:, iso_lo:iso_hi], axis=1) if iso_hi > iso_lo else beats[:, on]
        per_beat = beats[:, p] - beat_iso
        consistent = float(np.mean(np.sign(per_beat) == np.sign(p_amp)) if p_amp else 0.0)
        out["p_consistency"] = consistent
        if abs(p_amp) >= 0.05 * qrs_ptp and consistent >= 0.6:
            p_on = _wave_edge(t, p, -1, int(100 * ms), ms)
            out.update(p=int(p), p_on=int(p_on), p_amp=p_amp,
                       p_amp_std=float(np.std(per_beat)))
    # T wave: the largest deflection from 80 ms after QRS offset to 60 % of the RR interval.
    t_lo = off + int(80 * ms)
    t_hi = min(t.size - 1, r + int(0.6 * rr_s * fs))
    if t_hi - t_lo > 3:
        tp = t_lo + int(np.argmax(np.abs(dev[t_lo:t_hi])))
        t_amp = float(dev[tp])
        if abs(t_amp) >= 0.03 * qrs_ptp:
            t_end = _t_end_tangent(t, tp, iso, int(200 * ms))
            if t_end is not None and t_end < t.size - 1:
                out.update(t=int(tp), t_end=int(t_end), t_amp=t_amp)
    j60 = off + int(60 * ms)
    if j60 < t.size:
        out["st"] = float(dev[j60])
    return out


def _t_end_tangent(t: np.ndarray, peak: int, iso: float, reach: int) -> int | None:
    """T-wave end by the tangent method: the tangent at the steepest point of the T wave's descending limb
    (within ``reach`` samples after the peak) meets the isoelectric level. The clinical convention for QT
    (Lepeschkin & Surawicz 1952; used by most QT tools); stops at the first sample if that lies farther."""
    hi = min(t.size - 1, peak + reach)
    if hi - peak < 3:
        return None
    g = np.gradient(t)
    sign = np.sign(t[peak] - iso) or 1.0
    # Descending limb of an upright T (rising limb of an inverted one): slope of opposite sign to the wave.
    limb = -sign * g[peak:hi + 1]
    steep = peak + int(np.argmax(limb))
    if not limb[steep - peak] > 0:
        return None
    end = steep + (t[steep] - iso) / (-g[steep]) if g[steep] != 0 else None
    if end is None or not np.isfinite(end):
        return None
    return int(min(round(end), hi)) if end >= steep else steep


def _wave_edge(t: np.ndarray, peak: int, direction: int, reach: int, ms: float) -> int:
    """Onset (direction -1) or end (+1) of a wave peaking at ``peak`` (used for the P-wave onset).

    Walks from the steepest point of the wave's limb (within ``reach`` samples of the peak) away from
    the peak until the slope falls below 25 % of that steepest slope. Slopes, not amplitudes, so that a
    baseline that differs between the PR and TP segments (common after 0.5 Hz high-pass) does not
    move the boundary.
    """
    slope = np.abs(np.gradient(t))
    k = max(1, int(round(5 * ms)))
    slope = np.convolve(slope, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    if direction < 0:
        lo = max(0, peak - reach)
        steep = lo + int(np.argmax(slope[lo:peak + 1]))
        thr = 0.25 * slope[steep]
        i = steep
        while i > lo and slope[i] > thr:
            i -= 1
        return i
    hi = min(t.size - 1, peak + reach)
    steep = peak + int(np.argmax(slope[peak:hi + 1]))
    thr = 0.25 * slope[steep]
    i = steep
    while i < hi and slope[i] > thr:
        i += 1
    return i if i < hi else t.size - 1


def measure_record(record: Record, lead: int | None = None) -> dict:
    """Rate, rhythm and interval measurements of one record.

    Parameters
    ----------
    record : signal (n_samples, n_leads) at ``record.fs``
    lead : lead index; default :func:`rhythm_lead`

    Returns
    -------
    dict with JSON-ready numbers (None where not measurable): ``lead``, ``fs``, ``duration_s``,
    ``n_beats``, ``hr_bpm``, ``hr_min_bpm``/``hr_max_bpm`` (5th/95th percentile of the beat-to-beat rate),
    ``rr_mean_ms``, ``sdnn_ms``, ``rmssd_ms``, ``rr_std_10s_ms``, ``rhythm``, ``pr_ms``, ``qrs_ms``,
    ``qt_ms``, ``qtc_ms`` (Bazett), ``p_present``, ``p_inverted``, ``p_variable``, ``p_qrs_ratio``,
    ``st_mv``; and, not JSON, ``r_peaks`` (int64 sample indices), ``template`` (median beat),
    ``template_r`` (its R index) and ``fiducials`` (indices into the template).
    """
    lead = rhythm_lead(record) if lead is None else int(lead)
    fs = float(record.fs)
    x = _clean(np.asarray(record.signal[:, lead], dtype=np.float64))
    out: dict = {"lead": record.leads[lead] if lead < len(record.leads) else str(lead), "lead_index": lead,
                 "fs": fs, "duration_s": round(record.n_samples / fs, 3), "n_leads": record.n_leads}
    r_peaks = np.asarray(detect_r_peaks(x, fs=fs, workers=1), dtype=np.int64)
    out["r_peaks"] = r_peaks
    out["n_beats"] = int(r_peaks.size)
    keys = ("hr_bpm", "hr_min_bpm", "hr_max_bpm", "rr_mean_ms", "sdnn_ms", "rmssd_ms", "rr_std_10s_ms",
            "rhythm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "p_present", "p_inverted", "p_variable",
            "p_qrs_ratio", "st_mv")
    out.update({k: None for k in keys})
    out.update(template=None, template_r=None, fiducials={})
    if r_peaks.size < 2:
        return out
    rr_s = np.diff(r_peaks) / fs
    inst = 60.0 / rr_s
    out.update(hr_bpm=round(60.0 / float(rr_s.mean()), 1),
               hr_min_bpm=round(float(np.percentile(inst, 5)), 1),
               hr_max_bpm=round(float(np.percentile(inst, 95)), 1),
               rr_mean_ms=round(float(rr_s.mean() * 1000), 1),
               sdnn_ms=round(float(rr_s.std() * 1000), 1),
               rmssd_ms=round(float(np.sqrt(np.mean(np.diff(rr_s) ** 2)) * 1000), 1) if rr_s.size > 1 else None)
    std10 = _windowed_rr_std(r_peaks, fs)
    out["rr_std_10s_ms"] = None if std10 is None else round(std10, 1)
    out["rhythm"] = rhythm_label(std10)

    high = min(40.0, 0.45 * fs)
    xf = bandpass(x, fs=fs, low=0.5, high=high, order=4, workers=1)
    template, r, beats = _template(xf, r_peaks, fs)
    if template is None:
        return out
    fid = _fiducials(template, r, fs, float(np.median(rr_s)), beats)
    out.update(template=template, template_r=r, fiducials=fid)
    to_ms = 1000.0 / fs
    if "qrs_on" in fid:
        out["qrs_ms"] = round((fid["qrs_off"] - fid["qrs_on"]) * to_ms, 1)
    out["p_present"] = "p" in fid if "qrs_on" in fid else None
    if "p" in fid:
        pr = (fid["qrs_on"] - fid["p_on"]) * to_ms
        # The seed app's validity rule for PR (SPEC §5.9 step 4).
        out["pr_ms"] = round(pr, 1) if 0 < pr < 350 else None
        out["p_inverted"] = bool(fid["p_amp"] < 0)
        out["p_variable"] = bool(fid["p_amp_std"] > 0.5 * abs(fid["p_amp"]))
        out["p_qrs_ratio"] = round(abs(fid["p_amp"]) / fid["qrs_ptp"], 3) if fid["qrs_ptp"] > 0 else None
    if "t_end" in fid:
        qt = (fid["t_end"] - fid["qrs_on"]) * to_ms
        out["qt_ms"] = round(qt, 1)
        out["qtc_ms"] = round(float(qt / np.sqrt(np.median(rr_s))), 1)
    if "st" in fid:
        out["st_mv"] = round(fid["st"], 3)
    return out
