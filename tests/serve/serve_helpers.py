"""Helpers for the API tests: a throwaway PostgreSQL cluster, an SMTP server with STARTTLS, API clients.

When PostgreSQL's binaries or aiosmtpd are missing the tests skip with the reason, or FAIL when
``ECGCORE_REQUIRE_SERVICES=1`` (set by .ci/run, which installs them).
"""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path


with warnings.catch_warnings():
    # starlette nags about httpx -> httpx2; TestClient itself works the same with httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported to the test modules)
with warnings.catch_warnings():
    # wfdb (read_annotations' fallback) calls a pandas API that pandas 3.1 deprecates, at import time
    warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.set_index")
    import wfdb  # noqa: F401

from system_tools import missing_service, postgres_bin  # noqa: E402  (tests/ is on sys.path via its conftest)

SMTP_USER, SMTP_PASSWORD = "heartify", "s3cret-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- PostgreSQL ---------------------------------------------------------------------------------------------
class PgCluster:
    def __init__(self):
        self.bin = postgres_bin()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing_service("psycopg is not installed (pip install 'psycopg[binary]')")
        self.dir = Path(tempfile.mkdtemp(prefix="ecgcore-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            # postgres refuses to run as root: run the cluster as 'nobody' in a folder it owns
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, "nobody")
            self.prefix = ["runuser", "-u", "nobody", "--"]
        data, log = self.dir / "data", self.dir / "log"
        self._run([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([str(self.bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", "60", "start"])
        self.data = data

    def _run(self, cmd):
        res = subprocess.run(self.prefix + cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr or res.stdout}")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def stop(self):
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- SMTP with STARTTLS -------------------------------------------------------------------------------------
def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class SmtpServer:
    """aiosmtpd on loopback: STARTTLS required before AUTH, one login accepted, messages kept in memory."""

    def __init__(self, folder: Path):
        try:
            from aiosmtpd.controller import Controller
            from aiosmtpd.smtp import AuthResult, LoginPassword
        except ImportError:
            missing_service("aiosmtpd is not installed (pip install aiosmtpd; it is in the test extra)")
        try:
            import cryptography  # noqa: F401  (the server certificate for STARTTLS)
        except ImportError:
            missing_service("cryptography is not installed (needed for the test SMTP server's TLS certificate)")
        self.cafile, keyfile = _self_signed(folder)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cafile, keyfile)
        self.messages: list[email.message.EmailMessage] = []
        self.tls_sessions: list[bool] = []
        self._cond = threading.Condition()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
                with outer._cond:
                    outer.messages.append(msg)
                    outer.tls_sessions.append(session.ssl is not None)
                    outer._cond.notify_all()
                return "250 Message accepted"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == SMTP_USER.encode() \
                and auth_data.password == SMTP_PASSWORD.encode()
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, authenticator=authenticator, auth_require_tls=True,
                                     ready_timeout=10)
        self.controller.start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= n, timeout=timeout)
            if len(self.messages) < n:
                raise AssertionError(f"expected {n} emails, got {len(self.messages)}")
            return list(self.messages)

    def stop(self):
        self.controller.stop()


def body_text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def link_token(msg) -> str:
    m = re.search(r"/api/v1/api-keys/verify\?token=([A-Za-z0-9_\-]+)", body_text(msg))
    assert m, f"no verification link in {msg['Subject']!r}"
    return m.group(1)


def mailed_key(msg) -> str:
    m = re.search(r"^([A-Za-z0-9_\-]{43})\r?$", body_text(msg), re.M)
    assert m, f"no API key in {msg['Subject']!r}"
    return m.group(1)


# ---- small real ONNX models with cards (the plumbing tests; the bundled models are tested too) -------------
def _save_model(folder: Path, graph, card: dict) -> Path:
    import json

    import onnx
    from onnx import helper

    folder.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps(card, indent=2))
    return folder


def _io(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _card(name, task, fs, inputs, outputs, preprocessing, classes=()):
    return {"name": name, "task": task, "framework": "onnx", "fs": fs, "classes": list(classes),
            "inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in inputs],
            "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in outputs],
            "preprocessing": preprocessing, "version": "test"}


def make_denoiser(folder: Path) -> Path:
    """A 5-tap moving-average Conv1d over (N, 1, 1300) at 130 Hz: a real, if simple, denoiser graph."""
    import numpy as np
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.full((1, 1, 5), 0.2, np.float32), "w")
    node = helper.make_node("Conv", ["signal", "w"], ["denoised"], pads=[2, 2], kernel_shape=[5])
    graph = helper.make_graph([node], "test_denoiser", [_io("signal", ["N", 1, 1300])],
                              [_io("denoised", ["N", 1, 1300])], initializer=[w])
    return _save_model(folder, graph, _card("test-denoiser", "denoising", 130.0, [("signal", [None, 1, 1300])],
                                            [("denoised", [None, 1, 1300])],
                                            {"kind": "denoise-pairs", "fs": 130.0, "length": 1300}))


def _linear_classifier(folder, name, in_shape, n_in, classes, fs, preprocessing, seed):
    import numpy as np
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array((rng.standard_normal((n_in, len(classes))) / np.sqrt(n_in)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(len(classes)).astype(np.float32), "b")
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])]
    graph = helper.make_graph(nodes, name, [_io("x", ["N", *in_shape])], [_io("logits", ["N", len(classes)])],
                              initializer=[w, b])
    return _save_model(folder, graph, _card(name, "classification", fs, [("x", [None, *in_shape])],
                                            [("logits", [None, len(classes)])], preprocessing, classes))


