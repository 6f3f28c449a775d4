"""One ECG in, everything the page and the PDF show out: measurements, model outputs, words, figures.

Signal quality comes first (:func:`ecgcore.dsp.signal_quality`, every lead, 10 s windows). The rhythm lead
is MLII/II/lead 0 unless its usable windows cover less than half of it and another lead's do not. When no
lead is usable enough, the ECG gets "signal quality too low" and the reason instead of any rate, rhythm,
interval or model finding (the models are not run). Otherwise every measurement and model row is taken
from the usable stretches only: beats and 10 s segments of the models that fall in unusable windows are
left out of the counts, the table and ``predictions.csv``, and the page says how much was left out.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..datasets.mitdb import AAMI_CLASSES, aami_labels
from ..dsp import SignalQuality, signal_quality
from ..io import Record
from . import plots
from .measure import MIN_USABLE, measure_record, rhythm_lead
from .models import ModelOutputs, ModelSuite

__all__ = ["EcgAnalysis", "analyse_record", "plain_summary", "quality_label", "quality_sentence", "models_disagree",
           "INTERVALS_UNVALIDATED", "QUALITY_TOO_LOW"]

AAMI_WORDS = {"N": "normal or bundle-branch-block beats (N)", "S": "supraventricular ectopic beats (S)",
              "V": "ventricular ectopic beats (V)", "F": "fusion beats (F)", "Q": "paced or unclassifiable beats (Q)"}
SUPERCLASS_WORDS = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
                    "CD": "conduction disturbance", "HYP": "hypertrophy"}
DISCLAIMER = ("Automated analysis for research and teaching, not a diagnosis: a clinician must review the ECG "
              "before any decision.")
INTERVALS_UNVALIDATED = ("The PR, QRS and QT intervals are automatic estimates from the median beat; they have not "
                         "been validated against a reference database of wave boundaries (such as the QT Database) "
                         "and may be wrong.")
QUALITY_TOO_LOW = "signal quality too low"
SEGMENT_RULE = ("the segment model calls a 10 s segment Abnormal only when it holds more abnormal than normal beats "
                "(the rule its training labels follow), so ectopic beats scattered among normal ones leave every "
                "segment Normal")


@dataclass
class EcgAnalysis:
    """The analysis of one uploaded ECG.

    ``measurements`` and the ``*_counts``/``segments``/``superclass`` fields are JSON-ready;
    ``figures`` maps a caption to PNG bytes (page and PDF show the same images).
    """

    name: str
    fs: float
    n_leads: int
    leads: list[str]
    duration_s: float
    measurements: dict
    beat_counts: dict[str, int] | None
    reference_counts: dict[str, int] | None
    segments: dict | None
    superclass: dict[str, float] | None
    summary: list[str]
    model_notes: dict[str, str]
    figures: dict[str, bytes] = field(default_factory=dict)
    beat_rows: list[dict] | None = None
    segment_rows: list[dict] | None = None
    quality: dict | None = None

    @property
    def quality_too_low(self) -> bool:
        """True when no lead was usable enough to measure or classify anything."""
        return self.measurements.get("quality") == "too low"

    def notable_beats(self, limit: int = 20) -> list[dict]:
        """The first ``limit`` beats the model did not call N: time, class and that class's probability."""
        out = []
        for r in self.beat_rows or []:
            c = r.get("class")
            if c and c != "N":
                out.append({"time_s": float(r["time_s"]), "class": str(c),
                            "probability": float(r.get(f"prob_{c}") or 0.0)})
                if len(out) >= limit:
                    break
        return out

    def to_json(self) -> dict:
        """Everything but the figures and per-beat rows, for ``results.json`` (JSON-ready)."""
        return {"name": self.name, "fs": self.fs, "n_leads": self.n_leads, "leads": self.leads,
                "duration_s": self.duration_s, "measurements": self.measurements,
                "beat_counts": self.beat_counts, "reference_counts": self.reference_counts,
                "segments": self.segments, "superclass": self.superclass, "summary": self.summary,
                "model_notes": self.model_notes, "quality": self.quality, "figures": list(self.figures)}


