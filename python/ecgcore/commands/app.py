"""``ecgcore app``: start the ECG diagnosis web app (FastAPI + uvicorn)."""
from __future__ import annotations

import os
import sys
import threading

import click

from ..app.report import LLM_ENV


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@click.command("app")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (0.0.0.0 to serve other machines; there is no authentication).")
@click.option("--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--open/--no-open", "open_browser", default=None,
              help="Open the page in the default browser [default: open when a desktop session is detected].")
@click.option("--llm", default=None, metavar="URL|COMMAND",
              help=f"Optional narrative for the report from a model YOU configure: an http(s) URL that takes the "
                   f"results JSON by POST, or a command reading it on stdin. Off by default (also ${LLM_ENV}).")
@click.option("--max-upload-mb", default=200.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Largest upload accepted.")
@click.option("--max-duration", "max_duration_s", default=3600.0, show_default=True, type=click.FloatRange(min=1.0),
              help="Longest ECG analysed, in seconds; longer uploads are refused before their samples are read.")
@click.option("--max-memory", default=512.0, show_default=True, type=click.FloatRange(min=16.0),
              help="Memory budget (MB) of one model batch; batch sizes come from each model card.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="ONNX Runtime threads per model.")
def app(host, port, open_browser, llm, max_upload_mb, max_duration_s, max_memory, threads):
    """Start the ECG diagnosis app and print its address.

    Upload .npy, .csv or WFDB (.hea + .dat [+ .atr]) files, several at once: every ECG is analysed with
    R-peaks, heart rate, RR statistics and rhythm, median-beat intervals (PR, QRS, QT), the bundled
    models (beats-aami per beat, segments-abnormal per 10 s with attention, hubert-ptbxl-super for
    12-lead ECGs) and a PDF report with the plots, tables and a plain-language summary.
    Models that are not installed are skipped, and the page says so.

    \b
    Example:
      ecgcore app                 # then open http://127.0.0.1:8501
    """
    try:
        import uvicorn
    except ImportError:
        raise click.ClickException("the app needs the serve extra: pip install 'ecgcore[serve]'") from None
    from ..app.models import ModelSuite
    from ..app.server import create_app

    application = create_app(ModelSuite(threads=threads, max_memory=int(max_memory * 2**20)), llm=llm,
                             max_upload_mb=max_upload_mb, max_duration_s=max_duration_s)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    click.echo(f"ecgcore app: {url}  (Ctrl+C to stop)")
    if open_browser is None:
        open_browser = _has_display()
    if open_browser:
        import webbrowser

        threading.Timer(1.5, lambda: webbrowser.open(url)).start()
    uvicorn.run(application, host=host, port=port, log_level="warning")
