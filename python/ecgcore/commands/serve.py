"""``ecgcore serve``: run the REST API under uvicorn."""
from __future__ import annotations

import os

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--database-url", default=None, metavar="URL",
              help="SQLAlchemy URL: sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB "
                   "[env DATABASE_URL; default: an SQLite file in ~/.local/share/ecgcore/serve/].")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes. Keys, tokens and rate limits live in the database, so any number works.")
@click.option("--base-url", default=None, help="Public URL used in emailed links [env BASE_URL; default http://HOST:PORT].")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Allow browser calls from ORIGIN (repeatable; '*' for any) [env CORS_ORIGINS, comma-separated].")
@click.option("--model-version", type=int, default=None, help="modelVersion in denoising answers [env MODEL_VERSION].")
@click.option("--denoise-output", type=click.Choice(["zscore", "input"]), default=None,
              help="Default units of denoised signals: zscore (the seed's, default) or input (scale restored).")
@click.option("--rate-per-key", type=int, default=None, help="Requests per minute per API key (0: unlimited).")
@click.option("--rate-per-ip", type=int, default=None, help="Requests per minute per client IP (0: unlimited).")
@click.option("--model-threads", type=click.IntRange(0, 256), default=None,
              help="onnxruntime threads of the denoiser [default 1: parallelism comes from concurrent requests; "
                   "0: all cores]. /predict's classifiers use ECGCORE_SERVE_PREDICT_THREADS (default all cores).")
@click.option("--outbox", default=None, type=click.Path(file_okay=False),
              help="Without SMTP_HOST, emails are written here (mode 0600) [default: ~/.local/share/ecgcore/serve/outbox].")
@click.option("--open-predict", is_flag=True, default=None,
              help="Let /predict be used without an API key (still limited per IP) [default: a key is required; "
                   "env ECGCORE_SERVE_PREDICT_REQUIRES_KEY=false].")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR",
              help="Believe X-Forwarded-For / X-Forwarded-Proto only from this reverse proxy (IP or CIDR, "
                   "repeatable) [default: from nobody: the per-IP limit counts the TCP peer].")
@click.option("--max-duration", "max_duration_s", type=click.FloatRange(min=1.0), default=None,
              help="Longest signal /predict accepts, in seconds [default 3600], refused (413) before any work.")
@click.option("--max-memory", "max_memory_mb", type=click.FloatRange(min=64.0), default=None,
              help="Memory budget of one model run in MB: batch sizes come from the model card's bytes per "
                   "item [default 512].")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def serve(host, port, database_url, workers, base_url, cors_origins, model_version, denoise_output, rate_per_key,
          rate_per_ip, model_threads, outbox, open_predict, trusted_proxies, max_duration_s, max_memory_mb,
          log_level):
    """Serve the Heartify-compatible REST API: API keys by email, /api/v1/denoising, /predict, /health, /models.

    \b
    One command on embedded defaults:   ecgcore serve
    (SQLite database and an email outbox folder under ~/.local/share/ecgcore/serve; docs at /docs)

    \b
    Environment (the seed's names): DATABASE_URL, SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD,
    SENDER_EMAIL, BASE_URL, MODEL_VERSION; also SMTP_CA_FILE, CORS_ORIGINS and ECGCORE_SERVE_* (see
    ecgcore.serve.settings). Options override the environment. Mail goes over SMTP with STARTTLS.
    """
    import uvicorn

    from ..serve.app import _configure_logging
    from ..serve.db import Store
    from ..serve.settings import Settings

    overrides = {k: v for k, v in {
        "database_url": database_url, "base_url": base_url, "model_version": model_version,
        "denoise_output": denoise_output, "rate_limit_per_key": rate_per_key, "rate_limit_per_ip": rate_per_ip,
        "outbox_dir": outbox, "model_threads": model_threads, "cors_origins": list(cors_origins) or None,
        "predict_requires_key": False if open_predict else None, "trusted_proxies": list(trusted_proxies) or None,
        "max_duration_s": max_duration_s, "max_memory_mb": max_memory_mb}.items() if v is not None}
    if "base_url" not in overrides and not os.environ.get("BASE_URL"):
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        overrides["base_url"] = f"http://{shown}:{port}"
    try:
        settings = Settings.from_env(**overrides)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    try:  # fail here, with a readable message, rather than inside every worker
        store = Store(settings.database_url)
        store.create_schema()
        store.dispose()
    except Exception as exc:
        raise click.ClickException(f"cannot open the database {settings.redacted()['database_url']}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    os.environ.update(settings.to_env())
    _configure_logging()
    click.echo(f"ecgcore serve on http://{host}:{port} (docs: /docs), database "
               f"{settings.redacted()['database_url']}", err=True)
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: a client on loopback could then pick its own
    # address for the per-IP limit. Proxy headers are read only from the proxies named by --trusted-proxy.
    proxies = settings.trusted_proxies
    uvicorn.run("ecgcore.serve.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, server_header=False, proxy_headers=bool(proxies),
                forwarded_allow_ips=",".join(proxies) if proxies else "")