def _reference_counts(record: Record) -> dict[str, int] | None:
    if record.annotations is None:
        return None
    cls = aami_labels(record.annotations.symbol, "aami")
    c = Counter(str(x) for x in cls if x)
    return {k: int(c.get(k, 0)) for k in AAMI_CLASSES}


def _usable_row(row: dict, mask: np.ndarray) -> bool:
    """A model row (beat or segment) that was classified and lies in usable windows (all of a segment)."""
    if row.get("class") in (None, "") or row.get("quality", "ok") != "ok":
        return False
    start = int(row.get("sample", 0))
    end = int(row.get("end_sample", start + 1))
    start, end = max(0, start), min(mask.size, max(end, start + 1))
    return bool(end > start and mask[start:end].all())


def _keep_usable(out: ModelOutputs, mask: np.ndarray, leads_usable: np.ndarray) -> dict[str, int]:
    """Drop the model rows of unusable stretches from ``out`` (in place); how many of each were dropped."""
    dropped = {}
    if out.beats is not None:
        kept = [r for r in out.beats if _usable_row(r, mask)]
        dropped["beats"] = len(out.beats) - len(kept)
        out.beats = kept
    if out.segments is not None:
        keep = [i for i, r in enumerate(out.segments) if _usable_row(r, mask)]
        dropped["segments"] = len(out.segments) - len(keep)
        new_index = {old: new for new, old in enumerate(keep)}
        out.attention = {new_index[i]: a for i, a in out.attention.items() if i in new_index}
        out.segment_signal = {new_index[i]: a for i, a in out.segment_signal.items() if i in new_index}
        out.segments = [out.segments[i] for i in keep]
    if out.superclass is not None and leads_usable.mean() < MIN_USABLE:
        # The 12-lead model reads every lead: it needs most of them usable.
        out.superclass, out.superclass_rows = None, None
        dropped["superclass"] = 1
    return dropped


def _segment_summary(out: ModelOutputs) -> dict | None:
    if not out.segments:
        return None
    positive = next((c for c in out.segment_classes if c != "Normal"), "Abnormal")
    probs = np.array([float(r.get(f"prob_{positive}") or 0.0) for r in out.segments])
    n_pos = int(sum(1 for r in out.segments if r.get("class") == positive))
    worst = int(np.argmax(probs))
    return {"positive_class": positive, "n_segments": len(out.segments), "n_positive": n_pos,
            "positive_percent": round(100.0 * n_pos / len(out.segments), 1),
            "max_probability": round(float(probs[worst]), 4),
            "max_at_s": round(float(out.segments[worst].get("time_s", 0.0)), 2)}


def _fmt(v, unit="", nd=0) -> str:
    if v is None:
        return "not measurable"
    return f"{v:.{nd}f}{(' ' + unit) if unit else ''}"


def quality_label(m: dict) -> str:
    """A few words on the signal quality of the analysed lead for tables ("good", "too low: flat line ...")."""
    q = m.get("quality")
    if q is None:
        return "-"
    if q == "good":
        return f"good ({m.get('usable_windows')} of {m.get('n_windows')} windows usable)"
    if q == "partly usable":
        return f"partly usable ({m.get('usable_windows')} of {m.get('n_windows')} windows)"
    return f"{QUALITY_TOO_LOW}: {m.get('quality_reason') or 'no usable window'}"


def quality_sentence(m: dict) -> str:
    """The signal-quality paragraph of the summary (first in the page and the PDF)."""
    lead, n, ok = m.get("lead"), m.get("n_windows") or 0, m.get("usable_windows") or 0
    reasons = m.get("unusable_reasons") or {}
    why = "; ".join(f"{w} ({k} window{'s' if k != 1 else ''})" for w, k in list(reasons.items())[:3])
    switched = m.get("lead_note")
    pre = f"{switched} " if switched else ""
    if m.get("quality") == "too low":
        share = (f"none of the {n} 10 s window{'s' if n != 1 else ''} of lead {lead} is usable" if not ok else
                 f"only {ok} of {n} 10 s windows of lead {lead} are usable ({m.get('usable_percent', 0):.0f} %)")
        return (f"Signal quality too low: {pre}{share}; {why or 'no usable window'}. No heart rate, rhythm, "
                f"interval or diagnosis is given for this ECG, and the models were not run on it: check the "
                f"electrodes and the recording, or upload a cleaner ECG.")
    if m.get("quality") == "partly usable":
        return (f"Signal quality: {pre}{ok} of {n} 10 s windows of lead {lead} are usable "
                f"({m.get('usable_percent', 0):.0f} %); left out: {why}. Rate, rhythm, intervals and the models' "
                f"findings below use the usable stretches only.")
    return (f"Signal quality: {pre}all {n} 10 s window{'s' if n != 1 else ''} of lead {lead} are usable "
            f"(two QRS detectors agree, no flat line, clipping, drift or noise).")


