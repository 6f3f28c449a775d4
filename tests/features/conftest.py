"""Fixtures for the time-frequency tests: real MIT-BIH beats and windows."""
from __future__ import annotations

import pytest
from tf_helpers import mitdb_beats, mitdb_windows


@pytest.fixture(scope="session")
def beats_100(mitdb_dir):
    return mitdb_beats(mitdb_dir, "100", limit=120)


@pytest.fixture(scope="session")
def beats_208(mitdb_dir):  # many ventricular beats: a morphology unlike record 100
    return mitdb_beats(mitdb_dir, "208", limit=120)


@pytest.fixture(scope="session")
def windows_100(mitdb_dir):
    return mitdb_windows(mitdb_dir, "100", count=4)
