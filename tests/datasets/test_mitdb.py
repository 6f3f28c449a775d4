"""MIT-BIH conventions: AAMI map, DS1/DS2 counts, seed splits vs scikit-learn, leaky-split refusal, labelling."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import wfdb

from ecgcore.datasets import mitdb
from ecgcore.datasets.ec57 import BEAT_SYMBOLS


def test_aami_map():
    expected = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
    for cls, symbols in expected.items():
        for s in symbols:
            assert mitdb.aami_class(s) == cls
            assert mitdb.aami_class(s, "conformer") == cls
    for s in "+~|x\"![]":
        assert mitdb.aami_class(s) is None
    assert mitdb.aami_class("?", "conformer") == "Q" and mitdb.aami_class("?") is None
    assert list(mitdb.aami_labels(["N", "+", "V"])) == ["N", "", "V"]
    with pytest.raises(ValueError, match="variant"):
        mitdb.aami_class("N", "nope")


def test_records_and_splits_partition_the_database(mitdb_records):
    assert sorted(mitdb.RECORDS) == sorted(mitdb_records)
    assert len(mitdb.DS1) == len(mitdb.DS2) == 22
    assert set(mitdb.DS1).isdisjoint(mitdb.DS2)
    assert set(mitdb.DS1) | set(mitdb.DS2) | set(mitdb.PACED) == set(mitdb.RECORDS)


def test_ds1_ds2_class_counts_reproduce_de_chazal(mitdb_dir):
    table = mitdb.aami_table(mitdb_dir)
    # Independent count straight from wfdb.rdann with the EC57 map.
    m = {**{s: "N" for s in "NLRej"}, **{s: "S" for s in "AaJS"}, "V": "V", "E": "V", "F": "F",
         **{s: "Q" for s in "/fQ"}}
    for split, records in (("DS1", mitdb.DS1), ("DS2", mitdb.DS2)):
        c = collections.Counter()
        for r in records:
            c.update(m[s] for s in wfdb.rdann(str(mitdb_dir / r), "atr").symbol if s in m)
        assert table[split] == {k: c[k] for k in mitdb.AAMI_CLASSES}
        assert table[split] == mitdb.DE_CHAZAL_2004[split]
    assert mitdb.aami_table(mitdb_dir, variant="conformer") == table
    text = mitdb.format_aami_table(table)
    assert "45,866" in text and "(differs)" not in text


def test_conformer_split_equals_the_seed_split():
    sk = pytest.importorskip("sklearn.model_selection")
    _, test = sk.train_test_split(list(mitdb.CONFORMER_RECORDS), test_size=0.15, random_state=42)
    train, held_out = mitdb.conformer_split()
    assert sorted(held_out) == sorted(test)
    assert len(train) == 38 and set(train).isdisjoint(held_out)
    assert "217" in train + held_out and "102" not in train


def test_record_kfold_equals_sklearn():
    sk = pytest.importorskip("sklearn.model_selection")
    train, _ = mitdb.conformer_split()
    ours = mitdb.record_kfold(train, 5, seed=42)
    for (tr, te), (a, b) in zip(ours, sk.KFold(5, shuffle=True, random_state=42).split(train)):
        assert tr == [train[i] for i in a] and te == [train[i] for i in b]
    assert sorted(sum((te for _, te in ours), [])) == sorted(train)
    with pytest.raises(ValueError, match="folds"):
        mitdb.record_kfold(["100", "101"], 5)


def test_beat_level_split_is_refused_unless_allowed():
    with pytest.raises(ValueError, match="leaks patients"):
        mitdb.beat_random_split(100)
    with pytest.warns(mitdb.LeakySplitWarning, match="same patients"):
        tr, te = mitdb.beat_random_split(100, test_size=0.2, allow_leaky_split=True)
    assert te.size == 20 and np.union1d(tr, te).size == 100


def test_reference_and_detected_beats(mitdb_dir):
    ref = mitdb.record_beats(mitdb_dir / "208", source="reference")
    ann = wfdb.rdann(str(mitdb_dir / "208"), "atr")
    n_aami = sum(s in mitdb.AAMI_VARIANTS["aami"] for s in ann.symbol)
    assert ref.r_peaks.size == n_aami and set(ref.aami) <= set(mitdb.AAMI_CLASSES)
    det = mitdb.record_beats(mitdb_dir / "208", source="detected")
    matched = det.reference_index >= 0
    sample, symbol = np.asarray(ann.sample), np.asarray(ann.symbol)
    # Each matched detection carries its reference beat's symbol and lies within 150 ms of it.
    np.testing.assert_array_equal(det.symbol[matched], symbol[det.reference_index[matched]])
    assert np.all(np.abs(det.r_peaks[matched] - sample[det.reference_index[matched]]) <= 54)
    assert np.all(det.aami[~matched] == "")
    n_beats = sum(s in BEAT_SYMBOLS for s in symbol)
    assert matched.sum() + det.n_missed == n_beats
    assert matched.sum() >= 0.99 * n_beats