def _rhythm_sentence(m: dict) -> str:
    rhythm = m["rhythm"]
    lead = (f"Rhythm: the RR intervals vary by {m['rr_std_10s_ms']:.0f} ms (standard deviation within 10 s "
            f"windows)") if m.get("rr_std_10s_ms") is not None else "Rhythm:"
    tail = (f" Over the usable recording SDNN is {_fmt(m.get('sdnn_ms'), 'ms')} and RMSSD "
            f"{_fmt(m.get('rmssd_ms'), 'ms')}.")
    n_ect, share = m.get("n_premature") or 0, m.get("ectopic_percent") or 0.0
    if rhythm in ("bigeminy", "trigeminy", "irregular, with frequent ectopic beats"):
        patterns = []
        if m.get("bigeminy_percent"):
            patterns.append(f"every second beat (bigeminy) in {m['bigeminy_percent']:.0f} %")
        if m.get("trigeminy_percent"):
            patterns.append(f"every third beat (trigeminy) in {m['trigeminy_percent']:.0f} %")
        pattern = f"; an early beat comes {' and '.join(patterns)} of the 10 s windows" if patterns else ""
        return (f"{lead}, but the variation follows premature (ectopic) beats: {n_ect} beats ({share:.0f} % of "
                f"the usable beats) come early and are followed by a pause{pattern}. The rhythm is {rhythm}: a "
                f"repeating pattern of early beats, not the irregularly irregular rhythm of atrial fibrillation."
                + tail)
    out = (f"{lead}, so the rhythm is {rhythm} (regular below 50 ms, irregular below 100 ms, once premature beats "
           f"and pauses are set aside).")
    if n_ect:
        out += f" There are occasional premature (ectopic) beats: {n_ect} ({share:.1f} % of the usable beats)."
    if m.get("n_pauses"):
        out += f" {m['n_pauses']} pause{'s' if m['n_pauses'] != 1 else ''} longer than 1.5 RR intervals."
    return out + tail


def models_disagree(beat_counts: dict | None, segments: dict | None) -> str | None:
    """A note when the beat model's non-normal share and the segment model's Abnormal share tell different
    stories (e.g. "0 of 59 segments Abnormal" beside "37 % non-normal beats"), else None."""
    if not beat_counts or segments is None:
        return None
    total = sum(beat_counts.values())
    if not total or not segments.get("n_segments"):
        return None
    non_normal = 100.0 * (total - beat_counts.get("N", 0)) / total
    pos = float(segments["positive_percent"])
    if non_normal >= 10.0 and pos < non_normal / 3.0:
        why = (f"The two models disagree: the beat model calls {non_normal:.0f} % of the beats non-normal while "
               f"{pos:.0f} % of the segments are {segments['positive_class']}. Part of this is by design: "
               f"{SEGMENT_RULE}.")
    elif pos >= 30.0 and non_normal < 5.0:
        why = (f"The two models disagree: {pos:.0f} % of the segments are {segments['positive_class']} while the beat "
               f"model calls only {non_normal:.0f} % of the beats non-normal (the segment model also counts "
               f"bundle-branch-block beats as abnormal, the AAMI N class does not).")
    else:
        return None
    return why + (" The models were trained separately and are still undertrained (see their model cards on the "
                  "upload page), so neither confirms the other: read the rhythm strip.")


