"""POST /predict with real WFDB uploads (format 212, two leads), .npy, and every upload error; /health, /models, docs."""
from __future__ import annotations

import io

import numpy as np
import pytest

import ecgcore
from ecgcore.export import list_bundled
from ecgcore.infer import Scorer
from ecgcore.serve.inference import ServeModels

# wfdb.rdann (behind ecgcore.io.read_annotations) calls DataFrame.set_index(inplace=True), deprecated in pandas 3.1
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")
# /predict keeps no state: its tests run on SQLite; the routes that touch the database run on both back-ends
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

BUNDLED_MITDB = ecgcore.io.record.Path(ecgcore.__file__).parent / "data" / "mitdb"


def _files(record: str, *exts):
    return [("file", (f"{record}{e}", (BUNDLED_MITDB / f"{record}{e}").read_bytes(), "application/octet-stream"))
            for e in exts]


@SQLITE
def test_wfdb_upload_matches_local_scoring(make_client, test_models):
    client = make_client(predict_requires_key=False)
    r = client.post("/predict", files=_files("208", ".hea", ".dat", ".atr"))
    assert r.status_code == 200, r.text
    body = r.json()
    (rec,) = body["records"]
    local = ecgcore.read_record(BUNDLED_MITDB / "208")  # the same parser: 212 format, gains, both leads
    assert (rec["record"], rec["fs"], rec["leads"], rec["n_samples"]) == ("208", 360.0, local.leads, local.n_samples)
    assert rec["leads"] == ["MLII", "V1"] and rec["duration_s"] == 300.0
    seg_expected = Scorer(test_models["segments"]).predict_record(local)
    beat_expected = Scorer(test_models["beats"]).predict_record(local)
    assert len(rec["segments"]["rows"]) == len(seg_expected.rows) == 59  # 10 s windows, 50 % overlap, 5 min
    for got, exp in zip(rec["segments"]["rows"], seg_expected.rows):
        assert got["sample"] == exp["sample"] and got["class"] == exp["class"]
        assert got["prob_Abnormal"] == pytest.approx(exp["prob_Abnormal"], abs=1e-5)
    assert len(rec["beats"]["rows"]) == len(beat_expected.rows) > 300
    assert [b["class"] for b in rec["beats"]["rows"]] == [b["class"] for b in beat_expected.rows]
    assert rec["beats"]["summary"]["peaks"] == "annotations"  # the uploaded .atr gives the beat positions
    assert set(rec["beats"]["classes"]) == {"N", "S", "V", "F", "Q"}
    first = rec["beats"]["rows"][0]
    assert abs(sum(first[f"prob_{c}"] for c in "NSVFQ") - 1.0) < 1e-4
    assert rec["predicted_class"] in ("Normal", "Abnormal") and body["predicted_class"] == rec["predicted_class"]
    assert rec["predicted_class"] == ("Abnormal" if seg_expected.summary["counts"]["Abnormal"] else "Normal")
    assert rec["unavailable"] == {}


@SQLITE
def test_without_annotations_beats_are_detected(make_client):
    client = make_client(predict_requires_key=False)
    r = client.post("/predict", files=_files("100", ".hea", ".dat"))
    assert r.status_code == 200, r.text
    beats = r.json()["records"][0]["beats"]
    assert beats["summary"]["peaks"] != "annotations" and 300 < len(beats["rows"]) < 420  # ~75 bpm for 5 min


@SQLITE
def test_several_records_and_npy(make_client, test_models):
    client = make_client(predict_requires_key=False)
    sig = ecgcore.read_record(BUNDLED_MITDB / "119").signal[:36000]  # 100 s, (n, 2) mV
    buf = io.BytesIO()
    np.save(buf, sig.astype(np.float32))
    files = _files("100", ".hea", ".dat") + _files("119", ".hea", ".dat") + \
        [("file", ("excerpt.npy", buf.getvalue(), "application/octet-stream"))]
    r = client.post("/predict", files=files, data={"fs": "360"})
    assert r.status_code == 200, r.text
    recs = r.json()["records"]
    assert [x["record"] for x in recs] == ["100", "119", "excerpt"]
    assert recs[2]["fs"] == 360.0 and recs[2]["n_samples"] == 36000 and len(recs[2]["segments"]["rows"]) == 19

    buf1 = io.BytesIO()
    np.save(buf1, sig[:, 0].astype(np.float64))
    r = client.post("/predict", files=[("file", ("lead.npy", buf1.getvalue(), "application/octet-stream"))])
    assert r.status_code == 200 and r.json()["records"][0]["fs"] == 360.0  # the default rate for .npy


