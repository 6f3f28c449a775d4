"""The bundled segments-abnormal reproduces its card's DS2 figures through `ecgcore infer` (issue 21).

Default run: two full DS2 records (232: many abnormal windows; 100: almost none), window by window against the
card's per-record table; `--runslow`: all 22 DS2 records, the card's ROC-AUC and F1.
"""
from __future__ import annotations

import pytest
from bundled_ds2 import card_table, infer_report

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")
KEY = "DS2, ecgcore infer (every window, seed label rule)"


def _table():
    return card_table("segments-abnormal", KEY)


def _score(mitdb_dir, records, tmp_path):
    return infer_report("segments-abnormal", mitdb_dir, records, tmp_path)


def test_two_ds2_records_match_the_card(mitdb_dir, tmp_path):
    card, table = _table()
    rep = _score(mitdb_dir, ["100", "232"], tmp_path)
    for rec in ("100", "232"):
        want, got = table["records"][rec], rep["records"][rec]
        assert (got["windows"], got["positive"]) == (want["windows"], want["positive"])
        assert abs(got["correct"] - want["correct"]) <= 1, (rec, got, want)
    assert table["records"]["232"]["positive"] > 100  # the record does hold abnormal windows


@pytest.mark.slow
def test_all_of_ds2_reproduces_the_card(mitdb_dir, tmp_path):
    from ecgcore.datasets.mitdb import DS2

    card, table = _table()
    rep = _score(mitdb_dir, list(DS2), tmp_path)
    assert rep["roc_auc"] == pytest.approx(table["roc_auc"], abs=1e-3)
    assert rep["f1"] == pytest.approx(table["f1"], abs=2e-3)
    assert card.headline["DS2 ROC-AUC"] == pytest.approx(rep["roc_auc"], abs=1e-3)
