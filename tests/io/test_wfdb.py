"""WFDB reading: bit-identical to wfdb-python on every MIT-BIH record; clear errors for broken archives."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

import ecgcore
from ecgcore.data import sample_dir, sample_records
from ecgcore.io import read_annotations, read_header, read_record, record_paths, write_annotations


def test_all_mitdb_records_digital_and_physical_identical(mitdb_dir, mitdb_records):
    assert len(mitdb_records) == 48
    for name in mitdb_records:
        path = mitdb_dir / name
        ref_d = wfdb.rdrecord(str(path), physical=False)
        ours_d = read_record(path, physical=False, annotator=None)
        np.testing.assert_array_equal(ours_d.signal, ref_d.d_signal, err_msg=name)
        ref_p = wfdb.rdrecord(str(path))
        ours = read_record(path)
        assert ours.signal.dtype == np.float64
        np.testing.assert_array_equal(ours.signal, ref_p.p_signal, err_msg=name)
        assert ours.fs == ref_p.fs and ours.leads == ref_p.sig_name and ours.units == ref_p.units
        ref_ann = wfdb.rdann(str(path), "atr")
        np.testing.assert_array_equal(ours.annotations.sample, ref_ann.sample)
        assert list(ours.annotations.symbol) == ref_ann.symbol


def test_channel_and_range_selection(mitdb_dir):
    path = mitdb_dir / "208"
    ours = read_record(path, channels=[1], sampfrom=12345, sampto=54321)
    ref = wfdb.rdrecord(str(path), channels=[1], sampfrom=12345, sampto=54321)
    np.testing.assert_array_equal(ours.signal, ref.p_signal)
    assert ours.leads == ref.sig_name
    # annotations are re-based onto the excerpt
    ann = wfdb.rdann(str(path), "atr", sampfrom=12345, sampto=54320)
    np.testing.assert_array_equal(ours.annotations.sample, ann.sample - 12345)


def test_float32_physical(mitdb_dir):
    ours = read_record(mitdb_dir / "119", dtype=np.float32)
    ref = wfdb.rdrecord(str(mitdb_dir / "119")).p_signal
    assert ours.signal.dtype == np.float32
    np.testing.assert_array_equal(ours.signal, ref.astype(np.float32))


def test_format16_ecgid_including_header_quirks(data_dir):
    # Records whose header checksum/initial value disagree with the data must still be read (MANIFEST.md).
    quirky = ["Person_13/rec_2", "Person_15/rec_1", "Person_24/rec_5", "Person_44/rec_1"]
    for rel in quirky + ["Person_01/rec_1", "Person_60/rec_1"]:
        path = data_dir / "ecgiddb" / rel
        ours = read_record(path)
        ref = wfdb.rdrecord(str(path))
        np.testing.assert_array_equal(ours.signal, ref.p_signal, err_msg=rel)
        assert ours.fs == 500


def test_ptbxl_12_lead(data_dir):
    for rel in ["records100/00000/00001_lr", "records500/00000/00001_hr"]:
        path = data_dir / "ptbxl" / rel
        ours = read_record(path)
        ref = wfdb.rdrecord(str(path))
        assert ours.signal.shape == ref.p_signal.shape and ours.signal.shape[1] == 12
        np.testing.assert_array_equal(ours.signal, ref.p_signal)
        assert ours.leads == ref.sig_name


def test_bundled_samples_match_full_records(mitdb_dir):
    for name in sample_records():
        ours = read_record(sample_dir() / name)
        full = read_record(mitdb_dir / name, sampto=ours.n_samples)
        np.testing.assert_array_equal(ours.signal, full.signal)
        np.testing.assert_array_equal(ours.annotations.sample, full.annotations.sample)


def test_record_from_wfdb_object(mitdb_dir):
    rec = wfdb.rdrecord(str(mitdb_dir / "100"), sampto=1000)
    ann = wfdb.rdann(str(mitdb_dir / "100"), "atr", sampto=1000)
    r = ecgcore.Record.from_wfdb(rec, ann)
    assert r.signal.shape == (1000, 2) and r.leads == ["MLII", "V5"] and len(r.annotations) == len(ann.sample)


def test_annotation_roundtrip(tmp_path, mitdb_dir):
    ann = read_annotations(mitdb_dir / "100")
    out = write_annotations("copy", "test", ann.sample, ann.symbol, fs=360, out_dir=tmp_path)
    back = wfdb.rdann(str(tmp_path / "copy"), "test")
    assert out.is_file()
    np.testing.assert_array_equal(back.sample, ann.sample)
    assert back.symbol == list(ann.symbol)
    beats = ann.beats()
    assert set(beats.symbol) <= set("NLRBAaJSVrFejnE/fQ?") and "+" not in beats.counts()


def test_npy_and_csv(tmp_path):
    x = np.random.default_rng(0).normal(size=(1000, 3))
    np.save(tmp_path / "a.npy", x)
    r = read_record(tmp_path / "a.npy", fs=250)
    np.testing.assert_array_equal(r.signal, x)
    assert r.fs == 250 and r.n_leads == 3
    (tmp_path / "b.csv").write_text("I,II\n" + "\n".join(f"{a},{b}" for a, b in x[:, :2]))
    c = read_record(tmp_path / "b.csv", fs=250)
    assert c.leads == ["I", "II"]
    np.testing.assert_allclose(c.signal, x[:, :2])
    assert sorted(p.name for p in record_paths(tmp_path)) == ["a.npy", "b.csv"]


# -- broken inputs: each error names the file and says what is wrong ---------------------------------

@pytest.fixture()
def broken(tmp_path, mitdb_dir):
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb_dir / f"100.{ext}", tmp_path / f"100.{ext}")
    return tmp_path


def test_missing_header(broken):
    (broken / "100.hea").unlink()
    with pytest.raises(FileNotFoundError, match=r"100\.hea"):
        read_record(broken / "100")


def test_missing_dat(broken):
    (broken / "100.dat").unlink()
    with pytest.raises(FileNotFoundError, match=r"100\.dat"):
        read_record(broken / "100")


def test_truncated_dat(broken):
    data = (broken / "100.dat").read_bytes()
    (broken / "100.dat").write_bytes(data[: len(data) // 2 + 1])
    with pytest.raises(ValueError, match=r"100\.dat.*truncated"):
        read_record(broken / "100")


def test_header_longer_than_data(broken):
    hea = (broken / "100.hea").read_text().replace("100 2 360 650000", "100 2 360 700000")
    (broken / "100.hea").write_text(hea)
    with pytest.raises(ValueError, match="truncated.*700000"):
        read_record(broken / "100")


def test_empty_files(broken):
    (broken / "100.dat").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_record(broken / "100")
    (broken / "100.hea").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_record(broken / "100")


def test_unknown_format(broken):
    hea = (broken / "100.hea").read_text().replace(" 212 ", " 999 ")
    (broken / "100.hea").write_text(hea)
    with pytest.raises(ValueError, match=r"100\.hea"):
        read_record(broken / "100")


def test_wrong_sampling_rate(broken):
    with pytest.raises(ValueError, match="360.*500"):
        read_record(broken / "100", fs=500)


def test_nan_only_signal(broken):
    # every sample set to the format-212 invalid code (-2048 -> bytes 00 88 00)
    n = 650000
    (broken / "100.dat").write_bytes(bytes([0x00, 0x88, 0x00]) * n)
    with pytest.raises(ValueError, match="NaN"):
        read_record(broken / "100")


def test_npy_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="shape"):
        read_record(tmp_path / "x.npy", fs=100)
    with pytest.raises(ValueError, match="fs="):
        read_record(tmp_path / "x.npy")
    np.save(tmp_path / "t.npy", np.ones((12, 5000)))
    with pytest.raises(ValueError, match="n_leads, n_samples"):
        read_record(tmp_path / "t.npy", fs=500)
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_record(tmp_path / "e.npy", fs=100)
    np.save(tmp_path / "n.npy", np.full(100, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        read_record(tmp_path / "n.npy", fs=100)


def test_header_parse_errors(tmp_path):
    (tmp_path / "r.hea").write_text("r 2 360 1000\nr.dat 212 200 11 1024 0 0 0 I\n")
    with pytest.raises(ValueError, match="2 signals but only 1"):
        read_header(tmp_path / "r")
    (tmp_path / "s.hea").write_text("s two 360\n")
    with pytest.raises(ValueError, match="not an integer"):
        read_header(tmp_path / "s")
