"""Shared by the bundled models' DS2 tests: the card's DS2 table, and `ecgcore infer` + `infer-report` on records
(tests/models is on sys.path while they run, as tests/serve for serve_helpers)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ecgcore.cli import main
from ecgcore.export import resolve_model


def card_table(model: str, key: str):
    """(card, card.metrics[key]); fails, naming the tool that writes it, when the card has no such table."""
    _, card = resolve_model(model)
    if key not in card.metrics:
        pytest.fail(f"the bundled {model} card has no {key!r} table (tools/ writes it)")
    return card, card.metrics[key]


def infer_report(model: str, mitdb_dir, records, tmp_path, *infer_args) -> dict:
    """`ecgcore infer MODEL RECORDS... INFER_ARGS` then `ecgcore infer-report`, as a dict."""
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(main, ["infer", model, *[str(mitdb_dir / r) for r in records], *infer_args, "-o",
                                    str(out), "--no-progress", "--threads", "2"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["infer-report", str(out), "--records-dir", str(mitdb_dir), "--json",
                                    str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    return json.loads((tmp_path / "m.json").read_text())
