"""The click CLI on the bundled samples and on broken inputs."""
from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner

from ecgcore import __version__
from ecgcore.cli import main
from ecgcore.data import sample_dir
from ecgcore.dsp import bandpass
from ecgcore.io import read_record


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_version_and_help():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = run("--help")
    assert r.exit_code == 0 and "demo" in r.output and "filter" in r.output and "info" in r.output


def test_demo_prints_table_for_each_bundled_record():
    r = run("demo")
    assert r.exit_code == 0, r.output
    for name in ("100", "119", "208"):
        assert any(line.startswith(name) for line in r.output.splitlines())
    assert "ODC-By" in r.output


def test_info_counts_annotations():
    r = run("info", sample_dir(), "--json")
    assert r.exit_code == 0
    rows = [json.loads(line) for line in r.output.splitlines()]
    by_name = {row["record"].split("/")[-1]: row for row in rows}
    ann = read_record(sample_dir() / "208").annotations.counts()
    assert by_name["208"]["annotations"] == ann and by_name["208"]["fs"] == 360


def test_filter_folder_is_resumable_and_reports_failures(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sample_dir(), src)
    (src / "broken.hea").write_text("broken 1 360 1000\nbroken.dat 212 200 11 1024 0 0 0 MLII\n")
    (src / "broken.dat").write_bytes(b"\x00" * 10)
    out = tmp_path / "out"
    r = run("filter", src, out, "--band", 0.5, 40, "--order", 3)
    assert r.exit_code == 1
    assert "broken" in r.output and "truncated" in r.output
    y = np.load(out / "100.npy")
    meta = json.loads((out / "100.json").read_text())
    rec = read_record(src / "100")
    expected = bandpass(rec.signal, fs=360, low=0.5, high=40, order=3, axis=0).astype(np.float32)
    np.testing.assert_array_equal(y, expected)
    assert meta["filter"]["band_hz"] == [0.5, 40.0] and meta["leads"] == rec.leads
    # second run: the three finished records are skipped, the broken one fails again
    r2 = run("filter", src, out, "--band", 0.5, 40, "--order", 3)
    assert "skipped (already done) 3" in r2.output
    assert not list(out.glob("*.part*"))


def test_filter_rejects_band_above_nyquist(tmp_path):
    r = run("filter", sample_dir() / "100.hea", tmp_path, "--band", 0.5, 200)
    assert r.exit_code == 1 and "Nyquist" in r.output


def test_preprocess_digest_option(tmp_path):
    """--digest sha256 writes SHA-256 manifest entries; a default (CRC-32C) re-run trusts and skips them."""
    out = tmp_path / "seg"
    r = run("preprocess", "segments", sample_dir(), out, "--digest", "sha256", "--quiet")
    assert r.exit_code == 0, r.output
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == 3
    for e in entries:
        for digest in e["files"].values():
            assert len(digest.split(":")[-1]) == 64  # a SHA-256 hex digest
    before = (out / "manifest.jsonl").read_bytes()
    r = run("preprocess", "segments", sample_dir(), out, "--quiet")
    assert r.exit_code == 0, r.output
    assert (out / "manifest.jsonl").read_bytes() == before  # nothing redone
    bad = CliRunner().invoke(main, ["preprocess", "segments", str(sample_dir()), str(out), "--digest", "md5"])
    assert bad.exit_code == 2 and "md5" in bad.output
