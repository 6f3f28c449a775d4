"""Upload parsing: .npy layouts and batches, CSV, multi-record WFDB uploads, and the error messages."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from ecgcore.app.uploads import MAX_LEADS, UploadedFile, parse_uploads, split_npy
from ecgcore.io import read_record

BUNDLED = Path(__file__).resolve().parents[2] / "python" / "ecgcore" / "data" / "mitdb"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:DeprecationWarning")


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _wfdb(record: str, exts=("hea", "dat", "atr")) -> list[UploadedFile]:
    return [UploadedFile(f"{record}.{e}", (BUNDLED / f"{record}.{e}").read_bytes()) for e in exts]


@pytest.fixture(scope="module")
def mlii():
    return read_record(BUNDLED / "100", sampto=7200).signal  # (7200, 2): 20 s of MLII + V5


@pytest.mark.parametrize("layout", ["n", "n_ch", "ch_n"])
def test_npy_layouts_give_samples_by_leads(mlii, layout):
    arr = {"n": mlii[:, 0], "n_ch": mlii, "ch_n": mlii.T}[layout]
    (rec,) = split_npy("x.npy", arr, 360.0)
    expect = mlii[:, :1] if layout == "n" else mlii
    np.testing.assert_array_equal(rec.signal, expect)
    assert rec.fs == 360.0 and rec.name == "x"


def test_npy_batch_yields_every_ecg(mlii):
    batch = np.stack([mlii.T, mlii.T * 2, mlii.T * 3])     # (3, 2, 7200)
    recs, errors = parse_uploads([UploadedFile("b.npy", _npy(batch))], fs="360")
    assert errors == []
    assert [r.name for r in recs] == ["b[0]", "b[1]", "b[2]"]
    for k, r in enumerate(recs):
        np.testing.assert_allclose(r.signal, mlii * (k + 1))
    # (k, n, ch) items are recognised too
    recs2, _ = parse_uploads([UploadedFile("c.npy", _npy(np.stack([mlii, mlii])))], fs=360)
    assert len(recs2) == 2 and recs2[0].signal.shape == (7200, 2)


def test_twelve_lead_names():
    (rec,) = split_npy("s.npy", np.zeros((12, 5000)) + np.arange(5000) % 7, 500.0)
    assert rec.leads[1] == "II" and rec.n_leads == 12


def test_ambiguous_and_bad_npy_messages(mlii):
    cases = {
        "square.npy": (_npy(np.zeros((100, 100))), "neither axis looks like leads"),
        "tiny.npy": (_npy(np.zeros((3, 4))), "too few samples"),
        "junk.npy": (b"not numpy at all", "not a valid .npy array"),
        "obj.npy": (_npy(np.array(["a", "b"])), "expected numeric samples"),
        "four.npy": (_npy(np.zeros((2, 2, 2, 500))), "expected an array of shape"),
        "empty.npy": (b"", "the file is empty"),
    }
    recs, errors = parse_uploads([UploadedFile(n, d) for n, (d, _) in cases.items()], fs=360)
    assert recs == []
    got = {e.name: e.message for e in errors}
    for name, (_, expected) in cases.items():
        assert expected in got[name], (name, got[name])
    assert MAX_LEADS == 16


def test_fs_required_and_validated(mlii):
    f = UploadedFile("a.npy", _npy(mlii))
    _, errors = parse_uploads([f], fs="")
    assert "enter it in the fs field" in errors[0].message
    _, errors = parse_uploads([f], fs="abc")
    assert "must be a number" in errors[0].message
    for fs in ("10", "5000"):
        _, errors = parse_uploads([f], fs=fs)
        assert "between 50 and 2000 Hz" in errors[0].message


def test_hostile_npy_headers_and_durations(tmp_path):
    """Sizes are judged from the .npy header before the samples are loaded: a 1 KB file claiming 10^11
    samples, an ECG over the duration limit, values near the float limit."""
    from numpy.lib import format as npformat

    head = io.BytesIO()
    npformat.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    claims = UploadedFile("claims.npy", head.getvalue() + b"\0" * 1024)
    long = UploadedFile("long.npy", _npy(np.zeros(360 * 601, np.float32)))
    huge = UploadedFile("huge.npy", _npy(np.tile([1e308, -1e308], 3600)))
    recs, errors = parse_uploads([claims, long, huge], fs="360", max_duration_s=600)
    assert recs == []
    by = {e.name: e for e in errors}
    assert "but the file holds only 1024 bytes" in by["claims.npy"].message and not by["claims.npy"].too_long
    assert by["long.npy"].too_long and "at most 10 min" in by["long.npy"].message
    assert "within ±1e12" in by["huge"].message


def test_csv_upload(tmp_path, mlii):
    text = "MLII,V5\n" + "\n".join(f"{a:.3f},{b:.3f}" for a, b in mlii[:3600])
    recs, errors = parse_uploads([UploadedFile("strip.csv", text.encode())], fs=360, workdir=tmp_path)
    assert errors == []
    assert recs[0].leads == ["MLII", "V5"] and recs[0].signal.shape == (3600, 2)
    np.testing.assert_allclose(recs[0].signal, np.round(mlii[:3600], 3))


def test_wfdb_several_records_in_one_upload(tmp_path):
    files = _wfdb("100") + _wfdb("119") + _wfdb("208", ("hea", "dat"))
    recs, errors = parse_uploads(files, workdir=tmp_path)
    assert errors == []
    assert [r.name for r in recs] == ["100", "119", "208"]
    assert recs[0].fs == 360.0 and recs[0].n_samples == 108000 and recs[0].leads == ["MLII", "V5"]
    assert recs[0].annotations is not None and recs[2].annotations is None
    np.testing.assert_array_equal(recs[1].signal, read_record(BUNDLED / "119").signal)


def test_wfdb_missing_parts_are_named(tmp_path):
    files = _wfdb("100", ("hea",)) + _wfdb("119", ("dat", "atr")) + [UploadedFile("notes.txt", b"hello")]
    recs, errors = parse_uploads(files, workdir=tmp_path)
    assert recs == []
    msg = {e.name: e.message for e in errors}
    assert "names signal file(s) 100.dat, which were not uploaded" in msg["100.hea"]
    assert "needs its header: upload 119.hea" in msg["119.dat"]
    assert "needs its header" in msg["119.atr"]
    assert "unsupported file type '.txt'" in msg["notes.txt"]


def test_truncated_dat_and_path_names_stripped(tmp_path):
    files = _wfdb("100", ("hea",)) + [UploadedFile("100.dat", (BUNDLED / "100.dat").read_bytes()[:3000])]
    _, errors = parse_uploads(files, workdir=tmp_path)
    assert len(errors) == 1 and "truncated" in errors[0].message
    assert str(tmp_path) not in errors[0].message


def test_hostile_names_stay_inside_workdir(tmp_path, mlii):
    work = tmp_path / "w"
    work.mkdir()
    text = "\n".join(f"{v:.3f}" for v in mlii[:2000, 0])
    recs, errors = parse_uploads([UploadedFile("../../evil.csv", text.encode())], fs=360, workdir=work)
    assert errors == [] and len(recs) == 1
    assert (work / "evil.csv").is_file() and not (tmp_path / "evil.csv").exists()


def test_nothing_uploaded():
    with pytest.raises(ValueError, match="no files were uploaded"):
        parse_uploads([], fs=360)


def test_multi_segment_headers_are_refused(tmp_path):
    """A multi-segment header (a `~ N` gap makes wfdb allocate N samples per lead) is refused by name."""
    hea = b"multi/2 1 360 720\nseg1 360\n~ 100000000\n"
    recs, errors = parse_uploads([UploadedFile("multi.hea", hea)], workdir=tmp_path)
    assert recs == [] and "multi-segment WFDB records are not accepted" in errors[0].message
