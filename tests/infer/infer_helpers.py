"""Helpers shared by the infer tests (tests/infer is on sys.path while they run, as tests/serve for serve_helpers)."""
from __future__ import annotations

import csv

from click.testing import CliRunner

from ecgcore.cli import main


def run_cli(*args):
    """``ecgcore ARGS...`` in-process (every argument str()-ed); exceptions propagate."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
