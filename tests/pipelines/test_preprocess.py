"""``ecgcore preprocess``: recipe outputs, resumability, failures, Dask, kill-and-resume."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
import wfdb
from click.testing import CliRunner

from ecgcore.cli import main
from ecgcore.datasets.noise import snr_db
from ecgcore.pipelines.engine import preprocess, read_manifest

DP_OPTS = {"snr_db": [0.0, 6.0], "noise": ["bw", "ma"]}


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("manifest.jsonl",)}


@pytest.fixture()
def mini_mitdb(tmp_path, mitdb_dir, data_dir):
    """A small archive: 4 MIT-BIH records (2 DS1, 2 DS2) next to an nstdb folder."""
    root = tmp_path / "db"
    (root / "mitdb").mkdir(parents=True)
    for r in ("100", "101", "103", "106"):
        for ext in ("hea", "dat", "atr"):
            shutil.copy(mitdb_dir / f"{r}.{ext}", root / "mitdb" / f"{r}.{ext}")
    shutil.copytree(data_dir / "nstdb", root / "nstdb")
    return root / "mitdb"


def test_denoise_pairs_content(mini_mitdb, tmp_path, data_dir):
    out = tmp_path / "out"
    s = preprocess("denoise-pairs", mini_mitdb, out, options=DP_OPTS, workers=1, progress=False)
    assert sorted(s.done) == ["100", "101", "103", "106"] and not s.failed
    d = np.load(out / "100.npz")
    assert d["clean"].shape == (180, 1300) and d["noisy"].shape == (180, 2, 2, 1300)
    assert str(d["split"]) == "test" and json.loads((out / "splits.json").read_text())["train"] == ["101", "106"]
    # the clean target is MLII band-passed 0.5-45 Hz and resampled 360 -> 130 Hz (scipy as the reference)
    x = wfdb.rdrecord(str(mini_mitdb / "100")).p_signal[:, 0]
    ref = ss.resample_poly(ss.sosfiltfilt(ss.butter(4, (0.5, 45), btype="bandpass", fs=360, output="sos"), x), 13, 36)
    np.testing.assert_allclose(d["clean"].ravel(), ref[: 180 * 1300], atol=1e-5)
    # every pair sits at its nominal SNR
    got = snr_db(d["clean"][:, None, None, :], d["noisy"])
    np.testing.assert_allclose(got, np.broadcast_to([0.0, 6.0], got.shape), atol=1e-3)


def test_denoise_noise_never_shared_between_splits(mini_mitdb, tmp_path):
    """Test-split noise comes from the last 30 % of each NSTDB record, train noise from the first 70 %."""
    out = tmp_path / "out"
    preprocess("denoise-pairs", mini_mitdb, out, options={"snr_db": [0.0], "noise": ["ma"]}, workers=1,
               progress=False)
    from ecgcore.dsp import resample_poly
    from ecgcore.io import read_record

    noise = resample_poly(read_record(mini_mitdb.parent / "nstdb" / "ma").signal[:, 0], 13, 36)
    cut = int(noise.size * 0.7)
    for rec, lo, hi in (("101", 0, cut), ("100", cut, noise.size)):
        d = np.load(out / f"{rec}.npz")
        resid = d["noisy"][:5, 0, 0] - d["clean"][:5]
        for r in resid:  # find where this (scaled, mean-removed) noise window came from
            r = (r - r.mean()) / r.std()
            best = max(range(lo, hi - 1300, 7),
                       key=lambda s: abs(np.dot(r, (noise[s:s + 1300] - noise[s:s + 1300].mean()))))
            assert lo <= best < hi


def test_heartid_windows_split_by_time(data_dir, tmp_path):
    out = tmp_path / "hid"
    s = preprocess("heartid", data_dir / "ecgiddb", out, workers=1, limit=3, progress=False)
    assert s.done == ["Person_01", "Person_02", "Person_03"]
    d = np.load(out / "Person_03.npz")
    assert d["windows"].shape[1] == 1000 and d["windows"].dtype == np.float32
    np.testing.assert_allclose(d["windows"].mean(axis=1), 0, atol=1e-5)
    probe = d["probe"]
    assert probe.any() and (~probe).any() and not np.any(np.diff(probe.astype(int)) < 0)  # enrol first
    # enrolment comes only from earlier records/times than any probe
    first_probe_rec = d["record"][probe][0]
    assert all(r <= first_probe_rec or "rec_" in r for r in d["record"][~probe])
    lines = (out / "subjects.csv").read_text().splitlines()
    assert lines[0].startswith("subject,") and len(lines) == 4


def test_resume_skips_finished_and_redoes_corrupted(mini_mitdb, tmp_path):
    out = tmp_path / "out"
    preprocess("denoise-pairs", mini_mitdb, out, options=DP_OPTS, workers=1, progress=False)
    first = tree_bytes(out)
    s2 = preprocess("denoise-pairs", mini_mitdb, out, options=DP_OPTS, workers=1, progress=False)
    assert sorted(s2.skipped) == ["100", "101", "103", "106"] and not s2.done
    (out / "103.npz").write_bytes(b"garbage")  # a corrupted output is not trusted
    s3 = preprocess("denoise-pairs", mini_mitdb, out, options=DP_OPTS, workers=1, progress=False)
    assert s3.done == ["103"]
    assert tree_bytes(out) == first
    s4 = preprocess("denoise-pairs", mini_mitdb, out, options=dict(DP_OPTS, seed=1), workers=1, progress=False)
    assert len(s4.done) == 4  # other options -> everything is redone


@pytest.mark.parametrize("digest", ["crc32c", "sha256"])
def test_manifest_checksums_catch_a_changed_byte(mini_mitdb, tmp_path, digest):
    """Each manifest entry carries its algorithm: CRC-32C + length (default) or SHA-256, both verified on resume;
    a same-length file with one flipped byte is redone, whichever digest the run that wrote it used."""
    import hashlib

    from ecgcore.pipelines.engine import file_digest

    out = tmp_path / "out"
    recs = ["100", "101"]
    preprocess("beats-scalograms", mini_mitdb, out, records=recs, workers=1, progress=False, digest=digest)
    entry = read_manifest(out)["101"]
    data = (out / "101.h5").read_bytes()
    if digest == "sha256":
        assert entry["files"] == {"101.h5": hashlib.sha256(data).hexdigest()}
    else:
        assert entry["files"]["101.h5"] == file_digest(out / "101.h5") and \
            entry["files"]["101.h5"].endswith(f":{len(data)}")
    # a re-run with the other digest still trusts (and so skips) the files the first run wrote
    other = "sha256" if digest == "crc32c" else "crc32c"
    s = preprocess("beats-scalograms", mini_mitdb, out, records=recs, workers=1, progress=False, digest=other)
    assert sorted(s.skipped) == recs and not s.done
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    (out / "101.h5").write_bytes(bytes(flipped))
    s = preprocess("beats-scalograms", mini_mitdb, out, records=recs, workers=1, progress=False, digest=digest)
    assert s.skipped == ["100"] and s.done == ["101"]
    assert (out / "101.h5").read_bytes() == data
    with pytest.raises(ValueError, match="digest"):
        preprocess("beats-scalograms", mini_mitdb, out, records=recs, workers=1, progress=False, digest="md5")


def test_bad_record_is_reported_and_skipped(mini_mitdb, tmp_path):
    data = (mini_mitdb / "103.dat").read_bytes()
    (mini_mitdb / "103.dat").write_bytes(data[:1000])
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["preprocess", "denoise-pairs", str(mini_mitdb), str(out), "--snr", "0",
                                  "--noise", "bw", "--workers", "2", "--strict", "--quiet"])
    assert r.exit_code == 1
    assert "records failed                  1" in r.output or "records failed" in r.output
    errors = json.loads((out / "errors.json").read_text())
    assert [e["record"] for e in errors] == ["103"] and "truncated" in errors[0]["error"]
    assert sorted(read_manifest(out)) == ["100", "101", "106"]
    r = CliRunner().invoke(main, ["preprocess", "denoise-pairs", str(mini_mitdb), str(out), "--snr", "0",
                                  "--noise", "bw", "--quiet"])
    assert r.exit_code == 0  # without --strict a failed record does not fail the run


def test_process_pool_equals_serial(mini_mitdb, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    preprocess("denoise-pairs", mini_mitdb, a, options=DP_OPTS, workers=1, progress=False)
    preprocess("denoise-pairs", mini_mitdb, b, options=DP_OPTS, workers=2, progress=False)
    assert tree_bytes(a) == tree_bytes(b)


def test_dask_distributed_equals_local(mini_mitdb, tmp_path):
    distributed = pytest.importorskip("distributed")
    local, remote = tmp_path / "local", tmp_path / "dask"
    preprocess("denoise-pairs", mini_mitdb, local, options=DP_OPTS, workers=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        r = CliRunner().invoke(main, ["preprocess", "denoise-pairs", str(mini_mitdb), str(remote),
                                      "--scheduler", cluster.scheduler_address, "--snr", "0", "--snr", "6",
                                      "--noise", "bw", "--noise", "ma", "--quiet"])
    assert r.exit_code == 0, r.output
    assert tree_bytes(local) == tree_bytes(remote)


def test_killed_run_resumes_to_identical_output(mini_mitdb, tmp_path):
    out, ref = tmp_path / "killed", tmp_path / "ref"
    cmd = [sys.executable, "-m", "ecgcore.cli", "preprocess", "denoise-pairs", str(mini_mitdb), str(out),
           "--snr", "0", "--snr", "6", "--noise", "bw", "--noise", "ma", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(read_manifest(out)) >= 1 or proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = read_manifest(out)
    assert len(done_before) < 4, "the run finished before it could be killed; make it longer"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "skipped (already done)" in r.stdout
    preprocess("denoise-pairs", mini_mitdb, ref, options=DP_OPTS, workers=1, progress=False)
    assert tree_bytes(out) == tree_bytes(ref)
    assert not [p for p in out.rglob(".*.part*")]


def _seed_segments(path: Path):
    """The attention seed's preprocessing (SPEC §3.1) transcribed with wfdb + scipy."""
    rec = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    b, a = ss.butter(5, [0.5 / 180, 50 / 180], btype="band")
    x = ss.filtfilt(b, a, rec.p_signal[:, 0])
    normal, abnormal = set("N."), set("LRBAaJSVrFejnE/fQ?")
    segs, labels = [], []
    for start in range(0, len(x) - 3600 + 1, 1800):
        segs.append(x[start:start + 3600])
        sy = [s for s, p in zip(ann.symbol, ann.sample) if start <= p < start + 3600]
        labels.append(int(sum(s in abnormal for s in sy) > sum(s in normal for s in sy)))
    return np.array(segs), np.array(labels)


