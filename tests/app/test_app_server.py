"""The HTTP app on a real uvicorn server (in a thread): upload page, batch and multi-record uploads,
error pages, PDF/JSON downloads, and the missing-model notice."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ecgcore.app.models import ModelSuite
from ecgcore.io import read_record
from system_tools import need

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "python" / "ecgcore" / "data" / "mitdb"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")


def _serve(app):
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from ecgcore.app.server import create_app

    missing = str(tmp_path_factory.mktemp("nomodel") / "absent-model")
    app = create_app(ModelSuite(beats=missing, segments=None, superclass="hubert-ptbxl-super"),
                     max_upload_mb=2.0, keep_jobs=2, llm="")
    server, thread, url = _serve(app)
    with httpx.Client(base_url=url, timeout=300) as c:
        c.missing_model = missing
        yield c
    server.should_exit = True
    thread.join(timeout=30)


def _files(*names):
    return [("files", (n, (BUNDLED / n).read_bytes())) for n in names]


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_index_lists_models(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "<form id='upload-form'" in r.text and "name='files'" in r.text and " multiple " in r.text
    assert f"data-model='{client.missing_model}' data-available='0'" in r.text
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["llm_hook"] is False
    assert health["models"][client.missing_model]["available"] is False


def _batch_job(client) -> tuple[str, list[str]]:
    sig = read_record(BUNDLED / "119", sampto=5 * 3600).signal.T          # (2, 18000)
    batch = np.stack([sig[:, i * 3600:(i + 2) * 3600] for i in range(3)])  # (3, 2, 7200): 3 ECGs
    r = client.post("/analyze", files=[("files", ("b.npy", _npy(batch)))], data={"fs": "360"})
    assert r.status_code == 200, r.text[-2000:]
    names = re.findall(r"class='card ecg' id='ecg-\d+' data-name='([^']*)'", r.text)
    assert names == ["b[0]", "b[1]", "b[2]"]
    job = re.search(r"data-job='([0-9a-f]+)'", r.text).group(1)
    res = client.get(f"/jobs/{job}/results.json").json()
    assert [e["name"] for e in res["ecgs"]] == names
    for e in res["ecgs"]:
        assert e["measurements"]["n_beats"] > 10 and e["measurements"]["hr_bpm"] > 30
        assert client.missing_model in e["model_notes"]
    pdf = client.get(f"/jobs/{job}/report.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:5] == b"%PDF-"
    assert "attachment" in pdf.headers.get("content-disposition", "")
    csv = client.get(f"/jobs/{job}/predictions.csv")
    assert csv.status_code == 200 and csv.text.startswith("ecg,kind")    # no model ran: header only
    return job, names


def test_batch_npy_every_ecg_processed(client):
    _batch_job(client)


@pytest.mark.services
def test_batch_npy_report_names_every_ecg(client):
    tools = need("pdftotext")   # before any work: skipped (or failed in CI) without poppler
    job, names = _batch_job(client)
    pdf = client.get(f"/jobs/{job}/report.pdf")
    text = subprocess.run([tools["pdftotext"], "-", "-"], input=pdf.content, capture_output=True,
                          check=True).stdout.decode()
    for n in names:
        assert f"ECG {n}" in text


def test_multi_record_wfdb_and_partial_errors(client):
    files = _files("100.hea", "100.dat", "100.atr", "119.hea", "119.dat") + [("files", ("x.txt", b"?"))]
    r = client.post("/analyze", files=files, data={"fs": ""})
    assert r.status_code == 200
    assert re.findall(r"data-name='([^']*)'", r.text)[:2] == ["100", "119"]
    assert "x.txt: unsupported file type" in r.text
    assert "data-source='reference'" in r.text          # 100 came with its .atr
    assert "Not assessed by" in r.text and client.missing_model in r.text


def test_error_pages(client):
    r = client.post("/analyze", files=[("files", ("a.npy", b"junk"))], data={"fs": "360"})
    assert r.status_code == 400 and "a.npy: not a valid .npy array" in r.text
    r = client.post("/analyze", files=_files("100.hea"), data={"fs": ""})
    assert r.status_code == 400 and "which were not uploaded" in r.text
    r = client.post("/analyze", data={"fs": "360"})
    assert r.status_code == 400 and "no files were uploaded" in r.text
    big = np.zeros((2, 400_000), np.float32)    # 3.2 MB > the 2 MB limit of this app
    r = client.post("/analyze", files=[("files", ("big.npy", _npy(big)))], data={"fs": "360"})
    assert r.status_code == 413 and "larger than 2 MB" in r.text
    assert client.get("/jobs/0123456789abcdef/report.pdf").status_code == 404
    assert client.get("/jobs/..%2F..%2Fetc/report.pdf").status_code == 404


def test_old_jobs_are_evicted(client):
    sig = read_record(BUNDLED / "100", sampto=3600, annotator=None).signal[:, 0]
    jobs = []
    for k in range(3):
        r = client.post("/analyze", files=[("files", (f"s{k}.npy", _npy(sig)))], data={"fs": "360"})
        jobs.append(re.search(r"data-job='([0-9a-f]+)'", r.text).group(1))
    assert client.get(f"/jobs/{jobs[0]}/report.pdf").status_code == 404     # keep_jobs=2
    assert client.get(f"/jobs/{jobs[2]}/report.pdf").status_code == 200


def test_cli_help_and_no_training_framework():
    env_code = ("import sys; from ecgcore.cli import main\n"
                "import ecgcore.app, ecgcore.app.server, ecgcore.commands.app\n"
                "from ecgcore.app import analyse_record, ModelSuite\n"
                "from ecgcore.io import read_record\n"
                "a = analyse_record(read_record('python/ecgcore/data/mitdb/119', sampto=7200, annotator=None), ModelSuite())\n"
                "bad = [m for m in ('torch', 'tensorflow', 'mlx', 'keras') if m in sys.modules]\n"
                "print(json.dumps(bad))" )
    out = subprocess.run([sys.executable, "-c", "import json\n" + env_code], cwd=REPO, capture_output=True,
                         text=True, env={"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    h = subprocess.run([sys.executable, "-m", "ecgcore.cli", "app", "--help"], cwd=REPO, capture_output=True,
                       text=True, env={"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert h.returncode == 0
    for opt in ("--host", "--port", "--open / --no-open", "--llm"):
        assert opt in h.stdout


def test_declared_oversize_upload_is_refused_before_the_body(client):
    """A 320 MB Content-Length gets the 413 page at once, though not a byte of the body is sent."""
    import socket

    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 335544320\r\n"
                  b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n")
        answer = b""
        while b"</html>" not in answer.lower():
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    text = answer.decode("latin-1")
    assert text.startswith("HTTP/1.1 413"), text[:200]
    assert "the upload is larger than 2 MB" in text


def test_too_long_and_out_of_range_ecgs_are_refused(tmp_path):
    from ecgcore.app.server import create_app

    app = create_app(ModelSuite(beats=None, segments=None, superclass=None), max_duration_s=60, llm="",
                     jobs_dir=tmp_path / "jobs")
    server, thread, url = _serve(app)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post("/analyze", files=_files("100.hea", "100.dat"))            # 5 min > 1 min
            assert r.status_code == 413 and "at most 1 min per record" in r.text
            r = c.post("/analyze", files=[("files", ("x.npy", _npy(np.zeros(36000, np.float32))))],
                       data={"fs": "3600"})
            assert r.status_code == 400 and "between 50 and 2000 Hz" in r.text
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_job_folder_is_deleted_when_the_app_stops():
    """The app keeps nothing of the uploads after it stops: its temporary job folder goes with it."""
    from ecgcore.app.server import create_app

    app = create_app(ModelSuite(beats=None, segments=None, superclass=None), llm="")
    root = app.state.jobs.root
    sig = read_record(BUNDLED / "100", sampto=3600, annotator=None).signal[:, 0]
    server, thread, url = _serve(app)
    try:
        r = httpx.post(f"{url}/analyze", files=[("files", ("s.npy", _npy(sig)))], data={"fs": "360"}, timeout=120)
        assert r.status_code == 200 and any(root.iterdir())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive() and not root.exists()


def test_attention_overlay_comes_from_the_attention_graph():
    """segments-abnormal's attention map is computed by its second graph, for the most abnormal segment only."""
    from ecgcore.export import list_bundled

    if "segments-abnormal" not in list_bundled():
        pytest.skip("bundled segments-abnormal not installed")
    suite = ModelSuite(beats=None, superclass=None)
    out = suite.predict(read_record(BUNDLED / "208", annotator=None), lead=0)
    assert out.segments and len(out.attention) == 1
    (i, att), = out.attention.items()
    assert att.shape == (900,) and np.isfinite(att).all() and abs(att.sum() - 1.0) < 1e-3
    assert out.segment_signal[i].size == 3600


