"""`ecgcore serve` as a real process: the README's one command, the whole flow over TCP, and a bounded load test.

The load figures (requests/s, p50/p99 latency) are printed (run with ``-s``); timings are not asserted,
only correctness of every answer.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_helpers import SMTP_PASSWORD, SMTP_USER, free_port, hammer, link_token, mailed_key, percentile

import ecgcore

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
MITDB = Path(ecgcore.__file__).parent / "data" / "mitdb"
SIGNAL = (np.sin(np.linspace(0, 40, 1300)) + 0.05 * np.random.default_rng(3).standard_normal(1300)).tolist()


class ServeProcess:
    def __init__(self, tmp: Path, args=(), env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        # HOME moved to tmp: the server finds its embedded defaults (~/.local/share/ecgcore/serve) there
        full_env = {**os.environ, "PYTHONPATH": _PKG_PARENT, "OMP_NUM_THREADS": "1",
                    "HOME": str(tmp / "home"), **(env or {})}
        self.data_dir = tmp / "home" / ".local" / "share" / "ecgcore" / "serve"
        for var in ("DATABASE_URL", "SMTP_HOST", "BASE_URL", "XDG_DATA_HOME", "ECGCORE_SERVE_HOME"):
            if env is None or var not in env:
                full_env.pop(var, None)
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "ecgcore.cli", "serve", "--port", str(self.port), *args],
                                     env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=tmp)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"ecgcore serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"ecgcore serve did not answer /health within 90 s:\n{self.log.read_text()}")
            time.sleep(0.3)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.log.read_text()


def _model_env(test_models) -> dict:
    """The test models only where no bundled model is installed: with the bundled ones the server runs on
    its true defaults."""
    from ecgcore.export import list_bundled

    bundled = list_bundled()
    env = {}
    for role, name, var in (("denoise", "denoiser", "ECGCORE_SERVE_DENOISE_MODEL"),
                            ("segments", "segments-abnormal", "ECGCORE_SERVE_SEGMENTS_MODEL"),
                            ("beats", "beats-aami", "ECGCORE_SERVE_BEATS_MODEL")):
        if name not in bundled:
            env[var] = test_models[role]
    return env


def test_serve_help_and_bad_database():
    env = {**os.environ, "PYTHONPATH": _PKG_PARENT}
    out = subprocess.run([sys.executable, "-m", "ecgcore.cli", "serve", "--help"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--database-url" in out.stdout and "STARTTLS" in out.stdout
    out = subprocess.run([sys.executable, "-m", "ecgcore.cli", "serve", "--database-url", "mysql://u:pw@h/db"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "cannot open the database" in out.stderr and "pw@" not in out.stderr


def test_no_training_framework_is_imported():
    code = ("import sys; from ecgcore.serve.app import create_app; from ecgcore.commands.serve import serve; "
            "import ecgcore.serve.inference, ecgcore.infer; "
            "bad = [m for m in ('torch', 'tensorflow', 'mlx', 'keras') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": _PKG_PARENT},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_one_command_on_embedded_defaults(tmp_path, test_models, smtp_server):
    """`ecgcore serve` with no database option: SQLite in the user's data dir; mail over SMTP + STARTTLS."""
    env = _model_env(test_models) | {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server.port), "SMTP_USER": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD, "SMTP_CA_FILE": str(smtp_server.cafile), "SENDER_EMAIL": "api@heartify.test",
        "MODEL_VERSION": "3"}
    srv = ServeProcess(tmp_path, env=env)
    try:
        c = httpx.Client(base_url=srv.url, timeout=60)
        assert c.get("/health").json()["database_backend"] == "sqlite"
        assert (srv.data_dir / "serve.db").is_file()
        r = c.post("/api/v1/api-keys/generation", json={"email": "proc@example.com"})
        assert r.status_code == 200
        msg = smtp_server.wait_for(1)[0]
        assert f"http://127.0.0.1:{srv.port}/api/v1/api-keys/verify?token=" in msg.get_body(("plain",)).get_content()
        token = link_token(msg)
        r = httpx.get(f"{srv.url}/api/v1/api-keys/verify?token={token}", timeout=60)  # the emailed link itself
        assert r.status_code == 200 and "Verification Successful!" in r.text
        key = mailed_key(smtp_server.wait_for(2)[1])
        r = c.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
        assert r.status_code == 200 and r.json()["modelVersion"] == 3 and len(r.json()["denoised_signal"]) == 1300
        files = [("file", (f"100{e}", (MITDB / f"100{e}").read_bytes())) for e in (".hea", ".dat")]
        assert c.post("/predict", files=files).status_code == 401     # a key is needed by default
        r = c.post("/predict", files=files, headers={"x-api-key": key})
        assert r.status_code == 200 and len(r.json()["records"][0]["segments"]["rows"]) == 59
        assert c.get("/docs").status_code == 200 and "/predict" in c.get("/openapi.json").json()["paths"]
        # the database holds emails and key digests: readable by its owner only
        for f in srv.data_dir.glob("serve.db*"):
            assert f.stat().st_mode & 0o777 == 0o600, (f, oct(f.stat().st_mode))
        c.close()
    finally:
        log = srv.stop()
    assert "GET /api/v1/api-keys/verify 200" in log and "POST /api/v1/denoising 200" in log
    assert key not in log and token not in log


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_is_believed_only_from_a_trusted_proxy(tmp_path, test_models, trusted):
    """A client on loopback rotating X-Forwarded-For: counted as itself (429 at the limit) unless the server
    runs behind --trusted-proxy 127.0.0.1, where each forwarded address has its own budget."""
    args = ["--rate-per-ip", "3"] + (["--trusted-proxy", "127.0.0.1"] if trusted else [])
    srv = ServeProcess(tmp_path, args=args, env=_model_env(test_models))
    try:
        codes = [httpx.post(f"{srv.url}/api/v1/api-keys/generation", json={"email": f"u{i}@example.com"},
                            headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=30).status_code
                 for i in range(6)]
    finally:
        srv.stop()
    assert codes == ([200] * 6 if trusted else [200] * 3 + [429] * 3), codes