def test_segments_match_the_seed(mitdb_dir, tmp_path):
    out, compat = tmp_path / "seg", tmp_path / "compat"
    preprocess("segments", mitdb_dir, out, records=["208", "119"], workers=1, progress=False)
    preprocess("segments", mitdb_dir, compat, records=["208", "119"], options={"seed_compat": True}, workers=1,
               progress=False)
    for r in ("208", "119"):
        segs, labels = _seed_segments(mitdb_dir / r)
        d = np.load(out / f"{r}.npz")
        np.testing.assert_array_equal(d["labels"], labels)
        z = (segs - segs.mean(axis=1, keepdims=True)) / segs.std(axis=1, keepdims=True)
        # default: the same filter as second-order sections; the seed's order-10 (b, a) form is off by ~1e-4
        np.testing.assert_allclose(d["segments"], z, atol=1e-3)
        c = np.load(compat / f"{r}.npz")
        # seed-compat uses the (b, a) form too; at order 10 it amplifies 1e-15 coefficient differences to ~1e-4 mV
        np.testing.assert_allclose(c["segments"], segs, atol=5e-4)
    assert 0 < int(np.load(out / "208.npz")["labels"].sum()) < 360
    scaler = np.load(compat / "scaler.npz")
    # The scaler is the per-column mean/std of exactly the segments written (the seed's StandardScaler) ...
    ours = np.concatenate([np.load(compat / f"{r}.npz")["segments"].astype(np.float64) for r in ("119", "208")])
    np.testing.assert_allclose(scaler["mean"], ours.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(scaler["scale"], ours.std(axis=0), rtol=1e-7)
    # ... and agrees with the seed's to within the (b, a)-form discrepancy allowed on the segments above.
    both = np.concatenate([_seed_segments(mitdb_dir / r)[0] for r in ("119", "208")])
    np.testing.assert_allclose(scaler["mean"], both.mean(axis=0), atol=5e-4)
    np.testing.assert_allclose(scaler["scale"], both.std(axis=0), rtol=1e-3)
    assert json.loads((out / "splits.json").read_text()) == {"DS1": ["119", "208"], "DS2": []}


def test_beats_scalograms_match_the_seed(mitdb_dir, tmp_path):
    """The Conformer seed's stage 1 (SPEC §4.2) transcribed with wfdb + pywt, on two records."""
    import h5py
    import pywt

    seed_map = {**dict.fromkeys("NLRejnB", 0), **dict.fromkeys("AaJS", 1), **dict.fromkeys("VE", 2), "F": 3,
                **dict.fromkeys("/fQ?", 4)}
    out = tmp_path / "bs"
    s = preprocess("beats-scalograms", mitdb_dir, out, records=["208", "232"], workers=1, progress=False)
    assert sorted(s.done) == ["208", "232"]
    meta = json.loads((out / "metadata.json").read_text())
    for r in ("208", "232"):
        sig = wfdb.rdrecord(str(mitdb_dir / r)).p_signal[:, 0]
        ann = wfdb.rdann(str(mitdb_dir / r), "atr")
        beats, labels = [], []
        for p, sym in zip(ann.sample, ann.symbol):
            if sym in seed_map and 93 < p < len(sig) - 93:
                beats.append(sig[p - 93:p + 94])
                labels.append(seed_map[sym])
        with h5py.File(out / f"{r}.h5", "r") as h5:
            np.testing.assert_array_equal(h5["labels"][:], labels)
            np.testing.assert_array_equal(h5["beats"][:], np.array(beats, dtype=np.float32))
            assert h5["scalograms"].shape == (len(beats), 32, 187) and h5.attrs["fs"] == 360
            idx = np.arange(0, len(beats), 97)  # pywt on a sample of beats (it is slow)
            ref = np.abs(pywt.cwt(np.array(beats)[idx], np.arange(1, 33), "morl", axis=-1)[0]).transpose(1, 0, 2)
            got = h5["scalograms"][idx]
            assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-4
        rows = [m for m in meta if m["record_name"] == r]
        assert [m["beat_index"] for m in rows] == list(range(len(labels)))
        assert [m["label"] for m in rows] == labels


def test_tfrecords_follow_the_seed_schema(mitdb_dir, tmp_path):
    """Stage 2 of the Conformer seed (SPEC §4.3): parse every Example as the seed's tf.data parser would."""
    import h5py

    from ecgcore.io.tfrecord import decode_example, read_tfrecord

    preprocess("beats-scalograms", mitdb_dir, tmp_path / "bs", records=["232"], workers=1, progress=False)
    s = preprocess("tfrecords", mitdb_dir, tmp_path / "tf", records=["232"], workers=1, progress=False)
    with h5py.File(tmp_path / "bs" / "232.h5", "r") as h5:
        scal, labels = h5["scalograms"][:], h5["labels"][:]
    seqs, seq_labels = [], []
    sizes = []
    for data in read_tfrecord(tmp_path / "tf" / "232.tfrecord"):
        ex = decode_example(data)
        n = int(ex["num_in_batch"][0])
        assert (int(ex["sequence_len"][0]), int(ex["height"][0]), int(ex["width"][0])) == (3, 32, 187)
        seqs.append(np.frombuffer(ex["sequences_raw"][0], np.float32).reshape(n, 3, 32, 187))
        seq_labels.append(np.frombuffer(ex["labels_raw"][0], np.int32))
        sizes.append(n)
    seqs, seq_labels = np.concatenate(seqs), np.concatenate(seq_labels)
    assert len(seqs) == len(scal) - 2 == s.n_items
    assert all(n == 256 for n in sizes[:-1]) and 0 < sizes[-1] <= 256
    np.testing.assert_array_equal(seqs[10], scal[10:13])
    np.testing.assert_array_equal(seq_labels, labels[2:])


def test_hubert_features_and_labels(data_dir, tmp_path):
    """PTB-XL 12-lead records -> 93-shard dumps equal to the feature kernel on the seed's preprocessing; then
    k-means pseudo-labels with the model's own normalisation."""
    from ecgcore.cluster import KMeans
    from ecgcore.dsp import bandpass, resample
    from ecgcore.features import hubert_shard_features
    from ecgcore.io import read_record

    src = data_dir / "ptbxl" / "records100"
    feats_dir, labels_dir = tmp_path / "feats", tmp_path / "labels"
    s = preprocess("hubert-features", src, feats_dir, limit=12, workers=1, progress=False,
                   options={"kind": "mixed"})
    assert len(s.done) == 12 and not s.failed
    first = sorted(s.done)[0]
    rec = read_record(src / first)
    x = bandpass(rec.signal.T, fs=100, low=0.05, high=45.0, order=4)
    x = resample(x, x.shape[1] * 5)
    x = 2 * (x - x.min(axis=1, keepdims=True)) / (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True) + 1e-8) - 1
    expected = hubert_shard_features(x[:, :2500], "mixed", fs=100, input_fs=500.0)
    got = np.load(feats_dir / f"{first}.npy")
    assert got.shape == (93, 29)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    rows = np.concatenate([np.load(p) for p in sorted(feats_dir.rglob("*.npy"))])
    km = KMeans(5, random_state=0, normalize=True).fit(rows)
    km.save(tmp_path / "km.npz")
    s2 = preprocess("hubert-labels", feats_dir, labels_dir, options={"model": str(tmp_path / "km.npz")}, workers=1,
                    progress=False)
    assert len(s2.done) == 12
    lab = np.load(labels_dir / f"{first}.labels.npy")
    np.testing.assert_array_equal(lab, km.predict(got))
    assert (labels_dir / "index.csv").read_text().splitlines()[1].endswith(",93")


