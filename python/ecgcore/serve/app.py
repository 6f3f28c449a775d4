"""The Heartify-compatible REST API plus ``/predict``, ``/health`` and ``/models`` (FastAPI).

Routes and JSON contracts follow the seed (SPEC §2.4): every error is ``{"error": "..."}`` with the
seed's status code and message. What changed, and why, is in the package docstring
(``ecgcore.serve``).
"""
from __future__ import annotations

import html
import json
import logging
import math
import re
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from .db import Store
from ..infer.limits import MAX_FS, MIN_FS, SignalTooLong, check_signal_size, npy_header
from .body_limit import BodyLimitMiddleware
from .inference import ModelUnavailable, ServeModels
from .keys import normalize_email, valid_email
from .mail import MailError, OutboxMailer, deactivated_message, key_message, make_mailer, verification_message
from .ratelimit import RateLimiter
from .settings import Settings

log = logging.getLogger("ecgcore.serve")
access_log = logging.getLogger("ecgcore.serve.access")

API_KEY_HEADER = "x-api-key"
PREDICT_PATH = "/predict"


class ApiError(StarletteHTTPException):
    """An error answered as ``{"error": message, **extra}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **extra):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.extra = extra


def _error(status: int, message: str, headers=None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


# ---- ASGI middleware --------------------------------------------------------------------------------------
class AccessLogMiddleware:
    """One log line per request: method, path WITHOUT query string (tokens travel there), status, time."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def tracked_send(msg):
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            client = scope.get("client") or ("-", 0)
            access_log.info("%s %s %s %d %.1fms", client[0], scope["method"], scope["path"], status[0],
                            (time.perf_counter() - t0) * 1e3)


# ---- helpers ----------------------------------------------------------------------------------------------
async def _json_object(request: Request) -> dict:
    raw = await request.body()
    try:
        data = _loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Request body must be valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return data


def _loads(raw: bytes):
    """Parse a JSON body: orjson when installed (the hot path of /denoising), else the standard library.

    orjson rejects the NaN/Infinity literals outright; the standard parser accepts them, so the caller can
    answer the precise "finite numbers" error instead of a generic one.
    """
    try:
        import orjson
    except ImportError:
        orjson = None
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # NaN literals, integers beyond 64 bits: the standard parser reads them for a precise error
    try:
        return json.loads(raw)
    except RecursionError:  # e.g. 100,000 nested "[": invalid for this API, not a 500
        raise ValueError("JSON nested too deeply") from None


def _signal_response(model_version: int, y: np.ndarray, units: str) -> Response:
    """``{"modelVersion", "denoised_signal"}``; orjson writes the float32 array directly when installed."""
    headers = {"X-Signal-Units": units}
    try:
        import orjson
    except ImportError:
        return JSONResponse({"modelVersion": model_version, "denoised_signal": y.astype(np.float64).tolist()},
                            headers=headers)
    body = orjson.dumps({"modelVersion": model_version, "denoised_signal": np.ascontiguousarray(y, np.float32)},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=headers)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limited(verdict, what: str, window: int):
    if not verdict.allowed:
        raise ApiError(429, f"Rate limit exceeded: at most {verdict.limit} requests per {window} s per {what}. "
                            f"Retry in {verdict.retry_after_s} s.",
                       headers={"Retry-After": str(verdict.retry_after_s)})


def _window_text(window: tuple[float, int] | None) -> str:
    """'10 s of ECG at 130 Hz' for the denoiser's (rate, samples)."""
    return f"{window[1] / window[0]:g} s of ECG at {window[0]:g} Hz" if window else "one window of ECG"


