"""Heart rate, RR statistics, rhythm and intervals of one ECG, without any model, over its usable stretches.

R-peaks come from :func:`ecgcore.dsp.detect_r_peaks` on the rhythm lead (MLII, else II, else the first
lead). Signal quality comes first: :func:`ecgcore.dsp.signal_quality` marks each 10 s window of the lead
usable or not, every number below uses the beats of usable windows only (an RR interval only between two
beats of usable windows that follow each other), and a lead whose usable windows cover less than half of
it gets no measurements at all (``quality`` says "too low" and why).

Rhythm follows the seed app's rule (SPEC §5.9 step 2): regular if the RR standard deviation is below 50 ms,
irregular below 100 ms, else irregularly irregular, applied inside each 10 s window (the record's
``rr_std_10s_ms`` is the median over windows). Before the rule, each window is searched for premature
(ectopic) beats, so that regular patterns of unequal RR intervals are not taken for the random RR of
atrial fibrillation: a premature beat ends an interval shorter than 85 % of the window's median RR that
is followed by a longer one (the pause after an ectopic beat); two short intervals that add up to one
median interval are an interpolated ectopic beat; an interval over 1.5 medians is a pause. When the
premature beats of a window are consistent (coupling and following intervals within 10 % and 15 %),
or there is a single one on a regular rhythm, the window's rhythm is judged on the intervals not touching
them, and a premature beat every second (third) beat is bigeminy (trigeminy). The record is irregularly
irregular only when such windows are at least as many as the regular, the irregular and the ectopic
ones; with ectopic beats in at least 10 % of the beats it is "irregular, with frequent ectopic beats"
(bigeminy or trigeminy when that pattern fills half of the windows). On MIT-BIH (lead 0, reference rhythm
labels) this keeps 208's and 119's PVC bigeminy and trigeminy out of the atrial-fibrillation wording while 201, 203, 210, 219 and 221 (atrial fibrillation)
stay irregularly irregular.

Intervals (PR, QRS, QT/QTc), P-wave presence and polarity and the ST level are read from the median
beat (the template of usable beats with a typical RR, 0.5-40 Hz band-passed): QRS onset/offset where the
slope envelope falls below 12 % of its peak; the P wave is the largest local extremum between the previous
beat's T end and 40 ms before QRS onset (at most 300 ms before it), its onset where its slope falls below
25 % of its steepest, and PR must be 80-300 ms; T end by the tangent method; the baseline from the PR
segment. They are automatic estimates for a summary, not a validated delineator: no reference
database of wave boundaries (such as the QT Database) was available to check them. Each is None when
the template does not show the wave clearly, and a wave boundary is kept in ``fiducials`` (and drawn) only
when its interval is reported.
"""
from __future__ import annotations

import numpy as np

from ..dsp import SignalQuality, bandpass, detect_r_peaks, segment_beats, signal_quality
from ..io import Record

__all__ = ["rhythm_lead", "measure_record", "rhythm_label", "rhythm_windows", "MIN_USABLE"]

REGULAR_MS = 50.0
IRREGULAR_MS = 100.0
MIN_USABLE = 0.5          # share of a lead that must lie in usable windows before anything is measured
PREMATURE = 0.85          # a premature beat's interval is shorter than this many window-median RR
PAUSE = 1.5               # a pause is longer than this many window-median RR
FREQUENT_ECTOPY = 0.10    # share of beats that makes ectopic beats "frequent"
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


def _base(std_ms: float) -> str:
    return rhythm_label(std_ms)