@pytest.mark.parametrize("options", [{"filter": "fir"}, {"seed_compat": True}])
def test_hubert_features_seed_fir(data_dir, tmp_path, options):
    """filter=fir / --seed-compat: the seed's own preprocessing (biosppy's FIR: scipy firwin of int(0.3*fs)
    taps made odd, filtfilt; scipy FFT resample; min-max) at 500 and 100 Hz gives the same dumps."""
    from ecgcore.features import hubert_shard_features
    from ecgcore.io import read_record

    for folder, fs in (("records500", 500), ("records100", 100)):
        src = data_dir / "ptbxl" / folder
        out = tmp_path / folder
        s = preprocess("hubert-features", src, out, limit=2, workers=1, progress=False,
                       options=dict(options, kind="timefreq"))
        assert len(s.done) == 2 and not s.failed
        for name in s.done:
            rec = read_record(src / name)
            taps = int(0.3 * fs) + (1 - int(0.3 * fs) % 2)
            b = ss.firwin(taps, [2 * 0.05 / fs, 2 * 47.0 / fs], pass_zero=False)
            x = ss.filtfilt(b, [1.0], rec.signal.T)
            if fs != 500:
                x = ss.resample(x, x.shape[1] * 500 // fs, axis=1)
            x = 2 * (x - x.min(axis=1, keepdims=True)) / (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True)
                                                          + 1e-8) - 1
            expected = hubert_shard_features(x[:, :2500], "timefreq", fs=100, input_fs=500.0)
            np.testing.assert_allclose(np.load(out / f"{name}.npy"), expected, rtol=1e-5, atol=1e-6)
            butter = preprocess("hubert-features", src, tmp_path / f"butter{fs}", records=[name], workers=1,
                                progress=False, options={"kind": "timefreq"})
            assert butter.done == [name]
            assert not np.allclose(np.load(tmp_path / f"butter{fs}" / f"{name}.npy"), expected, rtol=1e-5, atol=1e-6)


