"""The FastAPI application behind ``ecgcore app``.

Routes:

* ``GET /``: the upload page (and the models' status);
* ``POST /analyze``: multipart ``files`` (several) + ``fs``; every ECG of the upload is analysed and the
  results page is returned (HTTP 400 with every file's reason when none could be read, 413 when the
  upload is too large);
* ``GET /jobs/{id}/report.pdf``, ``/jobs/{id}/results.json`` and ``/jobs/{id}/predictions.csv``: the PDF
  report, the measurements, and every model row (beats, segments);
* ``GET /healthz``: ``{"status": "ok", "models": {...}}``.

Jobs live in a temporary folder, the last ``keep_jobs`` of them; the folder is deleted when the server stops
(a folder given by the caller is left in place). Uploads over ``max_upload_mb`` are refused from their
``Content-Length`` before the body is read; ECGs longer than ``max_duration_s`` or sampled outside
50-2000 Hz are refused from their headers before their samples are read.
Analysis is CPU work, so the handlers are plain functions (FastAPI runs them in its thread pool).
"""
# No "from __future__ import annotations": FastAPI resolves the handlers' parameter types (UploadFile)
# at definition time, and they are imported inside create_app to keep the web stack optional.
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

from .._fs import atomic_write, write_text
from .analysis import analyse_record
from .models import ModelSuite
from .pages import error_page, index_page, results_page
from .report import LLM_ENV, build_pdf, llm_narrative, write_pdf
from .uploads import MAX_DURATION_S, UploadedFile, parse_uploads

__all__ = ["create_app"]

_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


class _Jobs:
    """Job folders under one temporary root; the oldest are deleted beyond ``keep``."""

    def __init__(self, root: "Path | None", keep: int):
        self.owned = not root  # a temporary root is ours to delete at shutdown
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="ecgcore-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._order: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()

    def new(self) -> tuple[str, Path]:
        job = uuid.uuid4().hex[:16]
        path = self.root / job
        path.mkdir()
        with self._lock:
            self._order[job] = path
            while len(self._order) > self.keep:
                _, old = self._order.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)
        return job, path

    def close(self) -> None:
        """Delete every job (and the temporary root); nothing of the uploads outlives the server."""
        with self._lock:
            for path in self._order.values():
                shutil.rmtree(path, ignore_errors=True)
            self._order.clear()
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def get(self, job: str) -> "Path | None":
        if not _JOB_ID.match(job):
            return None
        with self._lock:
            return self._order.get(job)


