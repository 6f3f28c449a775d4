"""End to end: `ecgcore app` in a real uvicorn process, driven by headless Chromium (Debian's package).

The test starts the app from the command line on a free loopback port, starts /usr/bin/chromium through
/usr/bin/chromedriver (W3C WebDriver over HTTP), uploads the bundled MIT-BIH record 100 (.hea + .dat +
.atr, a real multi-file upload), waits for the results page, checks the rendered heart rate and beat
counts against values computed here from the reference annotations, downloads the PDF through the
browser and rasterises it with pdftoppm (every page must have ink). A second upload of a 3-ECG .npy
batch checks that every ECG of a batch is rendered.

Without Chromium/ChromeDriver/pdftoppm the test is skipped with the reason, or fails when
ECGCORE_REQUIRE_SERVICES=1 (CI).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app_webdriver import Browser, free_port
from system_tools import need

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "python" / "ecgcore" / "data" / "mitdb"
# wfdb.rdann (reading the .atr reference here) trips a pandas 3.1 deprecation inside wfdb.
pytestmark = [pytest.mark.services,
              pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("app") / "app.log"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=_PKG_PARENT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    env.pop("ECGCORE_APP_LLM", None)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "ecgcore.cli", "app", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-open"], cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                if httpx.get(url + "healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ecgcore app did not come up on {url}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def browser(tmp_path_factory):
    # A fresh Chromium per test: one renderer reused across uploads and a download has crashed its tab.
    tools = need("chromium", "chromedriver", "pdftoppm", "pdftotext")
    root = tmp_path_factory.mktemp("chromium")
    (root / "profile").mkdir()
    (root / "downloads").mkdir()
    b = Browser(tools["chromium"], tools["chromedriver"], root / "profile", root / "downloads", root / "chromedriver.log")
    b.download_dir = root / "downloads"
    try:
        yield b
    finally:
        b.close()


def _reference(record: str):
    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.io import read_annotations

    ann = read_annotations(BUNDLED / record).beats()
    hr = 60.0 / float(np.mean(np.diff(ann.sample)) / 360.0)
    cls = aami_labels(ann.symbol)
    return hr, {c: int(np.sum(cls == c)) for c in "NSVFQ"}


def _wait_download(folder: Path, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.glob("*.pdf") if p.stat().st_size > 0]
        if done and not list(folder.glob("*.crdownload")):
            return done[0]
        time.sleep(0.3)
    raise AssertionError(f"no PDF downloaded into {folder} after {timeout:.0f} s: {list(folder.iterdir())}")


def _inked_pages(pdf: Path, out: Path) -> list[float]:
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(out / "page")], check=True, timeout=120)
    pages = sorted(out.glob("page*.png"))
    ink = []
    for p in pages:
        a = np.asarray(Image.open(p).convert("L"))
        ink.append(float(np.mean(a < 200)))
    return ink


def test_upload_record_and_download_pdf(app_url, browser, tmp_path):
    from ecgcore.export.card import list_bundled, read_card

    b = browser
    b.get(app_url)
    assert "ECG Diagnosis" in b.title()
    files = [str(BUNDLED / f"100.{ext}") for ext in ("hea", "dat", "atr")]
    b.send_keys(b.find("#files"), "\n".join(files))
    b.click(b.find("#analyse"))
    b.wait_for("#overview", timeout=600)
    assert b.attribute(b.find("#overview"), "data-count") == "1"
    section = b.find(".ecg[data-name='100']")
    text = b.text(section)

    hr_ref, counts_ref = _reference("100")
    hr = float(b.attribute(b.find("[data-measure='hr_bpm']"), "data-value"))
    assert abs(hr - hr_ref) < 1.0, (hr, hr_ref)
    assert f"average {hr:.0f} bpm" in text
    assert "rhythm is regular" in text
    for c, n in counts_ref.items():
        shown = b.text(b.find(f"[data-class='{c}'][data-source='reference']"))
        assert int(shown) == n, (c, shown, n)

    if "beats-aami" in list_bundled():
        model_counts = {c: int(b.text(b.find(f"[data-class='{c}'][data-source='model']"))) for c in "NSVFQ"}
        n_beats = int(b.attribute(b.find("[data-measure='n_beats']"), "data-value"))
        assert abs(sum(model_counts.values()) - sum(counts_ref.values())) <= 3
        # Record 100 is sinus rhythm with a handful of atrial premature beats: nearly all N.
        assert model_counts["N"] >= 0.95 * n_beats, model_counts
        assert "Beat classification: of" in text
        # The element's href property is the absolute URL the browser resolved from the page.
        csv_url = b.cmd("GET", f"/element/{b.find('#csv-link')}/property/href")
        lines = httpx.get(csv_url, timeout=60).text.strip().splitlines()
        assert sum(1 for ln in lines[1:] if ",beat," in ln) == sum(model_counts.values())
    else:
        assert "beats-aami" in b.text(b.find(".model-notes"))
    if "segments-abnormal" in list_bundled():
        assert "Segment screening:" in text
        assert b.find_all("img[alt='Segment classification']")
        outputs = [o["name"] for o in read_card(list_bundled()["segments-abnormal"]).outputs]
        if any("att" in o for o in outputs):
            assert b.find_all("img[alt='Attention overlay']")

    imgs = b.find_all(".ecg img")
    assert len(imgs) >= 3
    # Every embedded figure decoded and laid out (a broken data: URL has naturalWidth 0).
    widths = b.execute("return Array.from(document.querySelectorAll('.ecg img')).map(i => i.naturalWidth)")
    assert all(w > 300 for w in widths), widths
    (tmp_path / "results.png").write_bytes(b.screenshot_png())

    b.click(b.find("#pdf-link"))
    pdf = _wait_download(b.download_dir, timeout=120)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    ink = _inked_pages(pdf, tmp_path)
    assert len(ink) >= 3, ink
    assert all(v > 0.002 for v in ink), ink
    import subprocess as sp

    text_pdf = sp.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "ECG Diagnosis Report" in text_pdf and "ECG 100" in text_pdf
    assert f"{hr:.1f} bpm" in text_pdf


def test_batch_npy_every_ecg_rendered(app_url, browser, tmp_path):
    from ecgcore.io import read_record

    rec = read_record(BUNDLED / "119")
    batch = np.stack([rec.signal[i * 7200:(i + 1) * 7200].T for i in range(3)])   # (3, 2, 7200): 3 ECGs of 20 s
    path = tmp_path / "batch119.npy"
    np.save(path, batch)
    b = browser
    b.get(app_url)
    b.send_keys(b.find("#files"), str(path))
    b.send_keys(b.find("#fs"), "360")
    b.click(b.find("#analyse"))
    b.wait_for("#overview", timeout=600)
    names = [b.attribute(e, "data-name") for e in b.find_all(".ecg")]
    assert names == ["batch119[0]", "batch119[1]", "batch119[2]"]
    for i in range(3):
        hr = b.find_all(f"#ecg-{i} [data-measure='hr_bpm']")
        assert hr and float(b.attribute(hr[0], "data-value")) > 30


def test_twelve_lead_wfdb_upload(app_url, browser, data_dir):
    """A PTB-XL 12-lead record (500 Hz WFDB): the 12-lead model's superclass table, or the missing-model note."""
    from ecgcore.export.card import list_bundled, read_card

    base = data_dir / "ptbxl" / "records500" / "00000" / "00001_hr"   # PTB-XL ecg_id 1: NORM, sinus rhythm
    b = browser
    b.get(app_url)
    b.send_keys(b.find("#files"), "\n".join(str(base.with_suffix(s)) for s in (".hea", ".dat")))
    b.click(b.find("#analyse"))
    b.wait_for("#overview", timeout=600)
    section = b.find(".ecg[data-name='00001_hr']")
    text = b.text(section)
    assert "12 LEAD(S): I, II, III, AVR, AVL, AVF, V1" in text.upper()
    assert b.attribute(b.find("#ecg-0 [data-measure='rhythm']"), "data-value") == "regular"
    assert b.find_all("img[alt='All leads']")
    if "hubert-ptbxl-super" in list_bundled():
        classes = read_card(list_bundled()["hubert-ptbxl-super"]).classes
        shown = {c: float(b.text(b.find(f"[data-superclass='{c}']"))) for c in classes}
        assert set(shown) == set(classes) and all(0.0 <= p <= 1.0 for p in shown.values())
        assert "12-lead model:" in text
        assert b.find_all("img[alt='12-lead superclass probabilities']")
    else:
        assert "hubert-ptbxl-super" in b.text(b.find(".model-notes"))
