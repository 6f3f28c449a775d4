"""``ecgcore serve``: the Heartify REST API (API keys by email, ECG denoising) plus arrhythmia ``/predict``.

Seed-compatible routes, JSON contracts, status codes and messages (SPEC §2.4), with these changes:

* API keys are stored only as SHA-256 hashes and shown once, in the key email.
* Verification tokens live in the database (hashed, single use, 24 h expiry), so they survive restarts
  and work across ``--workers`` processes and hosts sharing one PostgreSQL.
* Rate limits per API key, per client IP and per email address (mail bombing), counted in the database.
* Request size limits (413), no key or token in the logs (the access log drops query strings), CORS
  only for configured origins.
* ``/predict`` reads real WFDB records (``.hea`` + ``.dat``: format 212, gains, leads) or ``.npy`` and
  scores every 10 s segment (Normal/Abnormal) and every beat (AAMI N/S/V/F/Q) with probabilities.
* Inference is ONNX Runtime only (``ecgcore.infer``); no training framework is imported.

Storage: SQLite by default, PostgreSQL with ``--database-url``. Email: SMTP with STARTTLS; without an
SMTP server the emails are written to a private outbox folder (mode 0600), never to the log.
"""
from .settings import Settings

__all__ = ["Settings", "create_app"]


def create_app(*args, **kwargs):
    """See :func:`ecgcore.serve.app.create_app` (imported lazily: FastAPI loads only when serving)."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
