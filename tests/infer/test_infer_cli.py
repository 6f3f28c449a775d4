"""``ecgcore infer`` / ``ecgcore models`` end to end: formats, summaries, resume after a kill, bad files."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from infer_helpers import csv_rows as _rows
from infer_helpers import run_cli as _run

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")


def load_npz(path) -> dict:
    """All arrays of an .npz, the file closed (an open NpzFile warns when it is collected)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}






def test_infer_csv_and_jsonl_with_summaries(beats_model, mini_dir, tmp_path):
    import h5py

    from ecgcore.pipelines.engine import preprocess

    folder, _, _ = beats_model
    out = tmp_path / "scores.csv"
    res = _run("infer", folder, mini_dir, "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    assert "records scored" in res.output and "FAILED" not in res.output
    rows = _rows(out)
    # Every beat of every record: the beats the training recipe cuts, in order.
    preprocess("beats-scalograms", mini_dir, tmp_path / "bs", workers=1, progress=False, options={"exclude": []})
    want = []
    for r in ("100", "119", "208"):
        with h5py.File(tmp_path / "bs" / f"{r}.h5", "r") as h5:
            want += [(r, int(s)) for s in h5["r_peaks"][:]]
    assert [(r["record"], int(r["sample"])) for r in rows] == want
    assert all(abs(sum(float(r[f"prob_{c}"]) for c in "NSVFQ") - 1) < 1e-4 for r in rows)
    summ = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summ["records_done"] == 3 and summ["items"] == len(rows)
    per = {s["record"]: s for s in summ["records"]}
    assert sum(per["208"]["counts"].values()) == sum(r["record"] == "208" for r in rows)
    srows = _rows(tmp_path / "scores.summary.csv")
    assert [s["record"] for s in srows] == ["100", "119", "208"]
    assert abs(sum(float(srows[2][f"burden_pct_{c}"]) for c in "NSVFQ") - 100) < 0.01
    assert json.loads((tmp_path / "scores.errors.json").read_text()) == []

    jl = tmp_path / "scores.jsonl"
    assert _run("infer", folder, mini_dir / "208", "-o", jl, "--threads", 1, "--no-progress").exit_code == 0
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    csv208 = [r for r in rows if r["record"] == "208"]
    assert len(lines) == len(csv208) and lines[5]["class"] == csv208[5]["class"]
    assert abs(lines[5]["prob_V"] - float(csv208[5]["prob_V"])) < 1e-6


def test_resume_after_a_kill_gives_the_same_table(segments_model, mini_dir, tmp_path):
    folder, _, _ = segments_model
    full = tmp_path / "full.csv"
    assert _run("infer", folder, mini_dir, "-o", full, "--threads", 1, "--no-progress").exit_code == 0
    want = full.read_bytes()

    # A run killed while writing its third record: two manifest lines, a torn row in the table.
    out = tmp_path / "part.csv"
    shutil.copy(full, out)
    man = (tmp_path / "full.csv.manifest.jsonl").read_text().splitlines()
    (tmp_path / "part.csv.manifest.jsonl").write_text("\n".join(man[:3]) + '\n{"record": "2')
    end = json.loads(man[2])["offset"]
    with open(out, "r+b") as fh:
        fh.truncate(end)
        fh.seek(end)
        fh.write(b"208,0,0.0,3600,Abn")
    res = _run("infer", folder, mini_dir, "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == want
    summ = json.loads((tmp_path / "part.summary.json").read_text())
    assert summ["records_skipped"] == 2 and summ["records_done"] == 1

    # A finished run re-run: nothing to do. Another model on the same OUT: refused without --overwrite.
    res = _run("infer", folder, mini_dir, "-o", out, "--threads", 1, "--no-progress")
    assert "records skipped (already done)  3" in res.output and out.read_bytes() == want
    card = json.loads((folder / "model.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(folder / "model.onnx", other / "model.onnx")
    card["preprocessing"]["band"] = [1.0, 40.0]
    (other / "model.json").write_text(json.dumps(card))
    res = _run("infer", other, mini_dir, "-o", out, "--no-progress")
    assert res.exit_code != 0 and "--overwrite" in res.output
    assert _run("infer", other, mini_dir, "-o", out, "--no-progress", "--overwrite").exit_code == 0
    assert out.read_bytes() != want


def test_bad_files_are_reported_and_the_run_goes_on(segments_model, mini_dir, tmp_path):
    folder, _, _ = segments_model
    data = tmp_path / "in"
    data.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mini_dir / f"119.{ext}", data / f"119.{ext}")
    shutil.copy(mini_dir / "100.hea", data / "100.hea")
    (data / "100.dat").write_bytes((mini_dir / "100.dat").read_bytes()[:1000])  # truncated
    (data / "empty.npy").write_bytes(b"")
    np.save(data / "short.npy", np.zeros(100))
    out = tmp_path / "o.csv"
    res = _run("infer", folder, data, "-o", out, "--fs", 360, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    errs = {e["record"].rsplit("/", 1)[-1]: e["error"] for e in json.loads((tmp_path / "o.errors.json").read_text())}
    assert set(errs) == {"100", "empty.npy", "short.npy"}
    assert "truncated" in errs["100"] and "empty" in errs["empty.npy"] and "shorter" in errs["short.npy"]
    assert "FAILED" in res.output and {r["record"] for r in _rows(out)} == {"119"}


def test_npy_and_csv_inputs_take_fs(segments_model, mini_dir, tmp_path):
    from ecgcore.io import read_record

    folder, _, _ = segments_model
    rec = read_record(mini_dir / "119")
    np.save(tmp_path / "a.npy", rec.signal[:, :1])
    np.savetxt(tmp_path / "b.csv", rec.signal[:36000], delimiter=",", header="MLII,V1", comments="")
    out = tmp_path / "o.jsonl"
    # arrays carry no rate: without --fs the run refuses to guess, and says how to give it
    res = _run("infer", folder, tmp_path / "a.npy", tmp_path / "b.csv", "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code != 0 and "give it with --fs, e.g. --fs 360" in res.output and not out.exists()
    assert _run("infer", folder, tmp_path / "a.npy", tmp_path / "b.csv", "-o", out, "--fs", 360, "--threads", 1,
                "--no-progress").exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum(r["record"] == "a" for r in lines) == (rec.n_samples - 3600) // 1800 + 1
    assert sum(r["record"] == "b" for r in lines) == (36000 - 3600) // 1800 + 1
    # The same excerpt given at half the rate with --fs 180: resampled to 360 Hz, windows at 180 Hz.
    out2 = tmp_path / "half.csv"
    np.save(tmp_path / "h.npy", rec.signal[::2, :1])
    assert _run("infer", folder, tmp_path / "h.npy", "-o", out2, "--fs", 180, "--threads", 1,
                "--no-progress").exit_code == 0
    rows = _rows(out2)
    assert rows[1]["sample"] == "900" and rows[1]["end_sample"] == "2700"


def test_parquet_needs_pyarrow_or_works(segments_model, mini_dir, tmp_path):
    folder, _, _ = segments_model
    out = tmp_path / "o.parquet"
    res = _run("infer", folder, mini_dir / "119", mini_dir / "208", "-o", out, "--threads", 1, "--no-progress")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert res.exit_code != 0 and "pyarrow" in res.output
        return
    assert res.exit_code == 0, res.output
    t = pq.read_table(out).to_pylist()
    assert {r["record"] for r in t} == {"119", "208"} and len(t) == 2 * ((108000 - 3600) // 1800 + 1)
    # Resumed with one more record, in another order: the finished parts are reused, the table follows the order.
    res = _run("infer", folder, mini_dir / "100", mini_dir / "208", mini_dir / "119", "-o", out, "--threads", 1,
               "--no-progress")
    assert "records skipped (already done)  2" in res.output
    t2 = pq.read_table(out).to_pylist()
    assert list(dict.fromkeys(r["record"] for r in t2)) == ["100", "208", "119"]
    assert [r for r in t2 if r["record"] == "119"] == [r for r in t if r["record"] == "119"]


@pytest.mark.parametrize("fmt", ["npy", "wfdb"])
def test_denoiser_writes_records(denoiser_model, mini_dir, tmp_path, fmt):
    from ecgcore.infer import denoise_signal
    from ecgcore.io import read_record

    folder, _, _ = denoiser_model
    out = tmp_path / "clean"
    res = _run("infer", folder, mini_dir / "100", mini_dir / "119", "-o", out, "--format", fmt, "--threads", 1,
               "--no-progress")
    assert res.exit_code == 0, res.output
    rec = read_record(mini_dir / "100")
    want = denoise_signal(rec.signal[:, 0], rec.fs, model=folder, threads=1)
    if fmt == "npy":
        got = np.load(out / "100.npy")
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    else:
        got = read_record(out / "100")
        assert got.n_samples == rec.n_samples and got.fs == rec.fs and got.leads == ["MLII-denoised"]
        np.testing.assert_allclose(got.signal[:, 0], want, atol=2e-3)  # 16-bit WFDB quantisation
    man = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()[1:]]
    assert [m["record"] for m in man] == ["100", "119"]
    res = _run("infer", folder, mini_dir / "100", mini_dir / "119", "-o", out, "--format", fmt, "--no-progress")
    assert "records skipped (already done)  2" in res.output


def test_denoiser_one_input_to_one_file(denoiser_model, mini_dir, tmp_path):
    """`-o clean.npy` with one input writes that file (not a folder named clean.npy) and counts samples."""
    from ecgcore.infer import denoise_signal
    from ecgcore.io import read_record

    folder, _, _ = denoiser_model
    rec = read_record(mini_dir / "119")
    np.save(tmp_path / "noisy.npy", rec.signal[:36000, 0])
    out = tmp_path / "clean.npy"
    res = _run("infer", folder, tmp_path / "noisy.npy", "--fs", 360, "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    assert out.is_file() and "samples denoised                36000" in res.output, res.output
    want = denoise_signal(rec.signal[:36000, 0], 360.0, model=folder, threads=1)
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-5)
    assert json.loads((tmp_path / "clean.summary.json").read_text())["items"] == 36000


def test_models_lists_bundled_cards(beats_model, tmp_path, monkeypatch):
    import ecgcore.export.card as card_mod

    folder, _, _ = beats_model
    root = tmp_path / "models"
    shutil.copytree(folder, root / "beats-test")
    monkeypatch.setattr(card_mod, "bundled_models_dir", lambda: root)
    res = _run("models")
    assert res.exit_code == 0 and "beats-test" in res.output and "beats-scalograms" in res.output
    assert "classes: N, S, V, F, Q" in res.output
    full = json.loads(_run("models", "--json").output)
    assert full["beats-test"]["preprocessing"]["kind"] == "beats-scalograms"
    assert json.loads(_run("models", "beats-test").output)["name"] == "test-beats"
    res = _run("infer", "beats-test", tmp_path / "missing", "-o", tmp_path / "o.csv")
    assert res.exit_code != 0 and "missing" in res.output


def test_models_shows_headline_metrics_and_warnings(beats_model, tmp_path, monkeypatch):
    """`ecgcore models`: test metrics (not parity checks or counts), no internal spec references, and the
    flag for a model whose card says it stopped before converging."""
    import ecgcore.export.card as card_mod
    from ecgcore.export.card import read_card, write_card

    folder, _, _ = beats_model
    root = tmp_path / "models"
    for name, finished in (("done", True), ("capped", False)):
        shutil.copytree(folder, root / name)
        card = read_card(root / name)
        card.description = "A classifier (SPEC §4) of beats."
        card.metrics = {"test": {"accuracy": 0.91, "n": 1234, "per_class": {"N": {"F1": 0.9}}},
                        "onnx_parity_max_abs_diff": 1e-6}
        card.training = {**card.training, "finished": finished}
        write_card(card, root / name / "model.json")
    monkeypatch.setattr(card_mod, "bundled_models_dir", lambda: root)
    out = _run("models").output
    assert "test metrics: test.accuracy 0.910" in out and "parity" not in out and "1234" not in out
    assert "SPEC" not in out and "A classifier of beats." in out
    capped_block = out[out.index("capped  ["):out.index("done  [")]
    done_block = out[out.index("done  ["):]
    assert "NOT FOR CLINICAL OR PRODUCTION USE" in capped_block and "undertrained" in capped_block
    assert "NOT FOR CLINICAL OR PRODUCTION USE" not in done_block


def test_embedder_rows_and_key(heartid_model, data_dir, tmp_path):
    folder, _, _ = heartid_model
    rec = data_dir / "ecgiddb" / "Person_02" / "rec_1"
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    np.save(tmp_path / "key.npy", np.linspace(-1, 1, 16).astype(np.float32))
    assert _run("infer", folder, rec, "-o", a, "--threads", 1, "--no-progress").exit_code == 0
    assert _run("infer", folder, rec, "-o", b, "--key", tmp_path / "key.npy", "--threads", 1,
                "--no-progress").exit_code == 0
    ra = [json.loads(x) for x in a.read_text().splitlines()]
    rb = [json.loads(x) for x in b.read_text().splitlines()]
    assert len(ra) == len(rb) == (20 * 200 - 1000) // 500 + 1  # 20 s at 200 Hz, 1000-sample windows every 500
    assert len(ra[0]["embedding"]) == 8 and ra[0]["embedding"] != rb[0]["embedding"]
    assert ra[1]["sample"] == 500 * 500 // 200  # window starts at the record's 500 Hz
    np.save(tmp_path / "bad.npy", np.ones(3))
    res = _run("infer", folder, rec, "-o", tmp_path / "c.jsonl", "--key", tmp_path / "bad.npy")
    assert res.exit_code != 0 and "key of 16" in res.output
    res = _run("infer", folder, rec, "-o", tmp_path / "c.jsonl", "--providers", "cuda,cpu")
    assert res.exit_code != 0 and "CUDAExecutionProvider not available" in res.output


@pytest.mark.slow
def test_bundled_beats_aami_scores_every_beat_of_mitdb(mitdb_dir, mitdb_records, tmp_path):
    """The issue's acceptance run: `ecgcore infer beats-aami ../shared/data/mitdb -o out.csv` (all 48 records).

    Fails (does not skip) while no `beats-aami` model is bundled: the Conformer export ships it."""
    from ecgcore.export.card import list_bundled
    from ecgcore.io import read_record

    assert "beats-aami" in list_bundled(), "no bundled beats-aami model (python/ecgcore/data/models/beats-aami/)"
    out = tmp_path / "out.csv"
    res = _run("infer", "beats-aami", mitdb_dir, "-o", out, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert {r["record"] for r in rows} == set(mitdb_records)
    for r in ("100", "207", "232"):
        rec = read_record(mitdb_dir / r)
        b = rec.annotations.beats()
        from ecgcore.datasets.mitdb import aami_labels

        keep = (aami_labels(b.symbol, "conformer") != "") & (b.sample > 93) & (b.sample < rec.n_samples - 93)
        assert sum(x["record"] == r for x in rows) == int(keep.sum())


def test_bundled_segments_abnormal_equals_its_training_data(mini_dir, tmp_path):
    """The bundled attention model through `ecgcore infer` equals the same ONNX graph fed the `segments`
    recipe's training windows (what `ecgcore train attention` reads)."""
    import onnxruntime as ort

    from ecgcore.export.card import resolve_model
    from ecgcore.pipelines.engine import preprocess

    onnx_path, card = resolve_model("segments-abnormal")
    out = tmp_path / "o.jsonl"
    res = _run("infer", "segments-abnormal", mini_dir / "119", "-o", out, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    opts = {k: v for k, v in card.preprocessing.items() if k != "kind"}
    preprocess("segments", mini_dir, tmp_path / "ds", records=["119"], options=opts, workers=1, progress=False)
    seg = load_npz(tmp_path / "ds" / "119.npz")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(["probabilities"], {sess.get_inputs()[0].name: seg["segments"][:, None, :]})[0]
    got = np.array([[r[f"prob_{c}"] for c in card.classes] for r in rows])
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert [r["sample"] for r in rows] == seg["start"].tolist()
    assert [r["reference"] for r in rows] == [card.classes[i] for i in seg["labels"]]


def test_two_class_decision_threshold_sets_the_class(mini_dir, tmp_path):
    """A two-class card's `preprocessing.decision` is its operating point: the positive class exactly when its
    probability reaches the threshold (the bundled segments-abnormal: the training prior restored, 0.7854); the
    probabilities do not depend on it, and a higher threshold never calls more windows Abnormal."""
    import shutil

    from ecgcore.export.card import read_card, resolve_model, write_card
    from ecgcore.infer import Scorer
    from ecgcore.io import read_record

    onnx_path, card = resolve_model("segments-abnormal")
    assert card.preprocessing["decision"]["positive"] == "Abnormal"
    rec = read_record(mini_dir / "119")
    probs, n_abnormal = None, []
    for thr in (0.05, card.preprocessing["decision"]["threshold"], 0.999):
        d = tmp_path / f"m{thr}"
        shutil.copytree(onnx_path.parent, d)
        c = read_card(d / "model.json")
        c.preprocessing = {**c.preprocessing, "decision": {**c.preprocessing["decision"], "threshold": thr}}
        write_card(c, d / "model.json")
        rows = [r for r in Scorer(d, threads=1, quality=False).predict_record(rec).rows]
        p = np.array([r["prob_Abnormal"] for r in rows])
        clear = np.abs(p - thr) > 1e-6  # the table rounds probabilities to 6 decimals
        assert clear.sum() > 0.9 * len(p)
        assert [r["class"] for r, c in zip(rows, clear) if c] == ["Abnormal" if v >= thr else "Normal" for v in p[clear]]
        probs = p if probs is None else probs
        np.testing.assert_array_equal(p, probs)
        n_abnormal.append(int((p >= thr).sum()))
    assert n_abnormal[0] > n_abnormal[2] and n_abnormal == sorted(n_abnormal, reverse=True)


def test_bundled_hubert_equals_its_own_input_builder(data_dir, tmp_path):
    """The bundled HuBERT-ECG (multilabel, one prediction per record) through `ecgcore infer`, at 100 and 500 Hz,
    equals its graph on the HuBERT package's own input builder; classes are those at p >= 0.5."""
    import onnxruntime as ort

    from ecgcore.export.card import resolve_model
    from ecgcore.models.hubert.inputs import input_from_record

    onnx_path, card = resolve_model("hubert-ptbxl-super")
    recs = [data_dir / "ptbxl" / r for r in ("records100/00000/00001_lr", "records500/00000/00001_hr",
                                             "records100/00000/00002_lr")]
    out = tmp_path / "o.jsonl"
    res = _run("infer", "hubert-ptbxl-super", *recs, "-o", out, "--threads", 1, "--no-progress")
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["record"] for r in rows] == ["00001_lr", "00001_hr", "00002_lr"]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for row, rec in zip(rows, recs):
        want = sess.run(None, {"ecg": input_from_record(rec, preprocessing=card.preprocessing)[None]})[0][0]
        np.testing.assert_allclose([row[f"prob_{c}"] for c in card.classes], want, atol=2e-6)
        assert row["class"] == ";".join(c for c, p in zip(card.classes, want) if p >= 0.5)
