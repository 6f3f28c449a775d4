"""Server settings: the seed's environment variable names, sensible embedded defaults.

Every field can come from an environment variable (``Settings.from_env``) and most from a CLI option of
``ecgcore serve``; the CLI writes its options into the environment before starting uvicorn, so that
``--workers N`` processes all build the same settings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

MIN_FS, MAX_FS = 50.0, 2000.0  # sampling rates /predict accepts (Hz)


def default_data_dir() -> Path:
    """Per-user data folder for the embedded database and the dev outbox (XDG on Linux)."""
    env = os.environ.get("ECGCORE_SERVE_HOME")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ecgcore" / "serve"


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


@dataclass
class Settings:
    """Configuration of one ``ecgcore serve`` instance.

    Attributes
    ----------
    database_url : SQLAlchemy URL; default an SQLite file in :func:`default_data_dir`. ``postgresql://...``
        URLs are served through psycopg 3.
    smtp_host, smtp_port, smtp_user, smtp_password, sender_email : SMTP submission with STARTTLS and
        login (login only when a user is set). With no ``smtp_host`` the emails are written to
        ``outbox_dir`` (files readable only by the owner, mode 0600), never to the log: they hold keys.
    smtp_cafile : CA bundle to verify the SMTP server's certificate (default: the system store).
    smtp_starttls : set false only for a trusted loopback relay.
    base_url : public URL of this server, used in the verification link.
    model_version : integer returned as ``modelVersion`` (seed: the MODEL_VERSION env var).
    denoise_model, segments_model, beats_model : bundled names or model folders for the three routes.
    denoise_output : ``"zscore"`` (seed-compatible, default) or ``"input"`` (scale of the request restored);
        a request can override it with ``?output=...``.
    token_ttl_s : lifetime of a verification token (24 h like the seed).
    rate_limit_per_key, rate_limit_per_ip : requests per ``rate_window_s`` (0 disables that limit).
    email_requests_per_hour : generation/deactivation requests per address and hour (stops mail bombing).
    max_body_bytes : limit of a JSON request body; max_upload_bytes : limit of a /predict upload.
    cors_origins : allowed browser origins (empty: no CORS headers; ``*`` for any).
    predict_requires_key : /predict needs a valid ``x-api-key`` like /api/v1/denoising (default true;
        ``ecgcore serve --open-predict`` allows anonymous use, still limited per IP).
    max_duration_s : longest signal /predict accepts (default 1 h), checked on the header / array shape
        before any sample is read; sampling rates outside ``MIN_FS``..``MAX_FS`` Hz are refused the same way.
    max_memory_mb : memory budget of one model run (batch sizes come from the card's bytes per item).
    trusted_proxies : addresses of reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` headers
        are believed (empty: none; then the per-IP limit counts the TCP peer, whatever a client claims).
    model_threads : onnxruntime intra-op threads per model (default 1: a server's parallelism comes from
        its concurrent requests, and several intra-op pools on the same cores only fight; measured here the
        bundled U-Net takes 17 ms CPU per 1300-sample request with 1 thread, 36 ms with 2). 0: all cores,
        for few large requests.
    predict_threads : the same for the /predict classifiers (default 0, all cores: one 30 min record is
        360 attention segments and ~2,000 Conformer beats, worth a whole machine).
    """

    database_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_cafile: str = ""
    smtp_starttls: bool = True
    sender_email: str = "heartify@localhost"
    base_url: str = "http://127.0.0.1:8000"
    model_version: int = 1
    outbox_dir: str = ""
    denoise_model: str = "denoiser"
    segments_model: str = "segments-abnormal"
    beats_model: str = "beats-aami"
    denoise_output: str = "zscore"
    token_ttl_s: int = 24 * 3600
    rate_limit_per_key: int = 600
    rate_limit_per_ip: int = 1200
    rate_window_s: int = 60
    email_requests_per_hour: int = 5
    max_body_bytes: int = 256 * 1024
    max_upload_bytes: int = 64 * 1024 * 1024
    cors_origins: list[str] = field(default_factory=list)
    predict_requires_key: bool = True
    max_duration_s: float = 3600.0
    max_memory_mb: float = 512.0
    trusted_proxies: list[str] = field(default_factory=list)
    model_threads: int = 1
    predict_threads: int = 0

    # env var of each field: the seed's names where the seed had the setting, ECGCORE_SERVE_* otherwise
    ENV = {
        "database_url": "DATABASE_URL", "smtp_host": "SMTP_HOST", "smtp_port": "SMTP_PORT", "smtp_user": "SMTP_USER",
        "smtp_password": "SMTP_PASSWORD", "sender_email": "SENDER_EMAIL", "base_url": "BASE_URL",
        "model_version": "MODEL_VERSION", "smtp_cafile": "SMTP_CA_FILE", "smtp_starttls": "SMTP_STARTTLS",
        "outbox_dir": "ECGCORE_SERVE_OUTBOX", "denoise_model": "ECGCORE_SERVE_DENOISE_MODEL",
        "segments_model": "ECGCORE_SERVE_SEGMENTS_MODEL", "beats_model": "ECGCORE_SERVE_BEATS_MODEL",
        "denoise_output": "ECGCORE_SERVE_DENOISE_OUTPUT", "token_ttl_s": "ECGCORE_SERVE_TOKEN_TTL",
        "rate_limit_per_key": "ECGCORE_SERVE_RATE_PER_KEY", "rate_limit_per_ip": "ECGCORE_SERVE_RATE_PER_IP",
        "rate_window_s": "ECGCORE_SERVE_RATE_WINDOW", "email_requests_per_hour": "ECGCORE_SERVE_EMAILS_PER_HOUR",
        "max_body_bytes": "ECGCORE_SERVE_MAX_BODY", "max_upload_bytes": "ECGCORE_SERVE_MAX_UPLOAD",
        "cors_origins": "CORS_ORIGINS", "predict_requires_key": "ECGCORE_SERVE_PREDICT_REQUIRES_KEY",
        "model_threads": "ECGCORE_SERVE_MODEL_THREADS", "predict_threads": "ECGCORE_SERVE_PREDICT_THREADS",
        "max_duration_s": "ECGCORE_SERVE_MAX_DURATION", "max_memory_mb": "ECGCORE_SERVE_MAX_MEMORY_MB",
        "trusted_proxies": "ECGCORE_SERVE_TRUSTED_PROXIES",
    }

    def __post_init__(self):
        if not self.database_url:
            self.database_url = f"sqlite:///{default_data_dir() / 'serve.db'}"
        if not self.outbox_dir:
            self.outbox_dir = str(default_data_dir() / "outbox")
        if self.denoise_output not in ("zscore", "input"):
            raise ValueError(f"denoise_output must be 'zscore' or 'input', got {self.denoise_output!r}")
        for name in ("token_ttl_s", "rate_window_s", "max_body_bytes", "max_upload_bytes", "max_duration_s",
                     "max_memory_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("rate_limit_per_key", "rate_limit_per_ip", "email_requests_per_hour", "model_threads",
                     "predict_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 disables it), got {getattr(self, name)}")
        self.base_url = self.base_url.rstrip("/")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Settings from environment variables (see ``ENV``), then ``overrides``."""
        environ = os.environ if environ is None else environ
        kwargs = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            kind = types[name]
            try:
                if kind == "int":
                    kwargs[name] = int(raw)
                elif kind == "float":
                    kwargs[name] = float(raw)
                elif kind == "bool":
                    kwargs[name] = _bool(raw)
                elif kind == "list[str]":
                    kwargs[name] = [o.strip() for o in raw.split(",") if o.strip()]
                else:
                    kwargs[name] = raw
            except ValueError as exc:
                raise ValueError(f"environment variable {var}={raw!r}: {exc}") from None
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for worker processes)."""
        out = {}
        for name, var in self.ENV.items():
            value = getattr(self, name)
            out[var] = ",".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) \
                else str(value)
        return out

    def redacted(self) -> dict:
        """Settings for logs and /health: no password, and the database URL without its password."""
        from sqlalchemy.engine import make_url

        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["smtp_password"] = "***" if self.smtp_password else ""
        try:
            d["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:  # an unparsable URL is reported by the engine; never echo it raw
            d["database_url"] = "<unparsable>"
        return d
