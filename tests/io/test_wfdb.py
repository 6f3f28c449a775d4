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
        assert ours_d.signal.dtype == ref_d.d_signal.dtype == np.int64
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


def test_excerpts_channel_orders_and_dtypes_match_wfdb(mitdb_dir):
    # Odd starts/ends, ranges across the decoder's read chunks (65536 frames here), reordered and single
    # channels, every digital dtype: each must equal wfdb's excerpt exactly.
    path = str(mitdb_dir / "203")
    cases = [dict(), dict(sampfrom=1, sampto=2), dict(sampfrom=65531, sampto=131081),
             dict(sampfrom=7, sampto=650000, channels=[1, 0]), dict(sampfrom=100001, sampto=100050, channels=[1])]
    for kw in cases:
        ref_d = wfdb.rdrecord(path, physical=False, **kw).d_signal
        ref_p = wfdb.rdrecord(path, **kw).p_signal
        for dt in (np.int64, np.int32, np.int16):
            got = read_record(path, physical=False, dtype=dt, annotator=None, **kw).signal
            assert got.dtype == dt
            np.testing.assert_array_equal(got, ref_d, err_msg=str(kw))
        np.testing.assert_array_equal(read_record(path, annotator=None, **kw).signal, ref_p, err_msg=str(kw))
        np.testing.assert_array_equal(read_record(path, annotator=None, dtype=np.float32, **kw).signal,
                                      ref_p.astype(np.float32), err_msg=str(kw))


def test_digital_dtype_is_checked(mitdb_dir):
    with pytest.raises(ValueError, match="int64"):
        read_record(mitdb_dir / "100", physical=False, dtype=np.float64)
    with pytest.raises(ValueError, match="float64"):
        read_record(mitdb_dir / "100", dtype=np.int32)


_RANGES = {212: (-2048, 2047), 16: (-32768, 32767), 61: (-32768, 32767), 80: (-128, 127)}


def _encode(fmt: int, d: np.ndarray) -> bytes:
    """Independent WFDB writer for the natively decoded formats (signal(5)); d is [n, n_sig]."""
    flat = d.reshape(-1).astype(np.int64)
    if fmt == 16:
        return flat.astype("<i2").tobytes()
    if fmt == 61:
        return flat.astype(">i2").tobytes()
    if fmt == 80:
        return (flat + 128).astype(np.uint8).tobytes()
    u = flat & 0xFFF
    if u.size % 2:
        u = np.append(u, 0)
    a, b = u[0::2], u[1::2]
    groups = np.stack([a & 0xFF, ((a >> 8) & 0x0F) | (((b >> 8) & 0x0F) << 4), b & 0xFF], axis=1)
    raw = groups.astype(np.uint8).tobytes()
    return raw[:-1] if flat.size % 2 else raw  # an odd sample count ends on 2 bytes


def _write_record(folder: Path, name: str, fmt: int, d: np.ndarray, gains, baselines) -> Path:
    n, n_sig = d.shape
    (folder / f"{name}.dat").write_bytes(_encode(fmt, d))
    lines = [f"{name} {n_sig} 250 {n}"]
    lines += [f"{name}.dat {fmt} {g}({b})/mV 12 0 0 0 0 s{k}" for k, (g, b) in enumerate(zip(gains, baselines))]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / name


@pytest.mark.parametrize("fmt", [212, 16, 61, 80])
@pytest.mark.parametrize("n_sig", [1, 2, 3, 4, 5])
def test_synthetic_formats_and_signal_counts_match_wfdb(tmp_path, fmt, n_sig):
    # Full-range random samples (incl. the invalid code -> NaN), several read chunks long, odd lengths.
    rng = np.random.default_rng(fmt * 10 + n_sig)
    lo, hi = _RANGES[fmt]
    n = 140_001 // n_sig * 2 + 1
    d = rng.integers(lo, hi + 1, size=(n, n_sig))
    d[rng.integers(0, n, 50), rng.integers(0, n_sig, 50)] = lo
    gains = [200.0, 100.5, 7.25, 1000.0, 33.0][:n_sig]
    baselines = [0, -3, 12, 1024, 5][:n_sig]
    path = _write_record(tmp_path, "syn", fmt, d, gains, baselines)
    ref_d = wfdb.rdrecord(str(path), physical=False).d_signal
    np.testing.assert_array_equal(ref_d, d)  # the writer is right
    ref_p = wfdb.rdrecord(str(path)).p_signal
    got = read_record(path, physical=False, annotator=None).signal
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, d)
    np.testing.assert_array_equal(read_record(path, physical=False, dtype=np.int16, annotator=None).signal, d)
    np.testing.assert_array_equal(read_record(path, annotator=None).signal, ref_p)
    np.testing.assert_array_equal(read_record(path, annotator=None, dtype=np.float32).signal,
                                  ref_p.astype(np.float32))
    rev = list(range(n_sig))[::-1]
    kw = dict(sampfrom=3, sampto=n - 2, channels=rev)
    np.testing.assert_array_equal(read_record(path, physical=False, annotator=None, **kw).signal,
                                  wfdb.rdrecord(str(path), physical=False, **kw).d_signal)
    np.testing.assert_array_equal(read_record(path, annotator=None, **kw).signal,
                                  wfdb.rdrecord(str(path), **kw).p_signal)


def test_large_record_parallel_decode_equals_serial(tmp_path):
    # Above the decoder's threading threshold (4 M samples) the frames are split over an OpenMP team.
    rng = np.random.default_rng(7)
    d = rng.integers(-2048, 2048, size=(2_200_001, 2))
    path = _write_record(tmp_path, "big", 212, d, [200.0, 150.0], [0, 10])
    one = read_record(path, physical=False, workers=1, annotator=None).signal
    two = read_record(path, physical=False, workers=2, annotator=None).signal
    np.testing.assert_array_equal(one, d)
    np.testing.assert_array_equal(two, d)
    p1 = read_record(path, workers=1, annotator=None).signal
    p2 = read_record(path, workers=2, annotator=None, channels=[1, 0]).signal
    np.testing.assert_array_equal(p1[:, ::-1], p2)
    want = (d - np.array([0, 10])) / np.array([200.0, 150.0])
    want[d == -2048] = np.nan  # the format-212 invalid code
    np.testing.assert_array_equal(p1, want)


def test_in_memory_decoder_matches_file_reader(tmp_path):
    # The byte-buffer entry point (ecgcore._core.wfdb_decode) decodes like the file reader.
    from ecgcore._native import core

    rng = np.random.default_rng(3)
    d = rng.integers(-2048, 2048, size=(10_001, 3))
    raw = _encode(212, d)
    out = np.empty((9_000, 2), np.int32)
    core.wfdb_decode(raw, 212, 3, 1_001, 9_000, [2, 0], out, 1)
    np.testing.assert_array_equal(out, d[1_001:10_001][:, [2, 0]])
    phys = np.empty((10_001, 3))
    core.wfdb_decode(raw, 212, 3, 0, 10_001, [0, 1, 2], phys, 1, None, [2.0, 4.0, 8.0], [1.0, 0.0, -1.0])
    want = (d - np.array([1.0, 0.0, -1.0])) / np.array([2.0, 4.0, 8.0])
    want[d == -2048] = np.nan
    np.testing.assert_array_equal(phys, want)
    with pytest.raises(ValueError, match="truncated"):
        core.wfdb_decode(raw[:-3], 212, 3, 0, 10_001, [0], np.empty((10_001, 1), np.int64), 1)


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
