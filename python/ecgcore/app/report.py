"""The PDF report (reportlab) and the optional, user-configured LLM hook.

PDF: a title page with the upload's overview, then per ECG its plain-language summary, tables
(measurements, beat classes, segments, 12-lead probabilities) and the figures of the results page.
reportlab's base-14 fonts are Latin-1, so text is passed through :func:`latin1` (the seed's mapping of
dashes, quotes, bullets, ``±``, ``µ``, ``≤``, ``≥``; anything else becomes ``?``).

LLM hook: off unless the user names one with ``ecgcore app --llm`` or ``$ECGCORE_APP_LLM``:

* an ``http(s)://`` URL: the JSON payload is POSTed; the reply is JSON ``{"text": ...}`` or plain text;
* anything else: a command line, run without a shell, the payload on stdin, the text on stdout.

The payload is ``{"ecg": <results JSON of one ECG>, "summary": [...], "instructions": ...}``. The hook's
text is added to the report as "Narrative (user-configured assistant)", clearly apart from the
measurements; a failing hook adds a one-line note instead and never fails the report.
"""
from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .._fs import write_bytes
from .analysis import DISCLAIMER, INTERVALS_UNVALIDATED, EcgAnalysis, models_disagree, quality_label

__all__ = ["LLM_ENV", "build_pdf", "write_pdf", "latin1", "llm_narrative"]

LLM_ENV = "ECGCORE_APP_LLM"
LLM_TIMEOUT_S = 60.0
_LATIN1 = {"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
           "\u2022": "*", "\u2026": "...", "\u2264": "<=", "\u2265": ">=", "\u00b0": "\u00b0", "\u00b1": "\u00b1",
           "\u00b5": "\u00b5", "\u2212": "-", "\u2713": "YES", "\u2717": "NO"}


def _latin1_plain(text: str) -> str:
    s = "".join(_LATIN1.get(ch, ch) for ch in str(text))
    return s.encode("latin-1", errors="replace").decode("latin-1")