def _write_predictions(path: Path, analyses) -> None:
    """Every model row of the upload (beats and segments) as one CSV, written atomically."""
    import csv

    rows = []
    for a in analyses:
        for kind, items in (("beat", a.beat_rows or []), ("segment", a.segment_rows or [])):
            rows += [{"ecg": a.name, "kind": kind, **{k: v for k, v in r.items() if k != "record"}} for r in items]
    fields = ["ecg", "kind"]
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def create_app(suite: ModelSuite | None = None, *, llm: str | None = None, max_upload_mb: float = 200.0,
               keep_jobs: int = 20, jobs_dir: str | os.PathLike | None = None,
               max_duration_s: float = MAX_DURATION_S):
    """Build the app.

    Parameters
    ----------
    suite : the models (default: every bundled model that is installed)
    llm : optional LLM hook (URL or command, see :mod:`ecgcore.app.report`); default ``$ECGCORE_APP_LLM``,
        off when neither is set
    max_upload_mb : largest upload accepted
    keep_jobs : how many finished jobs (PDF + JSON) stay downloadable
    jobs_dir : where job folders go (default: a new temporary folder, deleted when the app stops)
    max_duration_s : longest ECG analysed (default 1 h)
    """
    import atexit
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, File, Form, UploadFile
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from ..serve.body_limit import BodyLimitMiddleware

    suite = suite if suite is not None else ModelSuite()
    llm = llm if llm is not None else (os.environ.get(LLM_ENV) or None)
    jobs = _Jobs(jobs_dir, keep_jobs)
    atexit.register(jobs.close)  # also when the process ends without a lifespan shutdown
    max_bytes = int(max_upload_mb * 1024 * 1024)

    @asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close()

    app = FastAPI(title="ecgcore app", description="ECG diagnosis app: upload ECGs, get measurements, "
                  "model outputs and a PDF report.", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.suite = suite
    app.state.jobs = jobs
    # the multipart body is parsed (and spooled) before the handler runs: refuse oversize uploads up front
    too_large = f"the upload is larger than {max_upload_mb:g} MB"
    app.add_middleware(BodyLimitMiddleware, max_body=max_bytes + 64 * 1024, max_upload=max_bytes + 64 * 1024,
                       message=too_large,
                       render=lambda text: HTMLResponse(error_page([text], "Upload too large"), status_code=413))

    @app.get("/", response_class=HTMLResponse)
    def index():
        return index_page(suite.status(), max_upload_mb=max_upload_mb)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "models": suite.status(), "llm_hook": bool(llm)}

    @app.post("/analyze", response_class=HTMLResponse)
    def analyze(files: list[UploadFile] = File(default=[]), fs: str = Form(default="")):
        from ..infer.core import release_memory

        try:
            return _analyze(files, fs)
        finally:
            release_memory()  # the request's batches and figures, freed, back to the system (on every path)

    def _analyze(files, fs):
        t0 = time.perf_counter()
        uploaded, total = [], 0
        for f in files:
            data = f.file.read(max_bytes + 1 - total)
            total += len(data)
            if total > max_bytes:
                return HTMLResponse(error_page([f"the upload is larger than {max_upload_mb:g} MB"],
                                               "Upload too large"), status_code=413)
            uploaded.append(UploadedFile(f.filename or "", data))
        if not uploaded or all(not u.name and not u.data for u in uploaded):
            return HTMLResponse(error_page(["no files were uploaded; choose .npy, .csv or WFDB (.hea + .dat) files"]),
                                status_code=400)
        job, job_dir = jobs.new()
        work = job_dir / "uploads"
        work.mkdir()
        try:
            records, upload_errors = parse_uploads(uploaded, fs=fs, workdir=work, max_duration_s=max_duration_s)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        errors = [str(e) for e in upload_errors]
        if not records and any(e.too_long for e in upload_errors):
            return HTMLResponse(error_page(errors, "ECG too long"), status_code=413)
        analyses = []
        for rec in records:
            try:
                analyses.append(analyse_record(rec, suite))
            except (ValueError, RuntimeError) as exc:
                errors.append(f"{rec.name}: could not be analysed: {exc}")
        if not analyses:
            return HTMLResponse(error_page(errors), status_code=400)
        narratives, narrative_errors = {}, {}
        if llm:
            for a in analyses:
                try:
                    text = llm_narrative(a, llm)
                    if text:
                        narratives[a.name] = text
                except RuntimeError as exc:
                    narrative_errors[a.name] = str(exc)
        write_pdf(job_dir / "report.pdf", build_pdf(analyses, errors=errors, narratives=narratives))
        results = {"job": job, "ecgs": [a.to_json() for a in analyses], "errors": errors,
                   "narratives": narratives, "narrative_errors": narrative_errors}
        _write_predictions(job_dir / "predictions.csv", analyses)
        write_text(job_dir / "results.json", json.dumps(results, indent=1, default=float))
        return results_page(job, analyses, errors, seconds=time.perf_counter() - t0, narratives=narratives,
                            narrative_errors=narrative_errors)

    def _job_file(job: str, name: str, media: str, download: str | None = None):
        folder = jobs.get(job)
        if folder is None or not (folder / name).is_file():
            return JSONResponse({"detail": f"no job {job!r} (finished jobs are kept for the last {keep_jobs} "
                                           "uploads while the server runs)"}, status_code=404)
        return FileResponse(folder / name, media_type=media, filename=download)

    @app.get("/jobs/{job}/report.pdf")
    def report_pdf(job: str):
        return _job_file(job, "report.pdf", "application/pdf", f"ecg_report_{job}.pdf")

    @app.get("/jobs/{job}/results.json")
    def results_json(job: str):
        return _job_file(job, "results.json", "application/json")

    @app.get("/jobs/{job}/predictions.csv")
    def predictions_csv(job: str):
        return _job_file(job, "predictions.csv", "text/csv", f"ecg_predictions_{job}.csv")

    return app