def test_crafted_uploads_get_a_4xx_over_http(tmp_path):
    """/analyze answers hostile files with a 4xx naming each once: a header declaring 2^63-1 samples, an .npy
    header claiming 10^11 samples over a 1 KB body, alternating +-1e308 samples."""
    from numpy.lib import format as npformat

    from ecgcore.app.server import create_app

    hea = (BUNDLED / "100.hea").read_bytes().replace(b"108000", str(2**63 - 1).encode(), 1)
    head = io.BytesIO()
    npformat.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    cases = [([("files", ("100.hea", hea)), ("files", ("100.dat", (BUNDLED / "100.dat").read_bytes()))], 413,
              "100.hea: 9223372036854775807 samples"),
             ([("files", ("claims.npy", head.getvalue() + b"\0" * 1024))], 400, "claims.npy: the header declares"),
             ([("files", ("huge.npy", _npy(np.tile([1e308, -1e308], 3600))))], 400, "huge: samples must lie within")]
    app = create_app(ModelSuite(beats=None, segments=None, superclass=None), llm="", jobs_dir=tmp_path / "jobs")
    server, thread, url = _serve(app)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            for files, status, fragment in cases:
                r = c.post("/analyze", files=files, data={"fs": "360"})
                assert r.status_code == status, (fragment, r.status_code)
                assert fragment in r.text and "100.hea: 100.hea" not in r.text, r.text[-1500:]
    finally:
        server.should_exit = True
        thread.join(timeout=30)