def latin1(text: str) -> str:
    """Text the PDF's standard fonts can draw, XML-escaped for reportlab paragraphs."""
    return _latin1_plain(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def llm_narrative(analysis: EcgAnalysis, hook: str | None) -> str | None:
    """The user's LLM text for one ECG, or None when no hook is configured.

    Raises ``RuntimeError`` with the reason when the configured hook fails (caller keeps the report).
    """
    if not hook:
        return None
    payload = json.dumps({
        "ecg": analysis.to_json(), "summary": analysis.summary,
        "instructions": ("Write a short, plain-language explanation of these automated ECG measurements for a "
                         "clinician. Do not invent findings that are not in the data; say it is not a diagnosis."),
    })
    if hook.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(hook, data=payload.encode(), headers={"content-type": "application/json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=LLM_TIMEOUT_S) as r:
                body, ctype = r.read().decode("utf-8", errors="replace"), r.headers.get("content-type", "")
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"LLM hook {hook} failed: {exc}") from None
        if ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except json.JSONDecodeError as exc:
                raise RuntimeError(f"LLM hook {hook} sent invalid JSON: {exc}") from None
            return str(data.get("text", "")) if isinstance(data, dict) else str(data)
        return body
    try:
        proc = subprocess.run(shlex.split(hook), input=payload, capture_output=True, text=True,
                              timeout=LLM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"LLM hook command {hook!r} could not run: {exc}") from None
    if proc.returncode != 0:
        raise RuntimeError(f"LLM hook command {hook!r} exited with {proc.returncode}: {proc.stderr.strip()[:300]}")
    return proc.stdout.strip()


def _measure_rows(m: dict) -> list[list[str]]:
    def f(key, unit="", nd=0):
        v = m.get(key)
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, str):
            return v
        return f"{v:.{nd}f} {unit}".strip()

    return [["Measurement", "Value"],
            ["Lead analysed", f"{m.get('lead')} ({m.get('fs'):g} Hz, {m.get('duration_s'):.1f} s)"],
            ["Signal quality", quality_label(m)],
            ["Beats detected", f("n_beats")],
            ["Heart rate (mean)", f("hr_bpm", "bpm", 1)],
            ["Heart rate (5th-95th pct)", f"{f('hr_min_bpm', '', 0)} - {f('hr_max_bpm', 'bpm', 0)}"],
            ["RR mean", f("rr_mean_ms", "ms", 1)],
            ["SDNN", f("sdnn_ms", "ms", 1)],
            ["RMSSD", f("rmssd_ms", "ms", 1)],
            ["RR std within 10 s (median)", f("rr_std_10s_ms", "ms", 1)],
            ["Rhythm", f("rhythm")],
            ["Premature beats (from RR)", f("ectopic_percent", "%", 1)],
            ["P waves present", f("p_present")],
            ["P inverted", f("p_inverted")],
            ["PR interval", f("pr_ms", "ms")],
            ["QRS duration", f("qrs_ms", "ms")],
            ["QT / QTc (Bazett)", f"{f('qt_ms', 'ms')} / {f('qtc_ms', 'ms')}"],
            ["ST level (J+60 ms)", f("st_mv", "mV", 2)]]


def _story(analyses: list[EcgAnalysis], errors: list[str], title: str, narratives: dict[str, str]):
    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, KeepTogether, PageBreak, Paragraph, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    h1, h2, body, small = styles["Title"], styles["Heading2"], styles["BodyText"], styles["Italic"]
    from reportlab.lib.styles import ParagraphStyle

    small_cell = ParagraphStyle("cell", parent=body, fontSize=8, leading=9.5)
    alert = ParagraphStyle("alert", parent=body, textColor=colors.HexColor("#8a1f17"), fontName="Helvetica-Bold")
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                       ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4f2")),
                       ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                       ("FONTSIZE", (0, 0), (-1, -1), 8.5), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    width = 180 * mm

    def table(rows, col_widths=None):
        def cell(c):
            # Plain table cells are not markup (no escaping); long text becomes a wrapping paragraph.
            if not isinstance(c, str):
                return c
            return Paragraph(latin1(c), small_cell) if len(c) > 60 else _latin1_plain(c)

        t = Table([[cell(c) for c in r] for r in rows], colWidths=col_widths, hAlign="LEFT")
        t.setStyle(grid)
        return t

    def image(png: bytes, max_w=width, max_h=110 * mm):
        from reportlab.lib.utils import ImageReader

        iw, ih = ImageReader(io.BytesIO(png)).getSize()
        # Figures are drawn at 100 dpi: never blow one up past its natural size (72 pt per inch).
        scale = min(max_w / iw, max_h / ih, 72.0 / 100.0 * 1.15)
        return Image(io.BytesIO(png), width=iw * scale, height=ih * scale)

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    story = [Paragraph(latin1(title), h1),
             Paragraph(latin1(f"Generated {stamp} by ecgcore app. {len(analyses)} ECG"
                              f"{'s' if len(analyses) != 1 else ''} analysed."), body), Spacer(1, 4 * mm)]
    overview = [["ECG", "Leads", "fs (Hz)", "Duration (s)", "Signal quality", "HR (bpm)", "Rhythm", "Beats"]]
    for a in analyses:
        m = a.measurements
        q = quality_label(m)
        overview.append([a.name, str(a.n_leads), f"{a.fs:g}", f"{a.duration_s:.1f}",
                         Paragraph(latin1(q), small_cell) if len(q) > 24 else q,
                         "-" if m.get("hr_bpm") is None else f"{m['hr_bpm']:.0f}",
                         Paragraph(latin1(m.get("rhythm") or "-"), small_cell),
                         "-" if m.get("n_beats") is None else str(m.get("n_beats"))])
    story.append(table(overview))
    if errors:
        story += [Spacer(1, 3 * mm), Paragraph("Files that could not be analysed", h2)]
        story += [Paragraph(latin1(e), body) for e in errors]
    story += [Spacer(1, 3 * mm), Paragraph(latin1(DISCLAIMER), small)]

    for a in analyses:
        story += [PageBreak(), Paragraph(latin1(f"ECG {a.name}"), h1),
                  Paragraph(latin1(f"{a.n_leads} lead(s): {', '.join(a.leads)}; {a.fs:g} Hz; {a.duration_s:.1f} s."),
                            body)]
        if a.quality_too_low:
            why = a.measurements.get("quality_reason") or "no usable stretch"
            story.append(Paragraph(latin1(f"Signal quality too low: {why}. No diagnosis is given for this ECG."),
                                   alert))
        story.append(Paragraph("Summary", h2))
        story += [Paragraph(latin1(s), body) for s in a.summary]
        if a.name in narratives:
            story += [Paragraph("Narrative (user-configured assistant, not checked by ecgcore)", h2)]
            story += [Paragraph(latin1(p), body) for p in narratives[a.name].split("\n") if p.strip()]
        story += [Paragraph("Measurements", h2), table(_measure_rows(a.measurements), [70 * mm, 100 * mm]),
                  Paragraph(latin1(INTERVALS_UNVALIDATED), small)]
        if a.beat_counts is not None or a.reference_counts is not None:
            classes = list(a.beat_counts or a.reference_counts)
            head = ["AAMI class"] + (["Model (beats-aami)"] if a.beat_counts is not None else []) + \
                (["Reference annotations"] if a.reference_counts is not None else [])
            rows = [head]
            for c in classes:
                row = [c]
                if a.beat_counts is not None:
                    row.append(str(a.beat_counts.get(c, 0)))
                if a.reference_counts is not None:
                    row.append(str(a.reference_counts.get(c, 0)))
                rows.append(row)
            story.append(KeepTogether([Paragraph("Beats per class", h2), table(rows)]))
        notable = a.notable_beats()
        if notable:
            rows = [["Time (s)", "Class", "Probability"]]
            rows += [[f"{b['time_s']:.2f}", b["class"], f"{b['probability']:.3f}"] for b in notable]
            story.append(KeepTogether([Paragraph("Non-N beats (first 20)", h2), table(rows)]))
        if a.segments is not None:
            s = a.segments
            story.append(KeepTogether([Paragraph("10 s segments", h2), table([
                ["Segments", f"{s['positive_class']}", "Share", "Max probability", "at (s)"],
                [str(s["n_segments"]), str(s["n_positive"]), f"{s['positive_percent']:.1f} %",
                 f"{s['max_probability']:.3f}", f"{s['max_at_s']:.0f}"]])]))
            note = models_disagree(a.beat_counts, s)
            if note:
                story.append(Paragraph(latin1(note), small))
        if a.superclass:
            rows = [["Superclass", "Probability", "Flagged (> 0.5)"]]
            rows += [[c, f"{p:.4f}", "YES" if p > 0.5 else "NO"]
                     for c, p in sorted(a.superclass.items(), key=lambda kv: -kv[1])]
            story.append(KeepTogether([Paragraph("12-lead diagnostic superclass", h2), table(rows)]))
        if a.model_notes:
            story += [Paragraph("Models not applied", h2)]
            story += [Paragraph(latin1(f"{k}: {v}"), body) for k, v in a.model_notes.items()]
        for caption, png in a.figures.items():
            story.append(KeepTogether([Paragraph(latin1(caption), h2), image(png)]))
    return story


def build_pdf(analyses: list[EcgAnalysis], *, errors: list[str] | None = None,
              title: str = "ECG Diagnosis Report", narratives: dict[str, str] | None = None) -> bytes:
    """The report of one upload as PDF bytes (A4).

    Parameters
    ----------
    analyses : one per ECG, in upload order
    errors : messages for files that could not be read (listed on the first page)
    narratives : {ECG name: text} from the LLM hook, when configured
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=title, author="ecgcore app")

    def footer(canvas, doc_):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.drawString(15 * mm, 8 * mm, "ecgcore app - automated ECG analysis, not a diagnosis")
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"page {doc_.page}")
        canvas.restoreState()

    doc.build(_story(analyses, errors or [], title, narratives or {}), onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def write_pdf(path: str | os.PathLike, pdf: bytes) -> Path:
    """Write PDF bytes atomically, readable by the owner only (a report holds patient data)."""
    return write_bytes(path, pdf, mode=0o600)
