"""API-key lifecycle of the Heartify API (SPEC §2.4-2.5) on SQLite and PostgreSQL, with real SMTP + STARTTLS."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from serve_helpers import free_port, link_token, mailed_key, obtain_key, smtp_settings
from sqlalchemy import text

from ecgcore.serve.keys import digest

SIGNAL = np.sin(np.linspace(0, 20 * np.pi, 1300)).tolist()


def test_full_key_lifecycle(make_client, smtp_server):
    client = make_client(**smtp_settings(smtp_server), base_url="https://heartify.test")

    r = client.post("/api/v1/api-keys/generation", json={"email": "  Alice@Example.COM "})
    assert r.status_code == 200
    assert r.json() == {"message": "Verification email sent. Please check your inbox.", "email": "alice@example.com"}
    (msg,) = smtp_server.wait_for(1)
    assert smtp_server.tls_sessions == [True]  # delivered over STARTTLS, after AUTH
    assert msg["Subject"] == "Heartify - API Key Generation Verification"
    assert msg["To"] == "alice@example.com" and msg["From"] == "noreply@heartify.test"
    assert "https://heartify.test/api/v1/api-keys/verify?token=" in msg.get_body(("html",)).get_content()
    assert "Verify Email" in msg.get_body(("html",)).get_content()
    token = link_token(msg)

    r = client.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Verification Successful!" in r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
    key_msg = smtp_server.wait_for(2)[1]
    assert key_msg["Subject"] == "Heartify - Your API Key"
    key = mailed_key(key_msg)
    assert len(key) == 43

    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"modelVersion", "denoised_signal"} and body["modelVersion"] == 1
    assert len(body["denoised_signal"]) == 1300

    # a second key while one is active: 409
    r = client.post("/api/v1/api-keys/generation", json={"email": "alice@example.com"})
    assert r.status_code == 409
    assert r.json() == {"error": "Email already has an active API key. Please deactivate it first."}

    r = client.post("/api/v1/api-keys/deactivation", json={"email": "ALICE@example.com"})
    assert r.status_code == 200 and r.json()["email"] == "alice@example.com"
    msg = smtp_server.wait_for(3)[2]
    assert msg["Subject"] == "Heartify - API Key Deactivation Verification"
    assert "Confirm Deactivation" in msg.get_body(("html",)).get_content()
    r = client.get("/api/v1/api-keys/verify", params={"token": link_token(msg)})
    assert r.status_code == 200 and "Verification Successful!" in r.text
    assert smtp_server.wait_for(4)[3]["Subject"] == "Heartify - API Key Deactivated"

    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    assert r.status_code == 401 and r.json() == {"error": "Invalid or inactive API key"}
    r = client.post("/api/v1/api-keys/deactivation", json={"email": "alice@example.com"})
    assert r.status_code == 404 and r.json() == {"error": "No active API key found for this email"}

    # after deactivation a new key can be generated, and the old one stays dead
    key2 = obtain_key(client, smtp_server, "alice@example.com")
    assert key2 != key
    rows = client.app.state.store.key_rows("alice@example.com")
    assert [r["active"] for r in rows] == [False, True]
    assert rows[1]["request_count"] == 0 and rows[0]["request_count"] == 1 and rows[0]["last_used"] is not None


def test_keys_and_tokens_are_stored_only_as_hashes(make_client, smtp_server):
    client = make_client(**smtp_settings(smtp_server))
    r = client.post("/api/v1/api-keys/generation", json={"email": "bob@example.org"})
    token = link_token(smtp_server.wait_for(1)[0])
    client.get("/api/v1/api-keys/verify", params={"token": token})
    key = mailed_key(smtp_server.wait_for(2)[1])
    assert r.status_code == 200
    client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    engine = client.app.state.store.engine
    dump = []
    with engine.connect() as conn:
        for table in ("api_keys", "verification_tokens", "rate_counters"):
            dump += [str(v) for row in conn.execute(text(f"SELECT * FROM {table}")) for v in row]
    blob = "\n".join(dump)
    assert key not in blob and token not in blob
    assert digest(key) in blob and digest(token) in blob


@pytest.mark.parametrize("body, status, error", [
    ({}, 400, "Missing required field: email"),
    ({"email": ""}, 400, "Missing required field: email"),
    ({"email": "no-at-sign.example.com"}, 400, "Invalid email format"),
    ({"email": "no-dot@example"}, 400, "Invalid email format"),
    ({"email": "two@@example.com"}, 400, "Invalid email format"),
    ({"email": 42}, 400, "Invalid email format"),
    # spellings that a mail server delivers to victim@x.io (comments) or to two mailboxes (lists)
    ({"email": "(1)victim@x.io"}, 400, "Invalid email format"),
    ({"email": "victim@x.io(3)"}, 400, "Invalid email format"),
    ({"email": "victim@x.io,"}, 400, "Invalid email format"),
    ({"email": "other@x.io,victim@x.io"}, 400, "Invalid email format"),
    ({"email": "other,victim@x.io"}, 400, "Invalid email format"),
    ({"email": "Victim <victim@x.io>"}, 400, "Invalid email format"),
    ({"email": '"vic tim"@x.io'}, 400, "Invalid email format"),
    ({"email": "vic..tim@x.io"}, 400, "Invalid email format"),
    ({"email": "victim@x.io;other@x.io"}, 400, "Invalid email format"),
])
def test_email_validation(make_client, body, status, error):
    client = make_client()
    for route in ("generation", "deactivation"):
        r = client.post(f"/api/v1/api-keys/{route}", json=body)
        assert (r.status_code, r.json()) == (status, {"error": error})


def test_one_spelling_per_mailbox(make_client, smtp_server):
    """Case and surrounding spaces do not make a second identity: the per-address limit counts them together."""
    client = make_client(**smtp_settings(smtp_server), email_requests_per_hour=2)
    for spelling in ("victim@x.io", " VICTIM@X.IO"):
        r = client.post("/api/v1/api-keys/generation", json={"email": spelling})
        assert r.status_code == 200 and r.json()["email"] == "victim@x.io"
    r = client.post("/api/v1/api-keys/generation", json={"email": "Victim@x.io"})
    assert r.status_code == 429


def test_a_second_generation_link_does_not_rotate_the_key(make_client, smtp_server):
    """Two generation links requested before either is followed: the second one answers 409, the key stays."""
    client = make_client(**smtp_settings(smtp_server))
    for _ in range(2):
        assert client.post("/api/v1/api-keys/generation", json={"email": "bob@example.com"}).status_code == 200
    first, second = (link_token(m) for m in smtp_server.wait_for(2))
    assert client.get("/api/v1/api-keys/verify", params={"token": first}).status_code == 200
    key = mailed_key(smtp_server.wait_for(3)[2])
    r = client.get("/api/v1/api-keys/verify", params={"token": second})
    assert r.status_code == 409
    assert r.json() == {"error": "Email already has an active API key. Please deactivate it first."}
    rows = client.app.state.store.key_rows("bob@example.com")
    assert len(rows) == 1 and rows[0]["active"]
    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    assert len(smtp_server.wait_for(3)) == 3     # no second key email


def test_malformed_bodies(make_client):
    client = make_client()
    r = client.post("/api/v1/api-keys/generation", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "Request body must be valid JSON"}
    r = client.post("/api/v1/api-keys/generation", json=["a@b.com"])
    assert r.status_code == 400 and r.json() == {"error": "Request body must be a JSON object"}


def test_verification_token_errors(make_client, smtp_server):
    client = make_client(**smtp_settings(smtp_server))
    r = client.get("/api/v1/api-keys/verify")
    assert r.status_code == 400 and r.text == "Invalid verification link"
    assert r.headers["content-type"].startswith("text/plain")
    r = client.get("/api/v1/api-keys/verify", params={"token": "x" * 43})
    assert r.status_code == 400 and r.json() == {"error": "Invalid or expired token"}

    client.post("/api/v1/api-keys/generation", json={"email": "carol@example.com"})
    token = link_token(smtp_server.wait_for(1)[0])
    client.app.state.store.expire_token_now(token)
    r = client.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 400 and r.json() == {"error": "Token has expired"}
    assert client.app.state.store.key_rows("carol@example.com") == []

    client.post("/api/v1/api-keys/generation", json={"email": "carol@example.com"})
    token = link_token(smtp_server.wait_for(2)[1])
    assert client.get("/api/v1/api-keys/verify", params={"token": token}).status_code == 200
    r = client.get("/api/v1/api-keys/verify", params={"token": token})  # replay
    assert r.status_code == 400 and r.json() == {"error": "Invalid or expired token"}
    assert len(client.app.state.store.key_rows("carol@example.com")) == 1


def test_tokens_survive_a_restart(make_client, smtp_server):
    """A link emailed by one server process is honoured by another one on the same database."""
    first = make_client(**smtp_settings(smtp_server))
    first.post("/api/v1/api-keys/generation", json={"email": "dave@example.com"})
    token = link_token(smtp_server.wait_for(1)[0])
    first.__exit__(None, None, None)
    second = make_client(**smtp_settings(smtp_server))
    r = second.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 200
    key = mailed_key(smtp_server.wait_for(2)[1])
    assert second.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key}).status_code == 200


def test_deactivation_token_when_key_already_gone(make_client, smtp_server):
    client = make_client(**smtp_settings(smtp_server))
    obtain_key(client, smtp_server, "erin@example.com")
    for _ in range(2):
        assert client.post("/api/v1/api-keys/deactivation", json={"email": "erin@example.com"}).status_code == 200
    first, second = (link_token(m) for m in smtp_server.wait_for(4)[2:4])
    assert client.get("/api/v1/api-keys/verify", params={"token": first}).status_code == 200
    r = client.get("/api/v1/api-keys/verify", params={"token": second})
    assert r.status_code == 400 and r.json() == {"error": "No active API key found for this email"}


def test_mail_failures(make_client, smtp_server, caplog):
    """SMTP down: 500 with the seed's messages, and nothing usable is left behind."""
    dead = {"smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_starttls": True}
    client = make_client(**dead)
    r = client.post("/api/v1/api-keys/generation", json={"email": "frank@example.com"})
    assert r.status_code == 500 and r.json() == {"error": "Failed to send verification email"}
    with client.app.state.store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM verification_tokens")).scalar_one() == 0

    # token mailed while SMTP works, key email fails: 500 and the new key is not left active
    good = make_client(**smtp_settings(smtp_server))
    good.post("/api/v1/api-keys/generation", json={"email": "frank@example.com"})
    token = link_token(smtp_server.wait_for(1)[0])
    r = client.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 500 and r.json() == {"error": "API key generated but failed to send email"}
    assert [row["active"] for row in client.app.state.store.key_rows("frank@example.com")] == [False]

    obtain_key(good, smtp_server, "frank@example.com")
    good.post("/api/v1/api-keys/deactivation", json={"email": "frank@example.com"})
    token = link_token(smtp_server.wait_for(4)[3])
    r = client.get("/api/v1/api-keys/verify", params={"token": token})
    assert r.status_code == 500 and r.json() == {"error": "API key deactivated but failed to send confirmation email"}
    assert not any(row["active"] for row in client.app.state.store.key_rows("frank@example.com"))


