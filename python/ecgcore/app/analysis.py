"""One ECG in, everything the page and the PDF show out: measurements, model outputs, words, figures."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..datasets.mitdb import AAMI_CLASSES, aami_labels
from ..io import Record
from . import plots
from .measure import measure_record
from .models import ModelOutputs, ModelSuite

__all__ = ["EcgAnalysis", "analyse_record", "plain_summary"]

AAMI_WORDS = {"N": "normal or bundle-branch-block beats (N)", "S": "supraventricular ectopic beats (S)",
              "V": "ventricular ectopic beats (V)", "F": "fusion beats (F)", "Q": "paced or unclassifiable beats (Q)"}
SUPERCLASS_WORDS = {"NORM": "normal ECG", "MI": "myocardial infarction", "STTC": "ST/T change",
                    "CD": "conduction disturbance", "HYP": "hypertrophy"}
DISCLAIMER = ("Automated analysis for research and teaching, not a diagnosis: a clinician must review the ECG "
              "before any decision.")


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

    def notable_beats(self, limit: int = 20) -> list[dict]:
        """The first ``limit`` beats the model did not call N: time, class and that class's probability."""
        out = []
        for r in self.beat_rows or []:
            c = str(r.get("class"))
            if c != "N":
                out.append({"time_s": float(r["time_s"]), "class": c, "probability": float(r.get(f"prob_{c}", 0.0))})
                if len(out) >= limit:
                    break
        return out

    def to_json(self) -> dict:
        """Everything but the figures and per-beat rows, for ``results.json``."""
        return {"name": self.name, "fs": self.fs, "n_leads": self.n_leads, "leads": self.leads,
                "duration_s": self.duration_s, "measurements": self.measurements,
                "beat_counts": self.beat_counts, "reference_counts": self.reference_counts,
                "segments": self.segments, "superclass": self.superclass, "summary": self.summary,
                "model_notes": self.model_notes, "figures": list(self.figures)}


def _reference_counts(record: Record) -> dict[str, int] | None:
    if record.annotations is None:
        return None
    cls = aami_labels(record.annotations.symbol, "aami")
    c = Counter(str(x) for x in cls if x)
    return {k: int(c.get(k, 0)) for k in AAMI_CLASSES}


def _segment_summary(out: ModelOutputs) -> dict | None:
    if not out.segments:
        return None
    positive = next((c for c in out.segment_classes if c != "Normal"), "Abnormal")
    probs = np.array([float(r.get(f"prob_{positive}", 0.0)) for r in out.segments])
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


def plain_summary(m: dict, beat_counts: dict | None, segments: dict | None, superclass: dict | None,
                  model_notes: dict[str, str]) -> list[str]:
    """Rule-based plain-language paragraphs built only from the measurements and model outputs.

    The wording follows the seed app's six sections (rate, rhythm, P waves, PR, QRS, ST) plus QT and
    the models' findings. Thresholds: bradycardia < 60 bpm, tachycardia > 100 bpm; PR 120-200 ms;
    QRS >= 120 ms prolonged; QTc > 460 ms long; |ST| >= 0.1 mV.
    """
    out = []
    hr = m.get("hr_bpm")
    if hr is None:
        out.append(f"Heart rate: fewer than two beats were detected in lead {m.get('lead')}, so no rate or "
                   "rhythm could be measured.")
    else:
        word = "slow (bradycardia, below 60 bpm)" if hr < 60 else "fast (tachycardia, above 100 bpm)" if hr > 100 \
            else "within the normal resting range (60-100 bpm)"
        out.append(f"Heart rate: {m['n_beats']} beats detected in {m['duration_s']:.0f} s of lead {m['lead']}; "
                   f"average {hr:.0f} bpm (5th-95th percentile {m['hr_min_bpm']:.0f}-{m['hr_max_bpm']:.0f} bpm), "
                   f"which is {word}.")
        rhythm = m.get("rhythm")
        if rhythm:
            out.append(f"Rhythm: the RR intervals vary by {m['rr_std_10s_ms']:.0f} ms (standard deviation within "
                       f"10 s windows), so the rhythm is {rhythm} (regular below 50 ms, irregular below 100 ms). "
                       f"Over the whole recording SDNN is {_fmt(m.get('sdnn_ms'), 'ms')} and RMSSD "
                       f"{_fmt(m.get('rmssd_ms'), 'ms')}.")
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


def analyse_record(record: Record, suite: ModelSuite | None, *, strip_s: float = 10.0) -> EcgAnalysis:
    """Measure, classify, describe and plot one ECG.

    Parameters
    ----------
    record : any number of leads at any rate >= 50 Hz
    suite : the models (None: measurements only)
    strip_s : length of the rhythm strip figure (s)
    """
    m = measure_record(record)
    lead = m["lead_index"]
    outputs = suite.predict(record, lead) if suite is not None else ModelOutputs()
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

    x = np.asarray(record.signal[:, lead], dtype=np.float64)
    unit = record.units[lead] if lead < len(record.units) else ""
    figures = {}
    # The strip starts at the most abnormal segment when one is known, else at the beginning.
    start = 0.0
    if segments is not None and segments["positive_percent"] > 0:
        start = segments["max_at_s"]
    start = min(start, max(0.0, record.duration - strip_s))
    figures["Rhythm strip with detected beats"] = plots.plot_strip(
        x, record.fs, r_peaks, beat_labels=labels, start_s=start, duration_s=strip_s, lead=m["lead"], unit=unit,
        title=f"{record.name}: lead {m['lead']}, {strip_s:g} s from {start:.0f} s" +
              (" (beat classes above the peaks)" if labels else ""))
    figures["Heart rate and RR intervals"] = plots.plot_rate(r_peaks, record.fs)
    figures["Median beat and intervals"] = plots.plot_template(template, template_r, fid, record.fs, m["lead"])
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
                       beat_rows=outputs.beats, segment_rows=outputs.segments)