def _window_rhythm(rr: np.ndarray, premature: np.ndarray, interpolated: np.ndarray, involved: np.ndarray,
                   following: np.ndarray) -> str | None:
    """One window's rhythm from its RR intervals (ms) and the ectopic marks of :func:`rhythm_windows`."""
    if rr.size < 4:
        return None
    if not involved.any():
        return _base(float(np.std(rr)))
    p = np.flatnonzero(premature)
    short, after = rr[p], following[p]
    consistent = p.size >= 2 and np.std(short) < 0.10 * np.mean(short) and np.std(after) < 0.15 * np.mean(after)
    gaps = np.diff(p)
    if p.size >= 3 and consistent and np.mean(gaps == 2) >= 0.75:
        return "bigeminy"
    if p.size >= 2 and consistent and np.mean(gaps == 3) >= 0.75:
        return "trigeminy"
    rest = rr[~involved]
    n_ectopic = p.size + int(interpolated.sum())
    regular_rest = rest.size >= 3 and np.std(rest) < REGULAR_MS
    # Accept the ectopic explanation only when it fits: consistent premature beats, or one on a regular rhythm
    # (random RR, as in atrial fibrillation, also has short-long pairs, but neither tight nor alone).
    if rest.size < 3 or not (consistent or n_ectopic == 0 or (n_ectopic == 1 and regular_rest)):
        return _base(float(np.std(rr)))
    base = _base(float(np.std(rest)))
    if base == "irregularly irregular":
        return base
    return base + (" +ectopic" if n_ectopic else " +pause")