def test_smtp_login_failure_is_a_500(make_client, smtp_server):
    settings = smtp_settings(smtp_server) | {"smtp_password": "wrong"}
    client = make_client(**settings)
    r = client.post("/api/v1/api-keys/generation", json={"email": "gina@example.com"})
    assert r.status_code == 500 and r.json() == {"error": "Failed to send verification email"}


def test_no_key_or_token_in_logs(make_client, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(**smtp_settings(smtp_server))
    key = obtain_key(client, smtp_server, "hank@example.com")
    client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key[:-1] + "A"})
    token = link_token(smtp_server.messages[0])
    # the server's own loggers (the test's SMTP server and HTTP client log the secrets they carry)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("ecgcore", "uvicorn",
                                                                                     "fastapi", "sqlalchemy")))
    assert "/api/v1/api-keys/verify" in logged and "/api/v1/denoising" in logged  # the access log is there
    assert key not in logged and token not in logged and key[:-1] not in logged


def test_rate_limits(make_client, smtp_server):
    client = make_client(**smtp_settings(smtp_server), rate_limit_per_key=3, rate_limit_per_ip=0,
                         email_requests_per_hour=2)
    client.app.state.limiter.clock = lambda: 1_000_000.0  # no window edge in the middle of the test
    key = obtain_key(client, smtp_server, "ivy@example.com")
    codes = [client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key}).status_code
             for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = client.post("/api/v1/denoising", json={"ecg_signal": SIGNAL}, headers={"x-api-key": key})
    assert r.json()["error"].startswith("Rate limit exceeded: at most 3 requests per 60 s per API key")
    assert int(r.headers["Retry-After"]) == 60 - 1_000_000 % 60

    # per address: the generation request above was the first of 2 per hour
    assert client.post("/api/v1/api-keys/deactivation", json={"email": "ivy@example.com"}).status_code == 200
    r = client.post("/api/v1/api-keys/deactivation", json={"email": "ivy@example.com"})
    assert r.status_code == 429 and "per email address" in r.json()["error"]

    per_ip = make_client(rate_limit_per_ip=4)
    per_ip.app.state.limiter.clock = lambda: 2_000_000.0
    codes = [per_ip.get("/api/v1/api-keys/verify", params={"token": "nope"}).status_code for _ in range(6)]
    assert codes == [400, 400, 400, 400, 429, 429]
    assert per_ip.get("/health").status_code == 200  # health checks are not rate limited


def test_cors(make_client):
    open_client = make_client(cors_origins=["https://app.heartify.test"])
    r = open_client.options("/api/v1/denoising", headers={
        "Origin": "https://app.heartify.test", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key,content-type"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.heartify.test"
    assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
    r = open_client.options("/api/v1/denoising", headers={"Origin": "https://evil.test",
                                                          "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers

    r = open_client.post("/api/v1/denoising", content=b"x" * 300_000,
                         headers={"Origin": "https://app.heartify.test", "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["access-control-allow-origin"] == "https://app.heartify.test"

    closed = make_client()  # the default: no cross-origin access
    r = closed.get("/health", headers={"Origin": "https://app.heartify.test"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
