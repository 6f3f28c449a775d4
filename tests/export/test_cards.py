"""Model cards are strict JSON (RFC 8259): every bundled card parses without NaN/Infinity, and ``write_card``
turns undefined metrics into null."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ecgcore.export import list_bundled
from ecgcore.export.card import ModelCard, read_card, write_card


def _strict(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON literal {c}"))


@pytest.mark.parametrize("name", sorted(list_bundled()))
def test_bundled_cards_are_strict_json(name):
    folder = list_bundled()[name]
    card = _strict((folder / "model.json").read_text())
    assert card["name"] and card["preprocessing"]["kind"]


def test_write_card_turns_undefined_metrics_into_null(tmp_path):
    card = ModelCard(name="m", task="classification", framework="pytorch", inputs=[], outputs=[], fs=360.0,
                     preprocessing={"kind": "segments"},
                     metrics={"per_class": {"F": {"+P": float("nan"), "Se": np.float32(0.5)}},
                              "curve": np.array([1.0, np.inf, -np.inf]), "n": np.int64(3)})
    path = write_card(card, tmp_path / "model.json")
    d = _strict(path.read_text())
    assert d["metrics"] == {"per_class": {"F": {"+P": None, "Se": 0.5}}, "curve": [1.0, None, None], "n": 3}
    back = read_card(path)
    assert back.metrics["per_class"]["F"]["+P"] is None and not any(
        isinstance(v, float) and math.isnan(v) for v in back.metrics["curve"] if v is not None)
