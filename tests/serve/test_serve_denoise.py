"""POST /api/v1/denoising: the seed's contract (SPEC §2.4), its errors, and the numbers against onnxruntime."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from serve_helpers import obtain_key

from ecgcore.export import list_bundled, read_card
from ecgcore.serve.inference import ServeModels

RNG = np.random.default_rng(7)
SIGNAL = (0.8 * np.sin(np.linspace(0, 24 * np.pi, 1300)) + 0.1 * RNG.standard_normal(1300) + 3.0)


@pytest.fixture
def keyed(make_client, tmp_path):
    """(client, key) with the key obtained through the outbox mailer (no SMTP configured)."""
    from ecgcore.serve.mail import OutboxMailer

    class Outbox(OutboxMailer):
        """The real outbox, plus the parsed messages for the helper that reads links and keys."""

        def __init__(self, folder):
            super().__init__(folder)
            self.messages = []

        def send(self, msg):
            import email
            import email.policy

            path = super().send(msg)
            self.messages.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
            return path

        def wait_for(self, n):
            assert len(self.messages) >= n
            return self.messages

    outbox = Outbox(tmp_path / "outbox")
    client = make_client(mailer=outbox)
    return client, obtain_key(client, outbox, "lab@example.com"), outbox


def _ort_denoise(onnx_path, z: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = z.astype(np.float32)[None, None, :] if len(inp.shape) == 3 and inp.shape[1] == 1 else \
        z.astype(np.float32)[None, :, None]
    return sess.run(None, {inp.name: x})[0].reshape(-1)


def test_outbox_files_are_private(keyed):
    client, key, outbox = keyed
    files = sorted(outbox.folder.glob("*.eml"))
    assert len(files) == 2
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert outbox.folder.stat().st_mode & 0o777 == 0o700
    assert key in files[1].read_text()


def test_denoised_signal_is_the_model_output_in_zscore_units(keyed, test_models):
    client, key, _ = keyed
    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL.tolist()}, headers={"x-api-key": key})
    assert r.status_code == 200
    body = r.json()
    assert body["modelVersion"] == 1 and r.headers["x-signal-units"] == "zscore"
    z = (SIGNAL - SIGNAL.mean()) / SIGNAL.std()  # the seed: population std over the request
    expected = _ort_denoise(f"{test_models['denoise']}/model.onnx", z)
    got = np.asarray(body["denoised_signal"])
    assert got.shape == (1300,)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert abs(got.mean()) < 0.05  # z-score units, not the input's offset of 3

    r = client.post("/api/v1/denoising?output=input", json={"ecg_signal": SIGNAL.tolist()},
                    headers={"x-api-key": key})
    assert r.status_code == 200 and r.headers["x-signal-units"] == "input"
    np.testing.assert_allclose(r.json()["denoised_signal"], expected * SIGNAL.std() + SIGNAL.mean(), atol=1e-4)


def test_flat_signal_uses_unit_std(keyed, test_models):
    client, key, _ = keyed
    r = client.post("/api/v1/denoising", json={"ecg_signal": [5] * 1300}, headers={"x-api-key": key})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["denoised_signal"], 0.0, atol=1e-6)


def test_settings_from_env(database_url):
    from ecgcore.serve.settings import Settings

    with pytest.raises(ValueError, match="denoise_output"):
        Settings(database_url=database_url, denoise_output="mV")
    s = Settings.from_env({"ECGCORE_SERVE_DENOISE_OUTPUT": "input", "MODEL_VERSION": "7",
                           "DATABASE_URL": database_url})
    assert s.denoise_output == "input" and s.model_version == 7 and s.database_url == database_url
    with pytest.raises(ValueError, match="MODEL_VERSION"):
        Settings.from_env({"MODEL_VERSION": "seven"})


@pytest.mark.parametrize("headers, status, error", [
    ({}, 401, "Missing x-api-key header"),
    ({"x-api-key": ""}, 401, "Missing x-api-key header"),
    ({"x-api-key": "not-a-key"}, 401, "Invalid or inactive API key"),
    ({"x-api-key": "k" * 5000}, 401, "Invalid or inactive API key"),
])
def test_auth_errors(make_client, headers, status, error):
    client = make_client()
    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL.tolist()}, headers=headers)
    assert (r.status_code, r.json()) == (status, {"error": error})


def test_body_errors(keyed):
    client, key, _ = keyed
    h = {"x-api-key": key}

    def post(payload=None, raw=None):
        if raw is not None:
            return client.post("/api/v1/denoising", content=raw, headers=h | {"content-type": "application/json"})
        return client.post("/api/v1/denoising", json=payload, headers=h)

    r = post({"signal": [1, 2]})
    assert r.status_code == 400 and r.json()["error"] == "Missing required field: ecg_signal"
    assert "ecg_signal" in r.json()["expected_format"]
    r = post({"ecg_signal": "1,2,3"})
    assert (r.status_code, r.json()) == (400, {"error": "ecg_signal must be an array"})
    for n in (0, 1299, 1301, 2600):
        r = post({"ecg_signal": [0.0] * n})
        assert r.status_code == 400
        assert r.json()["error"] == f"ecg_signal must have exactly 1300 values (got {n})" and "note" in r.json()
    bad = SIGNAL.tolist()
    bad[17] = "abc"
    r = post({"ecg_signal": bad})
    assert r.status_code == 400 and r.json()["error"] == "ecg_signal must contain only numbers"
    assert "index 17" in r.json()["details"]
    bad[17] = True
    assert post({"ecg_signal": bad}).json()["error"] == "ecg_signal must contain only numbers"
    bad[17] = [1.0]
    assert post({"ecg_signal": bad}).status_code == 400
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps({"ecg_signal": SIGNAL.tolist()}).replace(str(SIGNAL[5]), literal, 1)
        r = post(raw=raw.encode())
        assert r.status_code == 400 and r.json()["error"] == "ecg_signal must contain only finite numbers", literal
        assert "index 5" in r.json()["details"]
    r = post(raw=json.dumps({"ecg_signal": [10 ** 400] + [0] * 1299}).encode())
    assert r.status_code == 400 and r.json()["error"] == "ecg_signal must contain only finite numbers"
    assert post(raw=b"[1, 2").json() == {"error": "Request body must be valid JSON"}
    assert post(raw=b"[1, 2]").json() == {"error": "Request body must be a JSON object"}
    assert post(raw=b"").json() == {"error": "Request body must be a JSON object"}
    # 100,000 nested "[" (a RecursionError in Python's parser): invalid JSON for this API, not a 500
    for raw in (b"[" * 100_000, b'{"ecg_signal": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                b'{"a": NaN, "b": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        r = post(raw=raw)
        assert r.status_code == 400 and r.json()["error"], r.text[:200]


def test_values_near_the_float_limit(keyed):
    """Alternating ±1e308: z-scored without overflow; restoring that scale in float32 is a 400, not a 500."""
    client, key, _ = keyed
    signal = np.tile([1e308, -1e308], 650).tolist()
    r = client.post("/api/v1/denoising", json={"ecg_signal": signal}, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    assert np.isfinite(r.json()["denoised_signal"]).all()
    r = client.post("/api/v1/denoising?output=input", json={"ecg_signal": signal}, headers={"x-api-key": key})
    assert r.status_code == 400 and "does not fit in float32" in r.json()["error"]


def test_oversize_body(keyed):
    client, key, _ = keyed
    huge = json.dumps({"ecg_signal": [0.123456789] * 40000}).encode()
    r = client.post("/api/v1/denoising", content=huge, headers={"x-api-key": key, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"].startswith("Request body too large: at most 262144 bytes")

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for i in range(0, len(huge), 16384):
            yield huge[i:i + 16384]

    r = client.post("/api/v1/denoising", content=chunks(), headers={"x-api-key": key,
                                                                    "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"].startswith("Request body too large")


def test_unknown_output_mode(keyed):
    client, key, _ = keyed
    r = client.post("/api/v1/denoising?output=mV", json={"ecg_signal": SIGNAL.tolist()}, headers={"x-api-key": key})
    assert r.status_code == 400 and r.json()["error"].startswith("Invalid request: output")


def test_model_initialization_error(make_client, tmp_path, smtp_server):
    """As in the seed, a model that fails to load leaves the server up and the route answers 500."""
    from serve_helpers import smtp_settings

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    (broken / "model.json").write_text(json.dumps(read_card_dict()))
    models = ServeModels(str(broken), str(tmp_path / "missing-seg"), str(tmp_path / "missing-beats"))
    client = make_client(models=models, **smtp_settings(smtp_server))
    key = obtain_key(client, smtp_server, "lab@example.com")
    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL.tolist()}, headers={"x-api-key": key})
    assert r.status_code == 500 and r.json()["error"] == "Model initialization error"
    assert "onnxruntime cannot load" in r.json()["details"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"]["denoise"]["status"] == "unavailable"


def read_card_dict() -> dict:
    return {"name": "broken", "task": "denoising", "framework": "onnx", "inputs": [], "outputs": [], "fs": 130.0,
            "preprocessing": {"kind": "denoise-pairs"}}


@pytest.mark.skipif("denoiser" not in list_bundled(), reason="the bundled denoiser is not in this tree yet "
                                                              "(python/ecgcore/data/models/denoiser)")
def test_bundled_denoiser(database_url, tmp_path):
    """The shipped model behind the default settings: the response equals onnxruntime on the z-scored request."""
    from serve_helpers import TestClient

    from ecgcore.serve.app import create_app
    from ecgcore.serve.settings import Settings

    models = ServeModels()  # the defaults: bundled denoiser, segments-abnormal, beats-aami
    with TestClient(create_app(Settings(database_url=database_url, outbox_dir=str(tmp_path / "o")),
                               models=models)) as client:
        assert client.get("/health").json()["models"]["denoise"]["status"] == "ready"
        key, row_id = client.app.state.store.issue_key("bundled@example.com")
        r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL.tolist()}, headers={"x-api-key": key})
        assert r.status_code == 200, r.text
        card = read_card(list_bundled()["denoiser"])
        assert card.fs == 130.0
        z = (SIGNAL - SIGNAL.mean()) / SIGNAL.std()
        expected = _ort_denoise(list_bundled()["denoiser"] / "model.onnx", z)
        np.testing.assert_allclose(r.json()["denoised_signal"], expected, atol=1e-4)
        client.app.state.store.dispose()


# ---- fuzzing the JSON bodies (issue 18 §6) -------------------------------------------------------------------
def _json_values():
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
    return st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=8),
                                                         st.dictionaries(st.text(max_size=12), kids, max_size=6)),
                        max_leaves=40)


def _bodies():
    """Raw request bodies: random JSON documents, near-valid denoising requests, and mutated bytes of a valid one."""
    from hypothesis import strategies as st

    valid = json.dumps({"ecg_signal": SIGNAL.tolist()}).encode()
    near = st.builds(lambda v, n: json.dumps({"ecg_signal": [v] * n}).encode(), _json_values(),
                     st.sampled_from([0, 1, 1299, 1300, 1301]))
    mutated = st.builds(lambda i, b, cut: (valid[:i] + bytes([b]) + valid[i + 1:])[:cut],
                        st.integers(0, len(valid) - 1), st.integers(0, 255), st.integers(0, len(valid)))
    literals = st.sampled_from([b"NaN", b"[Infinity]", b'{"ecg_signal": -Infinity}', b"\xff\xfe", b"{" * 5000,
                                b'{"ecg_signal": [1e999' + b", 0" * 1299 + b"]}", b"0" * 10000, b"null"])
    return st.one_of(_json_values().map(lambda v: json.dumps(v).encode()), near, mutated, literals)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_random_json_bodies_never_give_a_500(keyed, request):
    """Random and mutated JSON bodies on every JSON route: a 2xx/4xx with a JSON error, never a 500."""
    from hypothesis import HealthCheck, given, settings

    client, key, _ = keyed
    examples = 400 if request.config.getoption("--runslow") else 60
    seen = {"n": 0}

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=_bodies())
    def check(body):
        for route, headers in (("/api/v1/denoising", {"x-api-key": key}), ("/api/v1/api-keys/generation", {}),
                               ("/api/v1/api-keys/deactivation", {})):
            r = client.post(route, content=body, headers={**headers, "content-type": "application/json"})
            assert r.status_code < 500, (route, body[:200], r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert "error" in r.json(), (route, r.text[:300])
            seen["n"] += 1

    check()
    print(f"\nFUZZ json bodies: {seen['n']} requests")
    assert seen["n"] >= 3 * examples