def plain_summary(m: dict, beat_counts: dict | None, segments: dict | None, superclass: dict | None,
                  model_notes: dict[str, str]) -> list[str]:
    """Rule-based plain-language paragraphs built only from the measurements and model outputs.

    The wording follows the seed app's six sections (rate, rhythm, P waves, PR, QRS, ST) plus QT and
    the models' findings, after a signal-quality paragraph when ``m`` carries one (``quality``); with
    ``quality == "too low"`` that paragraph replaces everything else. Thresholds: bradycardia < 60 bpm,
    tachycardia > 100 bpm; PR 120-200 ms; QRS >= 120 ms prolonged; QTc > 460 ms long; |ST| >= 0.1 mV.
    """
    out = []
    if m.get("quality"):
        out.append(quality_sentence(m))
        if m["quality"] == "too low":
            return out + [DISCLAIMER]
    hr = m.get("hr_bpm")
    if hr is None:
        out.append(f"Heart rate: fewer than two beats were detected in lead {m.get('lead')}, so no rate or "
                   "rhythm could be measured.")
    else:
        word = "slow (bradycardia, below 60 bpm)" if hr < 60 else "fast (tachycardia, above 100 bpm)" if hr > 100 \
            else "within the normal resting range (60-100 bpm)"
        span = m.get("usable_s") if m.get("quality") == "partly usable" else m["duration_s"]
        usable = " usable" if m.get("quality") == "partly usable" else ""
        out.append(f"Heart rate: {m['n_beats']} beats detected in {span:.0f} s of{usable} lead {m['lead']}; "
                   f"average {hr:.0f} bpm (5th-95th percentile {m['hr_min_bpm']:.0f}-{m['hr_max_bpm']:.0f} bpm), "
                   f"which is {word}.")
        if m.get("rhythm"):
            out.append(_rhythm_sentence(m))
    if m.get("p_present") is True:
        shape = "inverted" if m.get("p_inverted") else "upright"
        var = " and vary from beat to beat" if m.get("p_variable") else ""
        out.append(f"P waves: present before the QRS complexes of the median beat, {shape}{var} "
                   f"(P:QRS amplitude ratio {_fmt(m.get('p_qrs_ratio'), nd=2)}).")
    elif m.get("p_present") is False:
        out.append("P waves: no consistent P wave was found before the QRS complexes, as seen in atrial "
                   "fibrillation or flutter, junctional rhythms or a noisy recording.")
    pr = m.get("pr_ms")
    if pr is not None:
        word = "prolonged (above 200 ms, as in first-degree AV block)" if pr > 200 else \
            "short (below 120 ms, as in pre-excitation)" if pr < 120 else "normal (120-200 ms)"
        out.append(f"PR interval: about {pr:.0f} ms, {word}.")
    qrs = m.get("qrs_ms")
    if qrs is not None:
        word = "prolonged (120 ms or more, as in bundle-branch block or ventricular conduction delay)" \
            if qrs >= 120 else "of normal width (below 120 ms)"
        out.append(f"QRS duration: about {qrs:.0f} ms, {word}.")
    qtc = m.get("qtc_ms")
    if qtc is not None:
        word = "long (above 460 ms)" if qtc > 460 else "short (below 350 ms)" if qtc < 350 else "within normal limits"
        out.append(f"QT interval: about {m['qt_ms']:.0f} ms; corrected for rate (Bazett) {qtc:.0f} ms, {word}.")
    if pr is not None or qrs is not None or qtc is not None:
        out.append(INTERVALS_UNVALIDATED)
    st = m.get("st_mv")
    if st is not None:
        word = "ST depression" if st <= -0.1 else "ST elevation" if st >= 0.1 else "no marked ST deviation"
        out.append(f"ST segment: {st:+.2f} mV relative to the PR baseline 60 ms after the QRS, {word} in this lead.")
    if beat_counts is not None:
        total = sum(beat_counts.values())
        if total:
            parts = [f"{n} {AAMI_WORDS.get(c, c)}" for c, n in beat_counts.items() if n]
            ectopic = total - beat_counts.get("N", 0)
            out.append(f"Beat classification: of {total} beats, " + "; ".join(parts) +
                       f". Non-normal beats make up {100.0 * ectopic / total:.1f} % of the recording.")
    if segments is not None:
        out.append(f"Segment screening: {segments['n_positive']} of {segments['n_segments']} 10 s segments were "
                   f"classified {segments['positive_class']} ({segments['positive_percent']:.0f} %); the highest "
                   f"probability, {segments['max_probability']:.2f}, is in the segment starting at "
                   f"{segments['max_at_s']:.0f} s.")
    disagree = models_disagree(beat_counts, segments)
    if disagree:
        out.append(disagree)
    if superclass:
        ranked = sorted(superclass.items(), key=lambda kv: -kv[1])
        flagged = [f"{SUPERCLASS_WORDS.get(c, c)} ({c}, {p:.2f})" for c, p in ranked if p > 0.5]
        top = ranked[0]
        out.append("12-lead model: " + (f"flags {', '.join(flagged)}." if flagged else
                                         f"no class above 0.5; the most likely is {SUPERCLASS_WORDS.get(top[0], top[0])} "
                                         f"({top[0]}, {top[1]:.2f})."))
    for name, why in model_notes.items():
        if why.startswith("needs a 12-lead"):
            continue
        out.append(f"Not assessed by {name}: {why}.")
    out.append(DISCLAIMER)
    return out