@SQLITE
@pytest.mark.parametrize("files, data, fragment", [
    ([], None, "Missing required field: file"),
    ("dat-only", None, "uploaded without the record's .hea header"),
    ("hea-only", None, "100.dat"),
    ("wrong-ext", None, "Unsupported file type: notes.txt"),
    ("bad-npy", None, "not a valid .npy array"),
    ("bad-name", None, "is not allowed"),
    ("npy-3d", None, "expected a [n_samples] or [n_samples, n_leads] array"),
    ("npy", {"fs": "fast"}, "fs must be a number"),
    ("npy", {"fs": "-5"}, "fs must be a sampling rate between 50 and 2000 Hz"),
    ("npy", {"fs": "5000"}, "fs must be a sampling rate between 50 and 2000 Hz"),
    ("npy-huge-header", None, "but the file holds"),
    ("npy-1e308", None, "samples must be finite numbers within"),
    ("hea-2^63", None, "this server accepts at most 60 min per record"),
    ("hea-fs", None, "outside the accepted 50-2000 Hz"),
    ("traversal", None, "which was not uploaded with it"),
    ("truncated", None, "could not read the record"),
])
def test_upload_errors(make_client, files, data, fragment):
    """Every malformed or hostile upload gets a 400 that names the problem, never a 500."""
    client = make_client(predict_requires_key=False)
    hea = (BUNDLED_MITDB / "100.hea").read_bytes()
    dat = (BUNDLED_MITDB / "100.dat").read_bytes()
    arr = io.BytesIO()
    np.save(arr, np.zeros(7200, np.float32))
    cube = io.BytesIO()
    np.save(cube, np.zeros((2, 3, 3600), np.float32))
    table = {
        "dat-only": [("100.dat", dat)], "hea-only": [("100.hea", hea)], "wrong-ext": [("notes.txt", b"hello")],
        "bad-npy": [("x.npy", b"definitely not numpy")], "bad-name": [("../100.hea", hea), ("100.dat", dat)],
        "npy-3d": [("cube.npy", cube.getvalue())], "npy": [("x.npy", arr.getvalue())],
        "traversal": [("100.hea", hea.replace(b"100.dat", b"/etc/passwd", 1)), ("100.dat", dat)],
        "truncated": [("100.hea", hea), ("100.dat", dat[:1000])],
        # crafted headers: 10^11 samples declared over a 1 KB body; a sample count of 2^63 - 1; 10 kHz
        "npy-huge-header": [("x.npy", _npy_claiming((10**11,), 1024))],
        "npy-1e308": [("x.npy", _npy_array(np.tile([1e308, -1e308], 3600)))],
        "hea-2^63": [("100.hea", hea.replace(b"108000", str(2**63 - 1).encode(), 1)), ("100.dat", dat)],
        "hea-fs": [("100.hea", hea.replace(b" 360 ", b" 10000 ", 1)), ("100.dat", dat)],
    }
    upload = [("file", (n, b, "application/octet-stream")) for n, b in table.get(files, [])] if files else []
    if upload:
        r = client.post("/predict", files=upload, data=data or {})
    else:
        r = client.post("/predict", data={"fs": "360"}, files={"other": ("a.npy", arr.getvalue())})
    assert r.status_code == (413 if files == "hea-2^63" else 400), r.text
    assert fragment in r.json()["error"]
    assert "/tmp/" not in r.json()["error"]  # no server paths in messages


