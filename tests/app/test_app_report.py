"""The PDF report (rasterised with pdftoppm: every page must carry ink) and the optional LLM hook."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecgcore.app.analysis import analyse_record
from ecgcore.app.report import LLM_ENV, build_pdf, latin1, llm_narrative, write_pdf
from ecgcore.app.uploads import split_npy
from ecgcore.io import read_record
from system_tools import need

BUNDLED = Path(__file__).resolve().parents[2] / "python" / "ecgcore" / "data" / "mitdb"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")


def _poppler() -> None:
    need("pdftoppm", "pdftotext")


@pytest.fixture(scope="module")
def analyses():
    rec = read_record(BUNDLED / "208", sampto=360 * 60)
    rec.name = "208"
    twelve = split_npy("twelve.npy", np.tile(read_record(BUNDLED / "100", sampto=5000).signal[:, :1], (1, 12)).T,
                       360.0)[0]
    return [analyse_record(rec, None), analyse_record(twelve, None)]


@pytest.mark.services
def test_pdf_pages_have_ink_and_text(analyses, tmp_path):
    _poppler()
    from PIL import Image

    pdf = build_pdf(analyses, errors=["bad.npy: not a valid .npy array"])
    path = write_pdf(tmp_path / "r" / "report.pdf", pdf)
    assert path.read_bytes()[:5] == b"%PDF-" and not list(path.parent.glob(".report.*"))
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "p")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("p*.png"))
    # An overview page, then per ECG its summary/tables and figure pages.
    assert len(pages) >= 1 + 2 * len(analyses), len(pages)
    for p in pages:
        grey = np.asarray(Image.open(p).convert("L"))
        assert np.mean(grey < 200) > 0.002, p.name
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    m = analyses[0].measurements
    for needle in ("ECG Diagnosis Report", "ECG 208", "ECG twelve", "bad.npy: not a valid .npy array",
                   f"{m['hr_bpm']:.1f} bpm", "Rhythm strip with detected beats", "All leads", "not a diagnosis"):
        assert needle in text, needle


def test_latin1_mapping():
    assert latin1("a – b “c” ≥ 5 µV ± 1 • ok ✓ 心") == "a - b \"c\" &gt;= 5 \u00b5V \u00b1 1 * ok YES ?"


def test_llm_hook_off_by_default(analyses, monkeypatch):
    monkeypatch.delenv(LLM_ENV, raising=False)
    assert llm_narrative(analyses[0], None) is None
    assert llm_narrative(analyses[0], "") is None


def test_llm_hook_command_gets_the_measurements(analyses, tmp_path):
    # A local stand-in for a user's command (no model is called): it echoes a field of the payload.
    script = tmp_path / "hook.py"
    script.write_text("import json, sys\nd = json.load(sys.stdin)\n"
                      "print('HR from payload: %.1f' % d['ecg']['measurements']['hr_bpm'])\n")
    text = llm_narrative(analyses[0], f"{sys.executable} {script}")
    assert text == f"HR from payload: {analyses[0].measurements['hr_bpm']:.1f}"
    pdf = build_pdf(analyses[:1], narratives={"208": text})
    assert len(pdf) > 1000
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.stderr.write('no key')\nsys.exit(3)\n")
    with pytest.raises(RuntimeError, match="exited with 3: no key"):
        llm_narrative(analyses[0], f"{sys.executable} {failing}")
    with pytest.raises(RuntimeError, match="could not run"):
        llm_narrative(analyses[0], str(tmp_path / "does-not-exist"))


def test_llm_hook_url_posts_json(analyses):
    # A loopback stand-in for a user's endpoint (no model is called): it answers with the HR it received.
    import http.server
    import json
    import threading

    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            seen.update(body)
            out = json.dumps({"text": f"rate {body['ecg']['measurements']['hr_bpm']}"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        text = llm_narrative(analyses[0], f"http://127.0.0.1:{srv.server_port}/v1/report")
    finally:
        srv.shutdown()
        srv.server_close()
    assert text == f"rate {analyses[0].measurements['hr_bpm']}"
    assert seen["summary"] == analyses[0].summary and "not a diagnosis" in seen["instructions"]
    with pytest.raises(RuntimeError, match="failed"):
        llm_narrative(analyses[0], f"http://127.0.0.1:{srv.server_port}/gone")
