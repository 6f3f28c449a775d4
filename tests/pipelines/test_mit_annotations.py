"""The fast MIT-format annotation reader that ``preprocess`` uses: every field equal to ``wfdb.rdann``."""
from __future__ import annotations

import numpy as np
import pytest
import wfdb

from ecgcore.io import read_annotations
from ecgcore.io.annotations import parse_annotation_bytes


def _assert_same(path_base, ann) -> None:
    ref = wfdb.rdann(str(path_base), "atr")
    np.testing.assert_array_equal(ann.sample, ref.sample)
    assert ann.sample.dtype == np.int64
    np.testing.assert_array_equal(ann.symbol, np.asarray(ref.symbol))
    assert ann.symbol.dtype == np.asarray(ref.symbol).dtype
    assert ann.aux_note == list(ref.aux_note)
    np.testing.assert_array_equal(ann.chan, ref.chan)
    np.testing.assert_array_equal(ann.subtype, ref.subtype)
    assert ann.fs == ref.fs


def test_every_reference_annotation_file_reads_as_wfdb(data_dir, mitdb_records):
    """All 48 MIT-BIH .atr files (rhythm notes in aux, SKIPs, chan/num modifiers) and the ECG-ID ones
    (a leading '## time resolution' note) take the fast path and equal wfdb.rdann."""
    files = [data_dir / "mitdb" / f"{r}.atr" for r in mitdb_records]
    assert len(files) == 48
    files += sorted((data_dir / "ecgiddb").rglob("*.atr"))[:40]
    for f in files:
        assert parse_annotation_bytes(f.read_bytes()) is not None, f
        _assert_same(f.with_suffix(""), read_annotations(f.with_suffix("")))


def test_synthetic_fields_skips_and_modifiers(tmp_path):
    """Long gaps (SKIP), negative subtypes, nums and channels that carry over, odd/even aux lengths."""
    sample = np.array([5, 2000, 2001, 70000, 70000 + 5_000_000, 70000 + 5_000_010])
    symbol = ["N", "V", "+", "A", "~", "N"]
    subtype = np.array([0, -3, 0, 7, 0, 0])
    chan = np.array([0, 1, 1, 0, 2, 2])
    num = np.array([0, 3, 3, 4, 4, 0])
    aux = ["", "odd", "(AFIB", "", "even", ""]
    wfdb.wrann("syn", "atr", sample, symbol=symbol, subtype=subtype, chan=chan, num=num, aux_note=aux,
               fs=250, write_dir=str(tmp_path))
    raw = (tmp_path / "syn.atr").read_bytes()
    assert parse_annotation_bytes(raw) is not None
    _assert_same(tmp_path / "syn", read_annotations(tmp_path / "syn"))


def test_custom_labels_fall_back_to_wfdb(tmp_path):
    import pandas as pd

    labels = pd.DataFrame({"label_store": [42], "symbol": ["z"], "description": ["custom"]})
    wfdb.wrann("cus", "atr", np.array([10, 20]), symbol=["N", "z"], custom_labels=labels, fs=360,
               write_dir=str(tmp_path))
    assert parse_annotation_bytes((tmp_path / "cus.atr").read_bytes()) is None
    ann = read_annotations(tmp_path / "cus")
    assert list(ann.symbol) == ["N", "z"] and list(ann.sample) == [10, 20]


def test_truncated_file_is_a_value_error(tmp_path, mitdb_dir):
    (tmp_path / "100.atr").write_bytes((mitdb_dir / "100.atr").read_bytes()[:1001])
    assert parse_annotation_bytes((tmp_path / "100.atr").read_bytes()) is None
    with pytest.raises(ValueError):
        read_annotations(tmp_path / "100")
