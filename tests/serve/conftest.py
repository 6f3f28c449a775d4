"""Fixtures of the API tests (services in serve_helpers.py)."""
from __future__ import annotations

import uuid

import pytest

from serve_helpers import PgCluster, SmtpServer

@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_database(pg_cluster):
    """One database for the session; each test starts from empty tables (faster than CREATE DATABASE)."""
    name = "t_" + uuid.uuid4().hex[:12]
    pg_cluster.admin(f"CREATE DATABASE {name}")
    return pg_cluster.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database on each back-end (a module narrows it with ``parametrize(..., indirect=True)``)."""
    return empty_database(request, tmp_path, request.param)


def empty_database(request, tmp_path, backend: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'serve.db'}"
    url = request.getfixturevalue("pg_database")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS api_keys, verification_tokens, rate_counters CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def smtp_server(tmp_path):
    server = SmtpServer(tmp_path)
    yield server
    server.stop()



@pytest.fixture(scope="session")
def test_models(tmp_path_factory):
    """Folders of small real ONNX models with cards: {"denoise", "segments", "beats"}."""
    from serve_helpers import make_beat_classifier, make_denoiser, make_segment_classifier

    root = tmp_path_factory.mktemp("models")
    return {"denoise": str(make_denoiser(root / "denoiser")),
            "segments": str(make_segment_classifier(root / "segments")),
            "beats": str(make_beat_classifier(root / "beats"))}


@pytest.fixture(scope="session")
def serve_models(test_models):
    """One loaded ServeModels shared by the tests (loading onnxruntime sessions is the slow part)."""
    from ecgcore.serve.inference import ServeModels

    models = ServeModels(test_models["denoise"], test_models["segments"], test_models["beats"])
    models.load()
    return models


@pytest.fixture
def make_client(database_url, serve_models, tmp_path):
    """``make_client(**settings) -> TestClient`` on this test's database; started and closed for you."""
    from serve_helpers import TestClient

    from ecgcore.serve.app import create_app
    from ecgcore.serve.settings import Settings

    clients = []

    def make(models=None, mailer=None, **overrides):
        overrides.setdefault("outbox_dir", str(tmp_path / "outbox"))
        settings = Settings(database_url=database_url, **overrides)
        client = TestClient(create_app(settings, models=models or serve_models, mailer=mailer))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
        c.app.state.store.dispose()