def _choose_lead(record: Record, quality: SignalQuality) -> tuple[int, str | None]:
    """The rhythm lead, or the most usable other lead when the rhythm lead is mostly unusable."""
    preferred = rhythm_lead(record)
    share = np.atleast_1d(quality.usable_fraction())
    if share[preferred] >= MIN_USABLE or share.max() < MIN_USABLE:
        return preferred, None
    best = int(np.argmax(share))
    name = record.leads[preferred] if preferred < len(record.leads) else str(preferred)
    return best, (f"lead {name} is mostly unusable ({QUALITY_TOO_LOW}: {quality.main_reason()[preferred]}), "
                  f"so lead {record.leads[best] if best < len(record.leads) else best} was analysed instead;")


def _quality_json(record: Record, quality: SignalQuality, lead: int) -> dict:
    share = np.atleast_1d(quality.usable_fraction())
    reasons = np.atleast_1d(quality.main_reason())
    return {"window_s": quality.window_s, "lead": lead,
            "leads": [{"lead": record.leads[i] if i < len(record.leads) else str(i),
                       "usable_percent": round(100.0 * float(share[i]), 1), "main_reason": str(reasons[i]) or None}
                      for i in range(share.size)],
            "windows": [{"start_s": round(int(s) / record.fs, 3), "end_s": round(int(e) / record.fs, 3),
                         "usable": bool(u), "reason": str(r) or None}
                        for s, e, u, r in zip(quality.starts, quality.ends, np.atleast_2d(quality.usable)[lead],
                                              np.atleast_2d(quality.reason)[lead])]}