def make_segment_classifier(folder: Path) -> Path:
    """Linear Normal/Abnormal head over (N, 1, 3600) 10 s segments at 360 Hz (the attention model's input)."""
    return _linear_classifier(folder, "test-segments", [1, 3600], 3600, ["Normal", "Abnormal"], 360.0,
                              {"kind": "segments", "window_s": 10.0, "overlap": 0.5, "band": [0.5, 50.0],
                               "order": 5, "lead": 0, "seed_compat": False}, seed=1)


def make_beat_classifier(folder: Path) -> Path:
    """Linear AAMI head over (N, 3, 32, 187, 1) scalogram sequences (the Conformer's input)."""
    return _linear_classifier(folder, "test-beats", [3, 32, 187, 1], 3 * 32 * 187, ["N", "S", "V", "F", "Q"], 360.0,
                              {"kind": "beats-scalograms", "before": 93, "after": 93, "scales": [1, 32],
                               "wavelet": "morl", "lead": 0, "sequence_length": 3, "stride": 1}, seed=2)


def smtp_settings(server) -> dict:
    """Settings fields that point the API at the test SMTP server (STARTTLS verified against its cert)."""
    return {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_user": SMTP_USER,
            "smtp_password": SMTP_PASSWORD, "smtp_cafile": str(server.cafile), "sender_email": "noreply@heartify.test"}


def obtain_key(client, smtp, email: str) -> str:
    """The whole generation flow through the API and the mail server; returns the emailed key."""
    n = len(smtp.messages)
    r = client.post("/api/v1/api-keys/generation", json={"email": email})
    assert r.status_code == 200, r.text
    token = link_token(smtp.wait_for(n + 1)[n])
    r = client.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 200, r.text
    return mailed_key(smtp.wait_for(n + 2)[n + 1])


class ThreadedServer:
    """A real uvicorn server for an app object, on a free loopback port, in a background thread."""

    def __init__(self, app):
        import time

        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="on", limit_concurrency=1000, backlog=2048)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=15)


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


async def hammer(url: str, n: int, concurrency: int, make_request):
    """Send ``n`` requests with at most ``concurrency`` in flight; returns (responses, latencies_s, wall_s)."""
    import asyncio
    import time

    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one(i):
            async with sem:
                t0 = time.perf_counter()
                r = await make_request(client, i)
                latencies.append(time.perf_counter() - t0)
                return r

        t0 = time.perf_counter()
        responses = await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return responses, latencies, wall