def rhythm_windows(r_peaks: np.ndarray, fs: float, starts: np.ndarray, usable: np.ndarray | None = None) -> dict:
    """Rhythm of each window and of the record from R-peaks, with ectopic beats told from irregular rhythm.

    Parameters
    ----------
    r_peaks : sorted R-peak sample indices
    starts : first sample of each window (back to back, as :func:`ecgcore.dsp.signal_quality` cuts them)
    usable : bool per window; beats of unusable windows are left out (default all usable)

    Returns
    -------
    dict: ``rhythm`` (record-level words or None), ``windows`` (label per window, None when not judged),
    ``counts`` (windows per label), ``rr_ms`` (the RR intervals used), ``rr_std_10s_ms``, ``n_premature``,
    ``n_interpolated``, ``n_pauses``, ``ectopic_percent`` (premature + interpolated beats over the beats of
    judged windows), ``bigeminy_percent``/``trigeminy_percent`` (of judged windows). The rules are in the
    module docstring.
    """
    n_win = starts.size
    usable = np.ones(n_win, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    r = np.asarray(r_peaks, dtype=np.int64)
    win = np.searchsorted(starts, r, side="right") - 1
    keep = usable[win[:-1]] & usable[win[1:]] & (win[1:] - win[:-1] <= 1) if r.size > 1 else np.zeros(0, bool)
    rr = (np.diff(r) / fs * 1000.0)[keep]
    rr_win = win[1:][keep]
    # The next interval of the same run of beats (NaN where the run ends).
    idx = np.flatnonzero(keep)
    follows = np.r_[idx[1:] == idx[:-1] + 1, False]
    nxt = np.where(follows, np.r_[rr[1:], np.nan], np.nan)
    med = np.full(n_win, np.nan)
    sizes = np.bincount(rr_win, minlength=n_win) if rr.size else np.zeros(n_win, dtype=np.int64)
    for k in np.flatnonzero(sizes):
        med[k] = np.median(rr[rr_win == k])
    ref = med[rr_win] if rr.size else np.zeros(0)
    with np.errstate(invalid="ignore"):
        short = rr < PREMATURE * ref
        short_next = np.r_[short[1:], False] & follows
        premature = short & (nxt > 1.1 * rr) & ~short_next
        interpolated = short & short_next & (np.abs(rr + nxt - ref) < 0.2 * ref)
        pause = rr > PAUSE * ref
    involved = premature | interpolated | pause
    involved[1:] |= (premature | interpolated)[:-1] & follows[:-1]

    labels: list[str | None] = [None] * n_win
    stds = []
    for k in np.flatnonzero(sizes):
        sel = rr_win == k
        if sel.sum() >= 3:
            stds.append(float(np.std(rr[sel])))
        labels[k] = _window_rhythm(rr[sel], premature[sel], interpolated[sel], involved[sel], nxt[sel])
    judged = [lab for lab in labels if lab]
    counts: dict[str, int] = {}
    for lab in judged:
        counts[lab] = counts.get(lab, 0) + 1
    in_judged = np.isin(rr_win, [k for k, lab in enumerate(labels) if lab])
    n_prem, n_interp = int(premature[in_judged].sum()), int(interpolated[in_judged].sum())
    n_beats = int(in_judged.sum()) + 1 if in_judged.any() else 0
    ectopic_share = (n_prem + n_interp) / n_beats if n_beats else 0.0
    n_j = max(len(judged), 1)
    big, tri = counts.get("bigeminy", 0), counts.get("trigeminy", 0)
    af = counts.get("irregularly irregular", 0)
    ectopic = big + tri + sum(v for k, v in counts.items() if k.endswith("+ectopic"))
    regular = sum(v for k, v in counts.items() if k.startswith("regular"))
    irregular = sum(v for k, v in counts.items() if k.startswith("irregular") and k != "irregularly irregular")
    if not judged:
        rhythm = rhythm_label(float(np.std(rr))) if rr.size >= 3 else None
    elif af and af >= max(regular, irregular, ectopic):
        rhythm = "irregularly irregular"
    elif ectopic and ectopic_share >= FREQUENT_ECTOPY:
        rhythm = "bigeminy" if big >= 0.5 * n_j else "trigeminy" if tri >= 0.5 * n_j else \
            "irregular, with frequent ectopic beats"
    else:
        rhythm = "regular" if regular >= irregular else "irregular"
    return {"rhythm": rhythm, "windows": labels, "counts": counts, "rr_ms": rr,
            "rr_std_10s_ms": float(np.median(stds)) if stds else (float(np.std(rr)) if rr.size >= 2 else None),
            "n_premature": n_prem, "n_interpolated": n_interp, "n_pauses": int(pause[in_judged].sum()),
            "ectopic_percent": round(100.0 * ectopic_share, 1),
            "bigeminy_percent": round(100.0 * big / n_j, 1) if judged else 0.0,
            "trigeminy_percent": round(100.0 * tri / n_j, 1) if judged else 0.0}


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
    # P wave: the largest local extremum (not a slope running into the window's edge) after the previous
    # beat's T end and between 300 and 40 ms before QRS onset. At fast rates or with large T waves the
    # previous T wave reaches into a fixed window and was taken for the P wave.
    rr = int(round(rr_s * fs))
    prev_t_end = out["t_end"] - rr if "t_end" in out else r - rr + int(round(0.42 * np.sqrt(rr_s) * fs))
    p_lo = max(0, on - int(300 * ms), prev_t_end + int(20 * ms))
    p_hi = on - int(40 * ms)
    if p_hi - p_lo > 3:
        seg = dev[p_lo:p_hi + 1]
        turning = np.flatnonzero((seg[1:-1] - seg[:-2]) * (seg[2:] - seg[1:-1]) < 0) + 1
        if turning.size:
            p = p_lo + int(turning[np.argmax(np.abs(seg[turning]))])
            p_amp = float(dev[p])
            # Per-beat consistency: the same-signed deflection at the template's P position in most beats.
            beat_iso = np.median(beats[:, iso_lo:iso_hi], axis=1) if iso_hi > iso_lo else beats[:, on]
            per_beat = beats[:, p] - beat_iso
            consistent = float(np.mean(np.sign(per_beat) == np.sign(p_amp)) if p_amp else 0.0)
            out["p_consistency"] = consistent
            if abs(p_amp) >= 0.05 * qrs_ptp and consistent >= 0.6:
                p_on = max(_wave_edge(t, p, -1, int(100 * ms), ms), p_lo)
                pr_ms = (on - p_on) / ms
                if 80.0 <= pr_ms <= 300.0:
                    out.update(p=int(p), p_on=int(p_on), p_amp=p_amp, p_amp_std=float(np.std(per_beat)))
                else:
                    out["p_implausible"] = True     # a P-like wave whose PR is not physiological
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


def _lead_quality(quality: SignalQuality, lead: int) -> tuple[np.ndarray, np.ndarray]:
    """(usable, reason) per window of one lead from a record-wide or one-lead :class:`SignalQuality`."""
    usable, reason = np.asarray(quality.usable), np.asarray(quality.reason)
    if usable.ndim == 2:
        usable, reason = usable[lead], reason[lead]
    if usable.ndim != 1:
        raise ValueError(f"quality must be of the whole record (leads, windows) or one lead, got {usable.shape}")
    return usable, reason


def measure_record(record: Record, lead: int | None = None, *, quality: SignalQuality | None = None) -> dict:
    """Rate, rhythm and interval measurements of one record, over the usable stretches of its rhythm lead.

    Parameters
    ----------
    record : signal (n_samples, n_leads) at ``record.fs``
    lead : lead index; default :func:`rhythm_lead`
    quality : :func:`ecgcore.dsp.signal_quality` of the record's leads (``signal.T``) or of this lead;
        default: computed here for the lead

    Returns
    -------
    dict with JSON-ready values (None where not measurable): ``lead``, ``fs``, ``duration_s``, the signal
    quality (``quality``: "good", "partly usable" or "too low"; ``quality_reason``: the commonest reason of
    the unusable windows; ``usable_percent``, ``usable_windows``, ``n_windows``, ``usable_s``,
    ``unusable_reasons`` {reason: windows}), ``n_beats`` (in usable windows), ``hr_bpm``,
    ``hr_min_bpm``/``hr_max_bpm`` (5th/95th percentile of the beat-to-beat rate), ``rr_mean_ms``,
    ``sdnn_ms``, ``rmssd_ms``, ``rr_std_10s_ms``, ``rhythm``, ``rhythm_windows`` {label: windows},
    ``ectopic_percent``, ``n_premature``, ``n_pauses``, ``bigeminy_percent``, ``trigeminy_percent``,
    ``pr_ms``, ``qrs_ms``, ``qt_ms``, ``qtc_ms`` (Bazett), ``p_present``, ``p_inverted``, ``p_variable``,
    ``p_qrs_ratio``, ``st_mv``; and, not JSON, ``r_peaks`` (int64 sample indices of the beats in usable
    windows), ``usable_mask`` (bool per sample), ``template`` (median beat), ``template_r`` (its R index) and
    ``fiducials`` (indices into the template, only of the waves whose interval is reported).
    """
    lead = rhythm_lead(record) if lead is None else int(lead)
    fs = float(record.fs)
    x = _clean(np.asarray(record.signal[:, lead], dtype=np.float64))
    out: dict = {"lead": record.leads[lead] if lead < len(record.leads) else str(lead), "lead_index": lead,
                 "fs": fs, "duration_s": round(record.n_samples / fs, 3), "n_leads": record.n_leads}
    keys = ("n_beats", "hr_bpm", "hr_min_bpm", "hr_max_bpm", "rr_mean_ms", "sdnn_ms", "rmssd_ms", "rr_std_10s_ms",
            "rhythm", "ectopic_percent", "n_premature", "n_pauses", "bigeminy_percent", "trigeminy_percent",
            "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "p_present", "p_inverted", "p_variable", "p_qrs_ratio", "st_mv")
    out.update({k: None for k in keys})
    out.update(rhythm_windows={}, template=None, template_r=None, fiducials={})

    q = quality if quality is not None else signal_quality(x, fs=fs, workers=1)
    usable, reason = _lead_quality(q, lead)
    lengths = q.ends - q.starts
    mask = np.repeat(usable, lengths)
    usable_share = float(mask.mean()) if mask.size else 0.0
    bad = reason[~usable]
    words, counts = np.unique(bad.astype(str), return_counts=True) if bad.size else (np.array([]), np.array([]))
    out.update(usable_percent=round(100.0 * usable_share, 1), usable_windows=int(usable.sum()),
               n_windows=int(usable.size), usable_s=round(float(mask.sum()) / fs, 1),
               unusable_reasons={str(w): int(c) for w, c in sorted(zip(words, counts), key=lambda wc: -wc[1])},
               quality="good" if usable.all() else "partly usable" if usable_share >= MIN_USABLE else "too low",
               quality_reason=str(words[np.argmax(counts)]) if bad.size else None)
    out["usable_mask"] = mask
    r_all = np.asarray(detect_r_peaks(x, fs=fs, workers=1), dtype=np.int64)
    if usable_share < MIN_USABLE:
        out["r_peaks"] = np.zeros(0, dtype=np.int64)
        return out
    r_peaks = r_all[mask[r_all]] if r_all.size else r_all
    out["r_peaks"] = r_peaks
    out["n_beats"] = int(r_peaks.size)
    rhythm = rhythm_windows(r_peaks, fs, q.starts, usable)
    rr_ms = rhythm["rr_ms"]
    if rr_ms.size < 1:
        return out
    rr_s = rr_ms / 1000.0
    inst = 60.0 / rr_s
    win = np.searchsorted(q.starts, r_peaks, side="right") - 1
    kept = usable[win[:-1]] & usable[win[1:]] & (win[1:] - win[:-1] <= 1)
    successive = np.diff(np.flatnonzero(kept)) == 1          # differences of intervals sharing a beat
    dd = np.diff(rr_s)[successive]
    out.update(hr_bpm=round(60.0 / float(rr_s.mean()), 1),
               hr_min_bpm=round(float(np.percentile(inst, 5)), 1),
               hr_max_bpm=round(float(np.percentile(inst, 95)), 1),
               rr_mean_ms=round(float(rr_s.mean() * 1000), 1),
               sdnn_ms=round(float(rr_s.std() * 1000), 1),
               rmssd_ms=round(float(np.sqrt(np.mean(dd ** 2)) * 1000), 1) if dd.size else None)
    std10 = rhythm["rr_std_10s_ms"]
    out["rr_std_10s_ms"] = None if std10 is None else round(std10, 1)
    out.update(rhythm=rhythm["rhythm"], rhythm_windows=rhythm["counts"], ectopic_percent=rhythm["ectopic_percent"],
               n_premature=rhythm["n_premature"] + rhythm["n_interpolated"], n_pauses=rhythm["n_pauses"],
               bigeminy_percent=rhythm["bigeminy_percent"], trigeminy_percent=rhythm["trigeminy_percent"])

    high = min(40.0, 0.45 * fs)
    xf = bandpass(x, fs=fs, low=0.5, high=high, order=4, workers=1)
    template, r, beats = _template(xf, r_peaks, fs)
    if template is None:
        return out
    fid = _fiducials(template, r, fs, float(np.median(rr_s)), beats)
    to_ms = 1000.0 / fs
    if "qrs_on" in fid:
        out["qrs_ms"] = round((fid["qrs_off"] - fid["qrs_on"]) * to_ms, 1)
    out["p_present"] = None if "qrs_on" not in fid or fid.get("p_implausible") else "p" in fid
    if "p" in fid:
        out["pr_ms"] = round((fid["qrs_on"] - fid["p_on"]) * to_ms, 1)
        out["p_inverted"] = bool(fid["p_amp"] < 0)
        out["p_variable"] = bool(fid["p_amp_std"] > 0.5 * abs(fid["p_amp"]))
        out["p_qrs_ratio"] = round(abs(fid["p_amp"]) / fid["qrs_ptp"], 3) if fid["qrs_ptp"] > 0 else None
    if "t_end" in fid:
        qt = (fid["t_end"] - fid["qrs_on"]) * to_ms
        out["qt_ms"] = round(qt, 1)
        out["qtc_ms"] = round(float(qt / np.sqrt(np.median(rr_s))), 1)
    if "st" in fid:
        out["st_mv"] = round(fid["st"], 3)
    # A boundary is drawn only where the table shows its interval.
    shown = {"p", "p_on"} if out["pr_ms"] is not None else set()
    shown |= {"qrs_on", "qrs_off"} if out["qrs_ms"] is not None else set()
    shown |= {"t", "t_end"} if out["qt_ms"] is not None else set()
    fid = {k: v for k, v in fid.items() if k in shown or k not in ("p", "p_on", "qrs_on", "qrs_off", "t", "t_end")}
    out.update(template=template, template_r=r, fiducials=fid)
    return out