def analyse_record(record: Record, suite: ModelSuite | None, *, strip_s: float = 10.0) -> EcgAnalysis:
    """Check, measure, classify, describe and plot one ECG.

    Parameters
    ----------
    record : any number of leads at any rate >= 50 Hz
    suite : the models (None: measurements only)
    strip_s : length of the rhythm strip figure (s)
    """
    quality = signal_quality(np.asarray(record.signal, dtype=np.float64).T, fs=record.fs, workers=1)
    lead, lead_note = _choose_lead(record, quality)
    m = measure_record(record, lead, quality=quality)
    if lead_note:
        m["lead_note"] = lead_note
    too_low = m["quality"] == "too low"
    mask = m.pop("usable_mask")
    if too_low or suite is None:
        outputs = ModelOutputs()
        if too_low and suite is not None:
            outputs.errors = {name: f"not run: {QUALITY_TOO_LOW} ({m.get('quality_reason')})" for name in suite.names}
    else:
        outputs = suite.predict(record, lead)
    leads_usable = np.atleast_1d(quality.usable_fraction())
    dropped = _keep_usable(outputs, mask, leads_usable >= MIN_USABLE)
    if dropped.get("superclass") and suite is not None and suite.roles.get("superclass"):
        outputs.errors[str(suite.roles["superclass"])] = (f"not given: {QUALITY_TOO_LOW} in "
                                                          f"{int((leads_usable < MIN_USABLE).sum())} of "
                                                          f"{leads_usable.size} leads")
    m["model_rows_left_out"] = {k: v for k, v in dropped.items() if v and k != "superclass"}
    r_peaks = m.pop("r_peaks")
    template, template_r, fid = m.pop("template"), m.pop("template_r"), m.pop("fiducials")
    beat_counts = None
    labels = None
    if outputs.beats is not None:
        classes = outputs.beat_classes or list(AAMI_CLASSES)
        c = Counter(str(r["class"]) for r in outputs.beats)
        beat_counts = {k: int(c.get(k, 0)) for k in classes}
        labels = {int(r["sample"]): str(r["class"]) for r in outputs.beats}
    segments = _segment_summary(outputs)
    summary = plain_summary(m, beat_counts, segments, outputs.superclass, outputs.errors)
    left_out = m["model_rows_left_out"]
    if left_out:
        words = " and ".join(f"{n} {k}" for k, n in left_out.items())
        summary.insert(len(summary) - 1, f"Left out of the model findings: {words} in unusable stretches "
                                         f"(not classified).")

    x = np.asarray(record.signal[:, lead], dtype=np.float64)
    unit = record.units[lead] if lead < len(record.units) else ""
    figures = {}
    # The strip starts at the most abnormal segment when one is known, else at the first usable window.
    start = 0.0
    if segments is not None and segments["positive_percent"] > 0:
        start = segments["max_at_s"]
    elif not too_low and mask.size and not mask[0]:
        start = float(np.argmax(mask)) / record.fs
    start = min(start, max(0.0, record.duration - strip_s))
    lead_name = m["lead"]
    title = f"{record.name}: lead {lead_name}, {strip_s:g} s from {start:.0f} s"
    if too_low:
        title += f" ({QUALITY_TOO_LOW}: no beats marked)"
    elif labels:
        title += " (beat classes above the peaks)"
    figures["Rhythm strip with detected beats"] = plots.plot_strip(
        x, record.fs, r_peaks, beat_labels=labels, start_s=start, duration_s=strip_s, lead=lead_name, unit=unit,
        title=title, usable=mask)
    figures["Signal quality per 10 s window"] = plots.plot_quality(
        np.atleast_2d(quality.usable), quality.starts / record.fs, quality.ends / record.fs, record.leads,
        analysed=lead)
    if not too_low:
        figures["Heart rate and RR intervals"] = plots.plot_rate(r_peaks, record.fs, starts=quality.starts,
                                                                 usable=np.atleast_2d(quality.usable)[lead])
        figures["Median beat and intervals"] = plots.plot_template(template, template_r, fid, record.fs, lead_name)
    if outputs.segments:
        figures["Segment classification"] = plots.plot_segments(
            outputs.segments, record.duration, positive=segments["positive_class"])
    for i, att in outputs.attention.items():
        t0 = outputs.segments[i].get("time_s", 0.0)
        figures["Attention overlay"] = plots.plot_attention(
            outputs.segment_signal[i], att, record.fs,
            title=f"Attention over the segment at {t0:.0f} s (P({segments['positive_class']}) "
                  f"{outputs.segments[i].get('prob_' + segments['positive_class'], 0):.2f})")
    if outputs.superclass:
        figures["12-lead superclass probabilities"] = plots.plot_superclass(outputs.superclass)
    if record.n_leads > 1:
        figures["All leads"] = plots.plot_leads(record.signal, record.fs, record.leads)
    return EcgAnalysis(name=record.name, fs=float(record.fs), n_leads=record.n_leads, leads=list(record.leads),
                       duration_s=round(record.duration, 3), measurements=m, beat_counts=beat_counts,
                       reference_counts=_reference_counts(record), segments=segments,
                       superclass=None if outputs.superclass is None else
                       {k: round(v, 4) for k, v in outputs.superclass.items()},
                       summary=summary, model_notes=dict(outputs.errors), figures=figures,
                       beat_rows=outputs.beats, segment_rows=outputs.segments,
                       quality=_quality_json(record, quality, lead))
