"""Server-rendered HTML of the app: the upload page, the results page and the error page.

Plain HTML + a few lines of vanilla JS (no build step). Figures are embedded as base64 PNG so a saved
results page is self-contained. Element ids and ``data-*`` attributes are stable: the browser test and
scripts read them (``#pdf-link``, ``.ecg[data-name]``, ``[data-measure]``, ``[data-class]``).
"""
from __future__ import annotations

import base64
import html

from .analysis import INTERVALS_UNVALIDATED, EcgAnalysis, models_disagree, quality_label

__all__ = ["index_page", "results_page", "error_page"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1f3b73;color:#fff;padding:14px 28px}header h1{margin:0;font-size:1.35rem}
header p{margin:4px 0 0;opacity:.85;font-size:.9rem}main{max-width:1180px;margin:0 auto;padding:18px 28px}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin:14px 0}
label{font-weight:600;display:block;margin:10px 0 4px}input[type=number]{width:9em;padding:4px}
button,.button{background:#1f3b73;color:#fff;border:0;border-radius:5px;padding:8px 18px;font-size:1rem;
cursor:pointer;text-decoration:none;display:inline-block}button[disabled]{opacity:.6}
table{border-collapse:collapse;margin:8px 0;font-size:.9rem}td,th{border:1px solid #d0d5dc;padding:4px 9px;text-align:left}
th{background:#e8ecf3}.ok{color:#1d7a33}.missing{color:#a33}.err{color:#a33}.note{color:#555;font-size:.88rem}
img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}.grid{display:flex;flex-wrap:wrap;gap:18px}
.summary p{margin:6px 0;line-height:1.4}#files-list{font-size:.85rem;color:#444}
.quality-low{background:#fdecea;border:1px solid #e0a8a3;border-radius:6px;padding:8px 12px;color:#8a1f17;font-weight:600}
"""

_JS = """
const form = document.getElementById('upload-form');
const input = document.getElementById('files');
const list = document.getElementById('files-list');
input.addEventListener('change', () => {
  list.textContent = Array.from(input.files).map(f => f.name + ' (' + Math.ceil(f.size / 1024) + ' kB)').join(', ');
});
form.addEventListener('submit', (ev) => {
  if (!input.files.length) { ev.preventDefault(); list.textContent = 'Choose at least one file.'; return; }
  const b = document.getElementById('analyse');
  b.disabled = true; b.textContent = 'Analysing ' + input.files.length + ' file(s)...';
});
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _doc(title: str, body: str, script: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{_CSS}</style></head>"
            f"<body><header><h1>ECG Diagnosis - ecgcore</h1><p>Beat classes, rate, rhythm, intervals and a PDF "
            f"report from your ECG files. Research and teaching use; not a medical device.</p></header>"
            f"<main>{body}</main>{f'<script>{script}</script>' if script else ''}</body></html>")


def _models_table(status: dict[str, dict]) -> str:
    rows = []
    for name, st in status.items():
        if st["available"]:
            cls = ", ".join(st.get("classes", []))
            rows.append(f"<tr data-model='{_e(name)}' data-available='1'><td>{_e(name)}</td>"
                        f"<td class='ok'>ready</td><td>{_e(cls)}</td></tr>")
        else:
            rows.append(f"<tr data-model='{_e(name)}' data-available='0'><td>{_e(name)}</td>"
                        f"<td class='missing'>missing</td><td class='note'>{_e(st['reason'])}</td></tr>")
    return ("<table id='models'><tr><th>Model</th><th>Status</th><th>Classes / reason</th></tr>"
            + "".join(rows) + "</table>")


def index_page(status: dict[str, dict], *, max_upload_mb: float) -> str:
    """The upload form with the models' status."""
    body = f"""
<section class='card'>
<form id='upload-form' action='analyze' method='post' enctype='multipart/form-data'>
<label for='files'>ECG files</label>
<input id='files' name='files' type='file' multiple accept='.npy,.csv,.hea,.dat,.atr'>
<div id='files-list'></div>
<p class='note'>Several ECGs at once are fine: every one is analysed. <b>.npy</b>: (n,), (n, leads),
(leads, n) or a batch (k, leads, n) - the shorter axis (at most 16) is the lead axis.
<b>.csv</b>: one column per lead, optional header row. <b>WFDB</b>: select the .hea together with its .dat
(and .atr for reference beat labels). Up to {max_upload_mb:g} MB per upload.</p>
<label for='fs'>Sampling rate for .npy / .csv (Hz)</label>
<input id='fs' name='fs' type='number' min='50' max='20000' step='any' placeholder='e.g. 500'>
<span class='note'>WFDB records carry their own rate.</span>
<p><button id='analyse' type='submit'>Analyse</button></p>
</form></section>
<section class='card'><h2>Models</h2>{_models_table(status)}
<p class='note'>Models run with ONNX Runtime. A missing model is skipped and the report says so.</p></section>"""
    return _doc("ECG Diagnosis - ecgcore", body, _JS)


def _measure_table(m: dict) -> str:
    def cell(key, unit="", nd=0):
        v = m.get(key)
        if v is None:
            text = "-"
        elif isinstance(v, bool):
            text = "yes" if v else "no"
        elif isinstance(v, str):
            text = v
        else:
            text = f"{v:.{nd}f} {unit}".strip()
        return f"<td data-measure='{key}' data-value='{_e(v if v is not None else '')}'>{_e(text)}</td>"

    quality = (f"<td data-measure='quality' data-value='{_e(m.get('quality') or '')}'>"
               f"{_e(quality_label(m))}</td>")
    rows = [("Signal quality", quality), ("Heart rate (mean)", cell("hr_bpm", "bpm", 1)),
            ("Beats detected", cell("n_beats")), ("Rhythm", cell("rhythm")),
            ("Premature beats (from RR)", cell("ectopic_percent", "%", 1)), ("RR mean", cell("rr_mean_ms", "ms", 1)),
            ("SDNN", cell("sdnn_ms", "ms", 1)), ("RMSSD", cell("rmssd_ms", "ms", 1)),
            ("RR std within 10 s", cell("rr_std_10s_ms", "ms", 1)),
            ("P waves present", cell("p_present")), ("PR interval", cell("pr_ms", "ms")),
            ("QRS duration", cell("qrs_ms", "ms")), ("QT", cell("qt_ms", "ms")), ("QTc (Bazett)", cell("qtc_ms", "ms")),
            ("ST level (J+60 ms)", cell("st_mv", "mV", 2))]
    return ("<table class='measurements'><tr><th>Measurement</th><th>Value</th></tr>"
            + "".join(f"<tr><td>{_e(k)}</td>{v}</tr>" for k, v in rows) + "</table>"
            + f"<p class='note intervals-note'>{_e(INTERVALS_UNVALIDATED)}</p>")


def _class_table(a: EcgAnalysis) -> str:
    if a.beat_counts is None and a.reference_counts is None:
        return ""
    classes = list(a.beat_counts or a.reference_counts)
    head = "<th>AAMI class</th>" + ("<th>beats-aami model</th>" if a.beat_counts is not None else "") + \
        ("<th>Reference (.atr)</th>" if a.reference_counts is not None else "")
    rows = []
    for c in classes:
        r = f"<td>{_e(c)}</td>"
        if a.beat_counts is not None:
            r += f"<td data-class='{_e(c)}' data-source='model'>{a.beat_counts.get(c, 0)}</td>"
        if a.reference_counts is not None:
            r += f"<td data-class='{_e(c)}' data-source='reference'>{a.reference_counts.get(c, 0)}</td>"
        rows.append(f"<tr>{r}</tr>")
    return f"<h3>Beats per class</h3><table class='classes'><tr>{head}</tr>{''.join(rows)}</table>"


def _ecg_section(i: int, a: EcgAnalysis, narrative: str | None, narrative_error: str | None) -> str:
    parts = [f"<section class='card ecg' id='ecg-{i}' data-name='{_e(a.name)}'>",
             f"<h2>{_e(a.name)}</h2><p class='note'>{a.n_leads} lead(s): {_e(', '.join(a.leads))}; "
             f"{a.fs:g} Hz; {a.duration_s:.1f} s</p>"]
    if a.quality_too_low:
        parts.append(f"<p class='quality-low' data-quality='too low'>Signal quality too low: "
                     f"{_e(a.measurements.get('quality_reason') or 'no usable stretch')}. No diagnosis is given "
                     f"for this ECG.</p>")
    parts.append("<div class='summary'>" + "".join(f"<p>{_e(s)}</p>" for s in a.summary) + "</div>")
    if narrative:
        parts.append("<h3>Narrative (your configured assistant; not checked by ecgcore)</h3><div class='narrative'>"
                     + "".join(f"<p>{_e(p)}</p>" for p in narrative.split("\n") if p.strip()) + "</div>")
    if narrative_error:
        parts.append(f"<p class='err'>{_e(narrative_error)}</p>")
    parts.append("<div class='grid'><div>" + _measure_table(a.measurements) + "</div><div>" + _class_table(a))
    notable = a.notable_beats()
    if notable:
        parts.append("<h3>Non-N beats (first 20)</h3><table class='notable'><tr><th>time (s)</th><th>class</th>"
                     "<th>probability</th></tr>" + "".join(
                         f"<tr><td>{b['time_s']:.2f}</td><td>{_e(b['class'])}</td><td>{b['probability']:.3f}</td></tr>"
                         for b in notable) + "</table>")
    if a.segments is not None:
        s = a.segments
        parts.append(f"<h3>10 s segments</h3><table class='segments'><tr><th>Segments</th><th>{_e(s['positive_class'])}"
                     f"</th><th>Max probability</th></tr><tr><td data-measure='n_segments'>{s['n_segments']}</td>"
                     f"<td data-measure='n_positive'>{s['n_positive']}</td><td>{s['max_probability']:.3f} at "
                     f"{s['max_at_s']:.0f} s</td></tr></table>")
        note = models_disagree(a.beat_counts, s)
        if note:
            parts.append(f"<p class='note models-disagree'>{_e(note)}</p>")
    if a.superclass:
        rows = "".join(f"<tr><td>{_e(c)}</td><td data-superclass='{_e(c)}'>{p:.4f}</td><td>{'YES' if p > 0.5 else 'NO'}"
                       f"</td></tr>" for c, p in sorted(a.superclass.items(), key=lambda kv: -kv[1]))
        parts.append(f"<h3>12-lead superclass</h3><table class='superclass'><tr><th>Class</th><th>Probability</th>"
                     f"<th>&gt; 0.5</th></tr>{rows}</table>")
    if a.model_notes:
        parts.append("<h3>Models not applied</h3><ul class='model-notes'>" + "".join(
            f"<li data-model='{_e(k)}'><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in a.model_notes.items()) + "</ul>")
    parts.append("</div></div>")
    for caption, png in a.figures.items():
        b64 = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure><figcaption><b>{_e(caption)}</b></figcaption>"
                     f"<img alt='{_e(caption)}' src='data:image/png;base64,{b64}'></figure>")
    parts.append("</section>")
    return "".join(parts)


def results_page(job_id: str, analyses: list[EcgAnalysis], errors: list[str], *, seconds: float,
                 narratives: dict[str, str] | None = None, narrative_errors: dict[str, str] | None = None) -> str:
    """All ECGs of one upload, with the PDF and JSON download links."""
    narratives = narratives or {}
    narrative_errors = narrative_errors or {}
    rows = []
    for i, a in enumerate(analyses):
        hr = a.measurements.get("hr_bpm")
        rows.append(f"<tr><td><a href='#ecg-{i}'>{_e(a.name)}</a></td><td>{a.n_leads}</td><td>{a.duration_s:.1f}</td>"
                    f"<td>{_e(quality_label(a.measurements))}</td>"
                    f"<td>{'-' if hr is None else f'{hr:.0f}'}</td>"
                    f"<td>{_e(a.measurements.get('rhythm') or '-')}</td></tr>")
    rows = "".join(rows)
    err_html = ""
    if errors:
        err_html = ("<div class='card'><h2 class='err'>Files not analysed</h2><ul id='upload-errors'>"
                    + "".join(f"<li>{_e(e)}</li>" for e in errors) + "</ul></div>")
    body = (f"<section class='card' id='overview' data-job='{_e(job_id)}' data-count='{len(analyses)}'>"
            f"<h2>{len(analyses)} ECG{'s' if len(analyses) != 1 else ''} analysed</h2>"
            f"<p class='note'>in {seconds:.1f} s</p>"
            f"<p><a id='pdf-link' class='button' href='jobs/{_e(job_id)}/report.pdf' download='ecg_report.pdf'>"
            f"Download PDF report</a> <a id='json-link' href='jobs/{_e(job_id)}/results.json'>results.json</a> "
            f"<a id='csv-link' href='jobs/{_e(job_id)}/predictions.csv'>predictions.csv</a> "
            f"&nbsp; <a href='./'>Analyse other files</a></p>"
            f"<table><tr><th>ECG</th><th>Leads</th><th>Duration (s)</th><th>Signal quality</th><th>HR (bpm)</th>"
            f"<th>Rhythm</th></tr>{rows}"
            f"</table></section>{err_html}"
            + "".join(_ecg_section(i, a, narratives.get(a.name), narrative_errors.get(a.name))
                      for i, a in enumerate(analyses)))
    return _doc("ECG results - ecgcore", body)


def error_page(errors: list[str], status_text: str = "Nothing could be analysed") -> str:
    """The page for an upload where no ECG could be read, with every file's reason."""
    body = (f"<section class='card'><h2 class='err'>{_e(status_text)}</h2><ul id='upload-errors'>"
            + "".join(f"<li>{_e(e)}</li>" for e in errors)
            + "</ul><p><a class='button' href='./'>Back to the upload form</a></p></section>")
    return _doc("ECG upload error - ecgcore", body)