def _signal_from_body(data: dict, window: tuple[float, int] | None) -> np.ndarray:
    """The request's samples; ``window`` = the denoiser's (rate, samples), None when its card is unreadable
    (the model is then unavailable and the request fails after this check)."""
    if "ecg_signal" not in data:
        n = window[1] if window else "N"
        raise ApiError(400, "Missing required field: ecg_signal",
                       expected_format={"ecg_signal": f"[{n} numbers: {_window_text(window)}]"})
    values = data["ecg_signal"]
    if not isinstance(values, list):
        raise ApiError(400, "ecg_signal must be an array")
    if window and len(values) != window[1]:
        raise ApiError(400, f"ecg_signal must have exactly {window[1]} values (got {len(values)})",
                       note=f"The model takes {_window_text(window)}: split longer signals into {window[1]}-sample "
                            "chunks and zero-pad the last one.")
    for i, v in enumerate(values):
        # bool is an int subclass in Python, but true/false are not samples
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ApiError(400, "ecg_signal must contain only numbers",
                           details=f"value at index {i} is {json.dumps(v)[:40]}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ApiError(400, "ecg_signal must contain only finite numbers",
                           details=f"value at index {i} is {v!r} (NaN and infinity are not samples)")
    try:
        x = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer literal beyond the float range
        x = np.array([np.inf])
    if not np.all(np.isfinite(x)):
        raise ApiError(400, "ecg_signal must contain only finite numbers", details="a value overflows a float")
    return x


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERIFIED_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Verification Successful!</title></head>
<body style="font-family:sans-serif;text-align:center;margin-top:10%"><h1>Verification Successful!</h1>
<p>{message}</p></body></html>"""


# ---- the app ----------------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None, *, mailer=None, models: ServeModels | None = None,
               store: Store | None = None) -> FastAPI:
    """Build the API.

    Parameters
    ----------
    settings : configuration (default: ``Settings.from_env()``).
    mailer, models, store : injected collaborators (default: built from ``settings``); tests pass their own.
    """
    settings = settings or Settings.from_env()
    store = store or Store(settings.database_url)
    mailer = mailer or make_mailer(settings)
    models = models or ServeModels(settings.denoise_model, settings.segments_model, settings.beats_model,
                                   threads=settings.model_threads, predict_threads=settings.predict_threads,
                                   max_memory=int(settings.max_memory_mb * 2**20))
    limiter = RateLimiter(store, {"ip": (settings.rate_limit_per_ip, settings.rate_window_s),
                                  "key": (settings.rate_limit_per_key, settings.rate_window_s),
                                  "email": (settings.email_requests_per_hour, 3600)})

    @asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(store.create_schema)
        await run_in_threadpool(models.load)
        log.info("ecgcore serve %s: database %s; mail via %s", __version__,
                 settings.redacted()["database_url"], mailer.describe())
        if isinstance(mailer, OutboxMailer):
            log.warning("no SMTP_HOST configured: emails (verification links, API keys) are written to %s "
                        "(mode 0600), not sent. Set SMTP_HOST/SMTP_PORT/SMTP_USER/SMTP_PASSWORD for real mail.",
                        mailer.folder)
        yield
        store.dispose()

    app = FastAPI(title="ecgcore serve — Heartify API", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,  # /docs is served below from the package, not from a CDN
                  description="ECG denoising with API keys (Heartify-compatible), arrhythmia prediction from WFDB "
                              "records, health and model cards. Errors are JSON objects {\"error\": ...}.")
    app.state.settings, app.state.store, app.state.mailer, app.state.models = settings, store, mailer, models
    app.state.limiter = limiter

    # the last added runs first: access log around everything, CORS headers also on 413 answers
    app.add_middleware(BodyLimitMiddleware, max_body=settings.max_body_bytes, max_upload=settings.max_upload_bytes,
                       upload_paths=(PREDICT_PATH,))
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=[API_KEY_HEADER, "content-type"], expose_headers=["Retry-After",
                                                                                          "X-Signal-Units"],
                           max_age=600)
    app.add_middleware(AccessLogMiddleware)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        extra = getattr(exc, "extra", {})
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and not isinstance(exc, ApiError):
            detail = f"Not found: {request.url.path}"
        return _error(exc.status_code, detail, headers=getattr(exc, "headers", None), **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        parts = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())[1:]) or "request", e.get("msg"))
                 for e in exc.errors()]
        return _error(400, "Invalid request: " + "; ".join(parts))

    @app.exception_handler(OperationalError)
    async def _database_down(request, exc):
        # the database is unreachable or refused the connection: a retryable condition, not a bug
        log.error("database error on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
        return _error(503, "Service unavailable: the database cannot be reached", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request, exc):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "Internal server error")

    def ip_limit(request: Request):
        _limited(limiter.check("ip", _client_ip(request)), "IP address", settings.rate_window_s)

    def ip_limit_and_authenticate(request: Request):
        """Per-IP count, key lookup and per-key count in ONE transaction (one commit per request); the
        errors are raised after the commit so that refused attempts still count against the IP."""
        key = request.headers.get(API_KEY_HEADER)
        owner = key_verdict = None
        with store.transaction() as conn:
            ip_verdict = limiter.check("ip", _client_ip(request), conn)
            if ip_verdict.allowed and key and len(key) <= 256:
                owner = store.authenticate(key, conn)
                if owner is not None:
                    key_verdict = limiter.check("key", str(owner.id), conn)
        _limited(ip_verdict, "IP address", settings.rate_window_s)
        if not key:
            raise ApiError(401, "Missing x-api-key header")
        if owner is None:
            raise ApiError(401, "Invalid or inactive API key")
        _limited(key_verdict, "API key", settings.rate_window_s)
        return owner

    def read_email(data: dict) -> str:
        if data.get("email") in (None, ""):
            raise ApiError(400, "Missing required field: email")
        if not isinstance(data["email"], str):
            raise ApiError(400, "Invalid email format")
        email = normalize_email(data["email"])
        if not valid_email(email):
            raise ApiError(400, "Invalid email format")
        return email

    def start_verification(request: Request, email: str, action: str):
        _limited(limiter.check("email", email), "email address (per hour)", 3600)
        token = store.create_token(email, action, settings.token_ttl_s)
        link = f"{settings.base_url}/api/v1/api-keys/verify?token={token}"
        try:
            mailer.send(verification_message(settings.sender_email, email, action, link, settings.token_ttl_s))
        except MailError:
            store.delete_token(token)
            raise ApiError(500, "Failed to send verification email") from None
        return {"message": "Verification email sent. Please check your inbox.", "email": email}

    # ---- API keys -----------------------------------------------------------------------------------------
    @app.post("/api/v1/api-keys/generation", tags=["api-keys"],
              summary="Request an API key: a single-use verification link is emailed to the address",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}}}}})
    async def generate_key(request: Request):
        data = await _json_object(request)

        def work():
            ip_limit(request)
            email = read_email(data)
            if store.has_active_key(email):
                raise ApiError(409, "Email already has an active API key. Please deactivate it first.")
            return start_verification(request, email, "generate")

        return await run_in_threadpool(work)

    @app.post("/api/v1/api-keys/deactivation", tags=["api-keys"],
              summary="Request deactivation of the active key: a confirmation link is emailed",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["email"], "properties": {"email": {"type": "string"}}}}}}})
    async def deactivate_key(request: Request):
        data = await _json_object(request)

        def work():
            ip_limit(request)
            email = read_email(data)
            if not store.has_active_key(email):
                raise ApiError(404, "No active API key found for this email")
            return start_verification(request, email, "deactivate")

        return await run_in_threadpool(work)

    @app.get("/api/v1/api-keys/verify", tags=["api-keys"], response_class=HTMLResponse,
             summary="Follow the emailed link: generates (and emails) the key, or deactivates it")
    async def verify(request: Request, token: str | None = Query(None, max_length=256)):
        def work():
            ip_limit(request)
            if not token:
                return PlainTextResponse("Invalid verification link", status_code=400)
            result = store.consume_token(token)
            if result.status == "expired":
                raise ApiError(400, "Token has expired")
            if result.status != "ok":
                raise ApiError(400, "Invalid or expired token")
            if result.action == "generate":
                issued = store.issue_key(result.email)
                if issued is None:  # verified twice, or a key was made from another link meanwhile
                    raise ApiError(409, "Email already has an active API key. Please deactivate it first.")
                key, row_id = issued
                try:
                    mailer.send(key_message(settings.sender_email, result.email, key))
                except MailError:
                    # the key exists only in the failed email: disable it rather than leave an unusable live key
                    store.deactivate_key_id(row_id)
                    raise ApiError(500, "API key generated but failed to send email") from None
                message = f"Your API key has been sent to {result.email}."
            else:
                if not store.deactivate_active_key(result.email):
                    raise ApiError(400, "No active API key found for this email")
                try:
                    mailer.send(deactivated_message(settings.sender_email, result.email))
                except MailError:
                    raise ApiError(500, "API key deactivated but failed to send confirmation email") from None
                message = f"The API key of {result.email} has been deactivated."
            # the URL held a token: keep it out of caches and of any Referer header
            return HTMLResponse(_VERIFIED_PAGE.format(message=html.escape(message)),
                                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

        return await run_in_threadpool(work)

    # ---- denoising ----------------------------------------------------------------------------------------
    # The request window is the denoiser card's (10 s at 130 Hz, 1300 values, for the bundled model).
    window = models.denoise_window()
    samples = {"minItems": window[1], "maxItems": window[1]} if window else {}

    @app.post("/api/v1/denoising", tags=["denoising"],
              summary=f"Denoise {_window_text(window)}{f' ({window[1]} values)' if window else ''}; "
                      "needs the x-api-key header",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["ecg_signal"], "properties": {"ecg_signal": {
                      "type": "array", "items": {"type": "number"}, **samples}}}}}},
                  "security": [{"ApiKeyAuth": []}]})
    async def denoise(request: Request,
                      output: str | None = Query(None, pattern="^(zscore|input)$",
                                                 description="zscore: the seed's z-score units (default unless the "
                                                             "server is configured otherwise); input: the request's "
                                                             "mean and scale restored")):
        raw = await request.body()

        def work():
            ip_limit_and_authenticate(request)
            try:
                data = _loads(raw) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "Request body must be valid JSON") from None
            if not isinstance(data, dict):
                raise ApiError(400, "Request body must be a JSON object")
            x = _signal_from_body(data, models.denoise_window())
            mode = output or settings.denoise_output
            try:
                y = models.denoise(x, restore_scale=(mode == "input"))
            except ModelUnavailable as exc:
                raise ApiError(500, "Model initialization error", details=str(exc)) from None
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            return _signal_response(settings.model_version, y, mode)

        return await run_in_threadpool(work)

    # ---- prediction ---------------------------------------------------------------------------------------
    @app.post(PREDICT_PATH, tags=["prediction"],
              summary="Normal/Abnormal per 10 s segment and AAMI class per beat for uploaded records",
              description="Multipart field `file` (repeatable): a WFDB record as its `.hea` + `.dat` (optionally "
                          "`.atr`: then beats are taken at the annotated R peaks), or `.npy` arrays "
                          "[n_samples] / [n_samples, n_leads] with form field `fs` (default 360 Hz). Every record "
                          "uploaded is scored. Needs the `x-api-key` header unless the server runs with `--open-predict`. "
                          "Records longer than the server's --max-duration (default 1 h) or sampled outside "
                          "50-2000 Hz are refused before any work (413 / 400).",
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                  "type": "object", "required": ["file"], "properties": {
                      "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                      "fs": {"type": "number"}}}}}},
                  "security": [{"ApiKeyAuth": []}]})
    async def predict(request: Request):
        def gate():
            if settings.predict_requires_key or request.headers.get(API_KEY_HEADER):  # a key sent is checked
                ip_limit_and_authenticate(request)
            else:
                ip_limit(request)

        await run_in_threadpool(gate)
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ApiError(400, "Upload the record as multipart/form-data with field 'file' (.hea + .dat, or .npy)")
        try:
            form = await request.form(max_files=64, max_fields=16)
        except ApiError:
            raise
        except Exception as exc:  # malformed multipart bodies raise parser-specific errors
            raise ApiError(400, f"Could not parse the multipart upload: {exc}") from None
        tmp = Path(tempfile.mkdtemp(prefix="ecgcore-predict-"))
        try:
            uploads = form.getlist("file")
            if not uploads or any(isinstance(u, str) for u in uploads):
                raise ApiError(400, "Missing required field: file (upload .hea + .dat, or .npy)")
            fs = _form_fs(form.get("fs"))
            names = []
            for up in uploads:
                name = Path(up.filename or "").name
                if not _SAFE_NAME.match(name) or name != (up.filename or ""):
                    raise ApiError(400, f"Upload file name {up.filename!r} is not allowed: a plain name of letters, "
                                        "digits, '.', '_', '-'")
                if name in names:
                    raise ApiError(400, f"File {name!r} was uploaded twice")
                names.append(name)
                with open(tmp / name, "wb") as f:
                    shutil.copyfileobj(up.file, f, length=1 << 20)
            return await run_in_threadpool(_predict_files, tmp, names, fs, models, settings)
        finally:
            await form.close()  # the spooled upload files
            shutil.rmtree(tmp, ignore_errors=True)

    # ---- documentation: Swagger UI from the package (works offline), the x-api-key scheme declared -------
    _install_docs(app)

    # ---- service ------------------------------------------------------------------------------------------
    @app.get("/health", tags=["service"], summary="Liveness, database reachability and model status")
    async def health():
        try:
            await run_in_threadpool(store.ping)
            db_status = "ok"
        except Exception as exc:
            log.error("health: database unreachable: %s", type(exc).__name__)
            db_status = "unreachable"
        body = {"status": "ok" if db_status == "ok" else "degraded", "version": __version__,
                "database": db_status, "database_backend": store.dialect, "models": models.status()}
        return JSONResponse(body, status_code=200 if db_status == "ok" else 503)

    @app.get("/models", tags=["service"], summary="Cards of the models this server runs")
    async def list_models():
        # strict JSON: a card's undefined metric (NaN) is null, never a 500
        from ..export.card import strict_json_value

        return strict_json_value({"models": await run_in_threadpool(models.cards), "status": models.status()})

    return app


def _install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` package (no CDN: the page works offline), and the
    ``x-api-key`` header declared as the API's security scheme in the OpenAPI document."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.openapi.utils import get_openapi

    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"ApiKeyAuth": {
                "type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                "description": "The API key emailed by /api/v1/api-keys/generation."}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    try:
        import swagger_ui_bundle
        from starlette.staticfiles import StaticFiles
    except ImportError:  # the serve extra brings it; without it there is the JSON document only
        return
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - docs",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")


def _predict_files(tmp: Path, names: list[str], fs, models: ServeModels, settings: Settings) -> JSONResponse:
    from ..io import read_record

    by_ext: dict[str, list[str]] = {}
    for n in names:
        by_ext.setdefault(Path(n).suffix.lower(), []).append(n)
    unsupported = [n for ext, ns in by_ext.items() if ext not in (".hea", ".dat", ".atr", ".npy") for n in ns]
    if unsupported:
        raise ApiError(400, f"Unsupported file type: {', '.join(unsupported)} (upload .hea + .dat [+ .atr], or .npy)")
    heads = {Path(n).stem for n in by_ext.get(".hea", [])}
    orphans = [n for n in by_ext.get(".dat", []) + by_ext.get(".atr", []) if Path(n).stem not in heads]
    if orphans:
        raise ApiError(400, f"{', '.join(orphans)}: uploaded without the record's .hea header "
                            "(a WFDB record is its .hea plus the .dat files it names)")
    targets = [tmp / n for n in by_ext.get(".hea", [])] + [tmp / n for n in by_ext.get(".npy", [])]
    # every upload's size is checked from its header before any record is decoded or scored
    for path in targets:
        try:
            if path.suffix == ".npy":
                shape, _ = npy_header(path)
                if len(shape) not in (1, 2) or 0 in shape:
                    raise ValueError(f"expected a [n_samples] or [n_samples, n_leads] array, got shape {shape}")
                check_signal_size(path.name, max(shape), fs or 360.0, min(shape) if len(shape) == 2 else 1,
                                  max_duration_s=settings.max_duration_s)
            else:
                hdr = _check_header_files(path, set(names))
                check_signal_size(path.name, hdr.sig_len or 0, hdr.fs, hdr.n_sig,
                                  max_duration_s=settings.max_duration_s)
        except SignalTooLong as exc:
            raise ApiError(413, str(exc)) from None
        except (OSError, ValueError, KeyError, IndexError, OverflowError, TypeError) as exc:
            raise ApiError(400, f"{path.name}: could not read the record: {str(exc).replace(str(tmp) + '/', '')}") \
                from None
    results = []
    for path in targets:
        try:
            if path.suffix == ".npy":
                rec = read_record(path, fs=fs or 360.0)
            else:
                rec = read_record(path.with_suffix(""))
            if rec.duration > settings.max_duration_s:  # a header without a sample count
                raise SignalTooLong(f"{path.name}: {rec.duration / 60:.1f} min of ECG; this server accepts at most "
                                    f"{settings.max_duration_s / 60:.0f} min per record")
            if not np.isfinite(rec.signal).all() or np.abs(rec.signal).max(initial=0.0) > 1e12:
                raise ValueError("samples must be finite numbers within ±1e12 (NaN, infinities and values "
                                 "near the float limit are not ECG)")
        except SignalTooLong as exc:
            raise ApiError(413, str(exc)) from None
        except (OSError, ValueError, KeyError, IndexError, OverflowError, TypeError) as exc:
            raise ApiError(400, f"{path.name}: could not read the record: {str(exc).replace(str(tmp) + '/', '')}") \
                from None
        try:
            pred = models.predict(rec)
        except ModelUnavailable as exc:
            raise ApiError(503, "Model not available", details=str(exc)) from None
        except ValueError as exc:  # e.g. a record too short for one segment
            raise ApiError(400, f"{path.name}: {str(exc).replace(str(tmp) + '/', '')}") from None
        seg = pred["segments"]
        classes = [r.get("class") for r in seg["rows"] if r.get("class")] if seg else []
        results.append({
            "record": rec.name or path.stem, "fs": rec.fs, "leads": list(rec.leads), "n_samples": rec.n_samples,
            "duration_s": round(rec.duration, 3),
            # the seed answered one class for the first 10 s only; here a record is Abnormal if any segment is
            # None when no segment could be classified (no model, or the signal quality is too low throughout)
            "predicted_class": None if not classes else ("Abnormal" if "Abnormal" in classes else "Normal"),
            "segments": seg, "beats": pred["beats"], "unavailable": pred["errors"],
        })
    return JSONResponse({"modelVersion": settings.model_version,
                         "predicted_class": results[0]["predicted_class"], "records": results})


def _form_fs(raw) -> float | None:
    if raw in (None, ""):
        return None
    try:
        fs = float(raw)
    except (TypeError, ValueError):
        raise ApiError(400, f"fs must be a number (Hz), got {str(raw)[:40]!r}") from None
    if not math.isfinite(fs) or not MIN_FS <= fs <= MAX_FS:
        raise ApiError(400, f"fs must be a sampling rate between {MIN_FS:g} and {MAX_FS:g} Hz, got {raw!r}")
    return fs


def _check_header_files(hea: Path, uploaded: set[str]):
    """A header may only name signal files uploaded with it: no paths, so it cannot read the server's files."""
    from ..io import read_header

    hdr = read_header(hea)
    if hdr.multi_segment:
        raise ValueError("multi-segment WFDB records are not accepted by /predict; upload a single-segment record")
    for spec in hdr.signals:
        if spec.file_name != Path(spec.file_name).name or spec.file_name not in uploaded:
            raise ValueError(f"the header names signal file {spec.file_name!r}, which was not uploaded with it "
                             f"(upload {hea.name} together with {spec.file_name})")
    return hdr


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``--factory``): settings from the environment, as ``ecgcore serve`` sets it."""
    _configure_logging()
    return create_app(Settings.from_env())


def _configure_logging() -> None:
    root = logging.getLogger("ecgcore.serve")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