def _read_response(sock) -> str:
    """Headers and body of one HTTP/1.1 response (the body may arrive in a later packet than the headers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data.decode("latin-1")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_declared_oversize_body_is_refused_before_it_is_sent(tmp_path, test_models):
    """A client declaring a 320 MB upload gets its 413 at once, although it never sends a byte of the body."""
    srv = ServeProcess(tmp_path, env=_model_env(test_models))
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 335544320\r\n"
                      b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n")
            answer = _read_response(s)
    finally:
        srv.stop()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "Request body too large" in answer


def _load(url: str, key: str, n: int, concurrency: int, label: str) -> dict:
    async def call(client, i):
        return await client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})

    responses, lat, wall = asyncio.run(hammer(url, n, concurrency, call))
    assert [r.status_code for r in responses] == [200] * n
    assert all(len(r.json()["denoised_signal"]) == 1300 for r in responses)
    figures = {"label": label, "requests": n, "concurrency": concurrency, "req_per_s": round(n / wall, 1),
               "p50_ms": round(percentile(lat, 50) * 1e3, 1), "p99_ms": round(percentile(lat, 99) * 1e3, 1),
               "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(f"\nLOAD {figures}")
    return figures


def test_bounded_load_on_loopback(tmp_path, test_models):
    """64 denoising requests, 8 in flight, against a real `ecgcore serve` on SQLite (prints req/s, p99)."""
    srv = ServeProcess(tmp_path, args=["--rate-per-key", "0", "--rate-per-ip", "0"], env=_model_env(test_models))
    try:
        from ecgcore.serve.db import Store

        store = Store(f"sqlite:///{srv.data_dir / 'serve.db'}")
        key, _ = store.issue_key("load@example.com")
        _load(srv.url, key, 64, 8, "sqlite, 1 worker")
        (row,) = store.key_rows("load@example.com")
        assert row["request_count"] == 64
        store.dispose()
    finally:
        srv.stop()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_load_two_workers(tmp_path, test_models, backend, request):
    """400 requests, 16 in flight, `--workers 2`, on each back-end (per-key counters shared by the workers)."""
    url = f"sqlite:///{tmp_path / 'load.db'}" if backend == "sqlite" else \
        request.getfixturevalue("database_url_pg").replace("postgresql+psycopg://", "postgresql://")  # as users write it
    srv = ServeProcess(tmp_path, args=["--workers", "2", "--database-url", url, "--rate-per-key", "0",
                                       "--rate-per-ip", "0"], env=_model_env(test_models))
    try:
        from ecgcore.serve.db import Store

        store = Store(url)
        key, _ = store.issue_key("load@example.com")
        _load(srv.url, key, 400, 16, f"{backend}, 2 workers")
        (row,) = store.key_rows("load@example.com")
        assert row["request_count"] == 400
        store.dispose()
    finally:
        srv.stop()


@pytest.fixture
def database_url_pg(pg_database):
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS api_keys, verification_tokens, rate_counters CASCADE"))
    engine.dispose()
    return pg_database