def _npy_array(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npy_claiming(shape: tuple, body_bytes: int) -> bytes:
    """A .npy whose header declares ``shape`` (float64) followed by only ``body_bytes`` bytes."""
    from numpy.lib import format as npformat

    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * body_bytes


@SQLITE
def test_signals_longer_than_the_limit_are_refused_before_reading(make_client, monkeypatch):
    """A record over --max-duration (default 1 h) is a 413 decided from its header: no sample is decoded."""
    import ecgcore.io

    client = make_client(predict_requires_key=False, max_duration_s=60)
    read = []
    monkeypatch.setattr(ecgcore.io, "read_record", lambda *a, **k: read.append(a) or (_ for _ in ()).throw(
        AssertionError("read_record called")))
    r = client.post("/predict", files=_files("100", ".hea", ".dat"))     # 5 min > 1 min
    assert r.status_code == 413 and "at most 1 min per record" in r.json()["error"], r.text
    assert read == []
    client = make_client(predict_requires_key=False)                     # default limit: 1 h
    r = client.post("/predict", files=[("file", ("long.npy", _npy_array(np.zeros(360 * 3601, np.float32))))],
                    data={"fs": "360"})
    assert r.status_code == 413 and "60.0 min of ECG" in r.json()["error"], r.text
    assert read == []


@SQLITE
def test_noise_is_not_classified(make_client):
    """White noise: every segment and beat is marked unusable with its reason, and no class is predicted."""
    client = make_client(predict_requires_key=False)
    noise = np.random.default_rng(3).standard_normal(360 * 60).astype(np.float32)
    r = client.post("/predict", files=[("file", ("noise.npy", _npy_array(noise)))], data={"fs": "360"})
    assert r.status_code == 200, r.text
    rec = r.json()["records"][0]
    assert rec["predicted_class"] is None
    rows = rec["segments"]["rows"] + rec["beats"]["rows"]
    assert all(row["class"] == "" and row["quality"] not in ("", "ok") for row in rows)
    assert rec["segments"]["summary"]["unusable"] == len(rec["segments"]["rows"]) > 0


@SQLITE
def test_predict_needs_multipart_and_respects_upload_limit(make_client):
    client = make_client(max_upload_bytes=500_000, predict_requires_key=False)
    r = client.post("/predict", json={"file": "100.dat"})
    assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
    r = client.post("/predict", files=_files("100", ".hea", ".dat"))  # 100.dat is 324 kB: within the limit
    assert r.status_code == 200
    r = client.post("/predict", files=_files("100", ".hea", ".dat") + _files("119", ".dat"))
    assert r.status_code == 413 and "at most 500000 bytes per upload" in r.json()["error"]


@BOTH
def test_predict_requires_a_key_by_default(make_client):
    client = make_client()
    r = client.post("/predict", files=_files("100", ".hea", ".dat"))
    assert r.status_code == 401 and r.json() == {"error": "Missing x-api-key header"}
    key, _ = client.app.state.store.issue_key("lab@example.com")
    r = client.post("/predict", files=_files("100", ".hea", ".dat"), headers={"x-api-key": key})
    assert r.status_code == 200
    assert client.app.state.store.key_rows("lab@example.com")[0]["request_count"] == 1


@SQLITE
def test_missing_models(make_client, tmp_path, test_models):
    only_segments = ServeModels(test_models["denoise"], test_models["segments"], str(tmp_path / "no-beats"))
    client = make_client(models=only_segments, predict_requires_key=False)
    r = client.post("/predict", files=_files("100", ".hea", ".dat"))
    assert r.status_code == 200
    rec = r.json()["records"][0]
    assert rec["beats"] is None and "no-beats" in rec["unavailable"]["beats"] and rec["segments"]["rows"]
    none = ServeModels(test_models["denoise"], str(tmp_path / "a"), str(tmp_path / "b"))
    r = make_client(models=none, predict_requires_key=False).post("/predict", files=_files("100", ".hea", ".dat"))
    assert r.status_code == 503 and r.json()["error"] == "Model not available"


@BOTH
def test_health_models_and_docs(make_client):
    client = make_client(predict_requires_key=False)
    h = client.get("/health")
    assert h.status_code == 200
    body = h.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert {m["status"] for m in body["models"].values()} == {"ready"}
    assert body["database_backend"] in ("sqlite", "postgresql")
    cards = client.get("/models").json()["models"]
    assert {c["role"] for c in cards} == {"denoise", "segments", "beats"}
    seg = next(c for c in cards if c["role"] == "segments")
    assert seg["classes"] == ["Normal", "Abnormal"] and seg["route"] == "/predict" and seg["fs"] == 360.0
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/api-keys/generation", "/api/v1/api-keys/deactivation", "/api/v1/api-keys/verify",
                 "/api/v1/denoising", "/predict", "/health", "/models"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI from the package: the page works offline (no CDN), its assets are served here
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": "The API key emailed by /api/v1/api-keys/generation."}
    for path in ("/api/v1/denoising", "/predict"):
        assert spec["paths"][path]["post"]["security"] == [{"ApiKeyAuth": []}]
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json() == {"error": "Not found: /api/v1/nothing-here"}
    r = client.get("/api/v1/denoising")
    assert r.status_code == 405 and "error" in r.json()


@SQLITE
def test_models_route_with_an_undefined_metric(make_client, test_models, tmp_path):
    """A card holding NaN (an undefined +P) is answered as strict JSON (null), not with a 500."""
    import json
    import shutil

    folder = tmp_path / "nan-beats"
    shutil.copytree(test_models["beats"], folder)
    card = json.loads((folder / "model.json").read_text())
    card["metrics"] = {"per_class": {"F": {"+P": float("nan"), "Se": 0.0}}}
    (folder / "model.json").write_text(json.dumps(card))        # Python writes the non-standard NaN literal
    models = ServeModels(test_models["denoise"], test_models["segments"], str(folder))
    r = make_client(models=models).get("/models")
    assert r.status_code == 200, r.text
    parsed = json.loads(r.text, parse_constant=lambda c: pytest.fail(f"non-standard JSON literal {c}"))
    beats = next(c for c in parsed["models"] if c["role"] == "beats")
    assert beats["metrics"]["per_class"]["F"] == {"+P": None, "Se": 0.0}


def _bundled_client(database_url, tmp_path):
    from serve_helpers import TestClient

    from ecgcore.serve.app import create_app
    from ecgcore.serve.settings import Settings

    return TestClient(create_app(Settings(database_url=database_url, outbox_dir=str(tmp_path / "o"),
                                          predict_requires_key=False),
                                 models=ServeModels()))  # the defaults: the bundled models


@pytest.mark.skipif(not {"segments-abnormal", "beats-aami"} <= set(list_bundled()),
                    reason="bundled segments-abnormal / beats-aami not in this tree yet")
@SQLITE
def test_bundled_classifiers(database_url, tmp_path):
    """The shipped attention model and Conformer behind the default settings score MIT-BIH 208."""
    with _bundled_client(database_url, tmp_path) as client:
        r = client.post("/predict", files=_files("208", ".hea", ".dat", ".atr"))
        assert r.status_code == 200, r.text
        rec = r.json()["records"][0]
        assert rec["unavailable"] == {}
        local = ecgcore.read_record(BUNDLED_MITDB / "208")
        models = client.app.state.models  # the server's sessions, run locally on the locally read record
        exp = models._get("segments").predict_record(local)
        rows = rec["segments"]["rows"]
        assert len(rows) == len(exp.rows) == 59 and rec["segments"]["model"] == "segments-abnormal"
        assert [x["class"] for x in rows] == [x["class"] for x in exp.rows]
        np.testing.assert_allclose([x["prob_Abnormal"] for x in rows], [x["prob_Abnormal"] for x in exp.rows],
                                   atol=1e-5)
        # the uploaded .atr gives each segment its reference label (majority rule: 19 of 59 Abnormal in 208)
        assert sum(x["reference"] == "Abnormal" for x in rows) == 19
        assert rec["predicted_class"] == ("Abnormal" if exp.summary["counts"]["Abnormal"] else "Normal")

        exp = models._get("beats").predict_record(local)
        assert rec["beats"]["model"] == "beats-aami"
        assert [b["class"] for b in rec["beats"]["rows"]] == [b["class"] for b in exp.rows]
        assert rec["beats"]["summary"]["counts"]["V"] > 100  # a trained model finds 208's many PVCs
        client.app.state.store.dispose()


def test_health_reports_a_lost_database(pg_cluster, serve_models, tmp_path):
    """PostgreSQL goes away under a running server: /health answers 503, the process stays up."""
    import uuid

    from serve_helpers import TestClient

    from ecgcore.serve.app import create_app
    from ecgcore.serve.settings import Settings

    name = "gone_" + uuid.uuid4().hex[:8]
    pg_cluster.admin(f"CREATE DATABASE {name}")
    app = create_app(Settings(database_url=pg_cluster.url(name), outbox_dir=str(tmp_path / "o")), models=serve_models)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        pg_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
        r = client.get("/health")
        assert r.status_code == 503 and r.json()["database"] == "unreachable" and r.json()["status"] == "degraded"
        r = client.post("/api/v1/api-keys/generation", json={"email": "x@example.com"})
        assert r.status_code == 503 and r.json() == {"error": "Service unavailable: the database cannot be reached"}
    app.state.store.dispose()