def test_segments_ptbxl_label_rule_and_windows(data_dir, tmp_path):
    """PTB-XL ECGs as extra attention windows: the label rule read from the table independently, and one window
    against SciPy (resample_poly 500 -> 360 Hz, then a zero-phase order-5 Butterworth 0.5-50 Hz, z-score)."""
    import ast
    import csv

    ptb = data_dir / "ptbxl"
    want = {}
    with open(ptb / "ptbxl_database.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            codes = ast.literal_eval(r["scp_codes"])
            if "CLBBB" in codes or "CRBBB" in codes:
                want[f"{int(float(r['ecg_id'])):05d}"] = 1
            elif "NORM" in codes:
                want[f"{int(float(r['ecg_id'])):05d}"] = 0
    out = tmp_path / "ptb"
    s = preprocess("segments-ptbxl", ptb, out, workers=1, progress=False)
    assert not s.failed and sorted(s.done) == sorted(want)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["recipe"] == "segments-ptbxl" and meta["abnormal"] == sum(want.values()) == 16
    assert json.loads((out / "splits.json").read_text())["extra"] == sorted(want)
    bbb = next(k for k, v in sorted(want.items()) if v == 1)
    d = np.load(out / f"{bbb}.npz")
    assert d["segments"].shape == (1, 3600) and d["labels"].tolist() == [1] and d["lead"].tolist() == ["II"]
    rec = wfdb.rdrecord(str(ptb / "records500" / f"{bbb[:2]}000" / f"{bbb}_hr"))
    x = ss.resample_poly(rec.p_signal[:, rec.sig_name.index("II")], 18, 25)
    x = ss.sosfiltfilt(ss.butter(5, (0.5, 50.0), "bandpass", fs=360.0, output="sos"), x)
    x = (x - x.mean()) / x.std()
    np.testing.assert_allclose(d["segments"][0], x, atol=1e-5)  # float32 storage; measured 1.2e-7
    with pytest.raises(ValueError, match="seed_compat"):
        preprocess("segments-ptbxl", ptb, tmp_path / "bad", options={"seed_compat": True}, workers=1, progress=False)
    # leads by name, any case, one window each in the order asked; one name as a plain string; unknown names fail
    preprocess("segments-ptbxl", ptb, tmp_path / "four", records=[bbb], options={"leads": ["v5", "II", "aVF"]},
               workers=1, progress=False)
    f = np.load(tmp_path / "four" / f"{bbb}.npz")
    assert f["lead"].tolist() == ["V5", "II", "AVF"] and f["labels"].tolist() == [1, 1, 1]
    np.testing.assert_array_equal(f["segments"][1], d["segments"][0])
    preprocess("segments-ptbxl", ptb, tmp_path / "one", records=[bbb], options={"leads": "V5"}, workers=1,
               progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / f"{bbb}.npz")["segments"], f["segments"][:1])
    s = preprocess("segments-ptbxl", ptb, tmp_path / "x", records=[bbb], options={"leads": ["II", "MLII"]},
                   workers=1, progress=False)
    assert s.failed and "MLII" in json.dumps(json.loads((tmp_path / "x" / "errors.json").read_text()))
    with pytest.raises(ValueError, match="distinct"):
        preprocess("segments-ptbxl", ptb, tmp_path / "y", options={"leads": ["II", "ii"]}, workers=1, progress=False)
