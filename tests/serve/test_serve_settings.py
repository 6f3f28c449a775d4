"""Settings from the seed's environment variables, their validation, and what may be shown of them."""
from __future__ import annotations

import pytest

from ecgcore.serve.keys import normalize_email, valid_email
from ecgcore.serve.settings import Settings, default_data_dir


def test_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("ECGCORE_SERVE_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    s = Settings.from_env({})
    assert s.database_url == f"sqlite:///{tmp_path}/ecgcore/serve/serve.db"
    assert s.outbox_dir == str(tmp_path / "ecgcore" / "serve" / "outbox")
    assert default_data_dir() == tmp_path / "ecgcore" / "serve"
    assert (s.denoise_output, s.token_ttl_s, s.cors_origins, s.smtp_host) == ("zscore", 86400, [], "")


def test_seed_environment_names_round_trip():
    env = {"DATABASE_URL": "postgresql://heartify:pw@db:5434/heartify", "SMTP_HOST": "smtp.example.com",
           "SMTP_PORT": "2525", "SMTP_USER": "u", "SMTP_PASSWORD": "p", "SENDER_EMAIL": "api@example.com",
           "BASE_URL": "https://api.example.com/", "MODEL_VERSION": "4", "CORS_ORIGINS": "https://a.test, https://b.test",
           "SMTP_STARTTLS": "false", "ECGCORE_SERVE_RATE_PER_KEY": "0"}
    s = Settings.from_env(env)
    assert (s.smtp_port, s.model_version, s.base_url) == (2525, 4, "https://api.example.com")
    assert s.cors_origins == ["https://a.test", "https://b.test"] and s.smtp_starttls is False
    assert s.rate_limit_per_key == 0
    again = Settings.from_env(s.to_env())
    assert again == s


@pytest.mark.parametrize("env, fragment", [
    ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
    ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
    ({"ECGCORE_SERVE_DENOISE_OUTPUT": "volts"}, "denoise_output"),
    ({"ECGCORE_SERVE_MAX_BODY": "0"}, "max_body_bytes"),
    ({"ECGCORE_SERVE_RATE_PER_IP": "-1"}, "rate_limit_per_ip"),
])
def test_bad_settings_are_named(env, fragment):
    with pytest.raises(ValueError, match=fragment):
        Settings.from_env(env)


def test_redacted_hides_passwords():
    s = Settings(database_url="postgresql://heartify:hunter2@db:5432/h", smtp_password="hunter3")
    shown = s.redacted()
    assert "hunter2" not in str(shown) and "hunter3" not in str(shown)
    assert shown["database_url"] == "postgresql://heartify:***@db:5432/h"


@pytest.mark.parametrize("raw, ok", [("a@b.co", True), (" A@B.CO ", True), ("a@b", False), ("ab.co", False),
                                     ("a b@c.de", False), ("a@@b.de", False), ("x" * 250 + "@b.de", False)])
def test_email_rules(raw, ok):
    assert valid_email(normalize_email(raw)) is ok
