"""Scorer and denoise_signal: onnxruntime outputs against the training framework (torch eager), batching,
providers, errors; the denoiser against the Heartify seed's inference procedure (SPEC §2.2)."""
from __future__ import annotations

import numpy as np
import pytest

from ecgcore.infer import Scorer, denoise_signal
from ecgcore.io import read_record

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame:DeprecationWarning")


def load_npz(path) -> dict:
    """All arrays of an .npz, the file closed (an open NpzFile warns when it is collected)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _eager(module, x):
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def test_beats_onnx_equals_torch_eager_and_batch_size_does_not_matter(beats_model, rec100):
    folder, module, _ = beats_model
    s = Scorer(folder, threads=1, batch_size=64)
    prep = s.prepare(rec100)
    x = np.asarray(prep.inputs[0])
    raw = s.run(prep.inputs[0])
    np.testing.assert_allclose(raw, _eager(module, x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Scorer(folder, threads=1, batch_size=7).run(x), raw, rtol=1e-5, atol=1e-6)
    pred = s.predict_record(rec100)
    p = np.exp(raw - raw.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)  # the card says the graph ends in logits: "activation": "softmax"
    np.testing.assert_allclose(pred.probabilities, p, rtol=1e-5, atol=1e-6)
    assert [r["class"] for r in pred.rows] == [["N", "S", "V", "F", "Q"][i] for i in p.argmax(1)]
    # Every beat with an AAMI class whose 187-sample window fits (the seed's 93 < R < n - 93).
    b = rec100.annotations.beats().sample
    assert len(pred.rows) == int(np.sum((b > 93) & (b < rec100.n_samples - 93)))
    assert set(pred.rows[0]) == {"record", "sample", "time_s", "class", "prob_N", "prob_S", "prob_V", "prob_F",
                                 "prob_Q", "reference", "quality"}


def test_segments_onnx_equals_torch_eager(segments_model, mini_dir):
    folder, module, _ = segments_model
    s = Scorer(folder, threads=1)
    rec = read_record(mini_dir / "208")
    prep = s.prepare(rec)
    np.testing.assert_allclose(s.run(prep.inputs[0]), _eager(module, prep.inputs[0]), rtol=1e-4, atol=1e-5)
    pred = s.predict_record(rec)
    assert len(pred.rows) == (rec.n_samples - 3600) // 1800 + 1
    assert pred.rows[1]["sample"] == 1800 and pred.rows[1]["end_sample"] == 5400
    assert pred.summary["counts"]["Normal"] + pred.summary["counts"]["Abnormal"] == len(pred.rows)


def test_heartid_rows_carry_embeddings(heartid_model, data_dir):
    import torch

    folder, module, _ = heartid_model
    rec = read_record(data_dir / "ecgiddb" / "Person_01" / "rec_1", annotator=None)
    key = np.random.default_rng(3).standard_normal(16).astype(np.float32)
    for k in (None, key):
        s = Scorer(folder, threads=1, key=k)
        pred = s.predict_record(rec)
        emb = np.array([r["embedding"] for r in pred.rows])
        x = torch.from_numpy(np.asarray(s.prepare(rec).inputs[0]))
        kk = torch.from_numpy(np.full((1, 16), 0.25, np.float32) if k is None else key[None])
        with torch.no_grad():
            np.testing.assert_allclose(emb, module(x, kk).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="key of 16"):
        Scorer(folder, key=np.ones(5))


def test_denoiser_follows_the_seed_inference(denoiser_model, rec100):
    """seed_compat: z-score the whole 130 Hz signal, 1300-sample chunks (last one zero-padded), no de-normalising."""
    from ecgcore.pipelines.recipes.denoise_pairs import to_model_rate

    folder, module, _ = denoiser_model
    x = rec100.signal[:, 0]
    x130 = to_model_rate(x - x.mean(), 360.0, 130.0)  # the seed's API receives 130 Hz
    z = (x130 - x130.mean()) / x130.std()
    n = -(-z.size // 1300)
    chunks = np.zeros(n * 1300)
    chunks[: z.size] = z
    want = _eager(module, chunks.reshape(n, 1, 1300)).reshape(-1)[: z.size]
    got = denoise_signal(rec100.signal[:, 0], 360.0, model=folder, seed_compat=True)
    assert got.shape == x130.shape
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_denoiser_keeps_length_and_scale(denoiser_model, rec100):
    folder, _, _ = denoiser_model
    x = rec100.signal[:50_000, 0]
    y = denoise_signal(x, 360.0, model=folder)
    assert y.shape == x.shape and np.isfinite(y).all()
    # The z-score is undone: a change of unit and offset of the input comes out as the same change.
    y2 = denoise_signal(1000.0 * x - 40.0, 360.0, model=folder)
    np.testing.assert_allclose(y2, 1000.0 * y - 40.0, rtol=1e-4, atol=1e-3)
    assert 0.5 < np.std(y) / np.std(x) < 2.0
    with pytest.raises(ValueError, match="NaN"):
        denoise_signal(np.array([0.0, np.nan, 1.0]), 360.0, model=folder)


def test_bad_models_and_providers_are_clear_errors(beats_model, tmp_path):
    folder, _, card = beats_model
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        Scorer(folder, providers="cuda")
    with pytest.raises(ValueError, match="unknown model"):
        Scorer("no-such-model")
    with pytest.raises(FileNotFoundError):
        Scorer(tmp_path / "missing.onnx")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.onnx").write_bytes(b"not an onnx graph")
    (bad / "model.json").write_text((folder / "model.json").read_text())
    with pytest.raises(ValueError, match="cannot load"):
        Scorer(bad)
    with pytest.raises(ValueError, match="not a denoiser"):
        Scorer(folder).denoise(np.zeros(2000), 360.0)
    s = Scorer(folder, threads=1)
    with pytest.raises(ValueError, match="input"):
        s.run(np.zeros((2, 3, 32, 187, 1)), np.zeros((2, 4)))


def test_a_record_without_beats_gives_no_rows(beats_model, segments_model):
    from ecgcore.io import Record

    flat = Record(signal=np.zeros((36_000, 1)), fs=360.0, leads=["MLII"], units=["mV"], name="flat")
    pred = Scorer(beats_model[0], threads=1).predict_record(flat)
    assert pred.rows == [] and pred.summary["n"] == 0 and sum(pred.summary["counts"].values()) == 0
    short = Record(signal=np.zeros((1000, 1)), fs=360.0, leads=["MLII"], units=["mV"], name="short")
    with pytest.raises(ValueError, match="shorter than one 10.0 s window"):
        Scorer(segments_model[0], threads=1).predict_record(short)


def test_bundled_denoiser_cleans_held_out_noisy_pairs(mini_dir, data_dir, tmp_path):
    """The bundled denoiser through denoise_signal on the `denoise-pairs` recipe's noisy windows of a DS2 (test)
    record: the output is closer to the clean target than the input at 0 dB, for each noise type."""
    from ecgcore.pipelines.engine import preprocess

    preprocess("denoise-pairs", mini_dir, tmp_path, records=["100"], workers=1, progress=False,
               options={"noise_dir": str(data_dir / "nstdb"), "snr_db": [0.0]})
    d = load_npz(tmp_path / "100.npz")
    assert str(d["split"]) == "test"
    clean = d["clean"].reshape(-1).astype(np.float64)
    for k, kind in enumerate(d["noise"]):
        noisy = d["noisy"][:, k, 0].reshape(-1).astype(np.float64)
        out = denoise_signal(noisy, 130.0)  # the default: the bundled "denoiser"
        assert out.shape == noisy.shape
        snr_in = 10 * np.log10(np.sum(clean ** 2) / np.sum((noisy - clean) ** 2))
        snr_out = 10 * np.log10(np.sum(clean ** 2) / np.sum((out - clean) ** 2))
        assert snr_out > snr_in + 3.0, (kind, snr_in, snr_out)


@pytest.mark.parametrize("fs", [360.0, 500.0])
def test_bundled_denoiser_on_a_raw_record_returns_the_band_at_the_input_rate(mini_dir, fs):
    """What `ecgcore infer denoiser` gives for raw input (DC offset, wander, any rate): the same number of samples
    at the input's rate, the input's mean level kept, and the ECG band (the training target: 0.5-45 Hz) — the
    documented contract a user compares with their clean signal."""
    from ecgcore.dsp import bandpass, resample_poly, resample_ratio
    from ecgcore.io import read_record

    x = read_record(mini_dir / "100").signal[:36_000, 0] + 1.5  # raw MLII plus a 1.5 mV electrode offset
    if fs != 360.0:
        up, down = resample_ratio(360.0, fs)
        x = resample_poly(x, up, down)
    y = denoise_signal(x, fs)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert abs(y.mean() - x.mean()) < 0.05                           # the offset is kept, not removed
    band = bandpass(x, fs=fs, low=0.5, high=45.0) + x.mean()
    assert np.corrcoef(y, band)[0, 1] > 0.9                          # it is the ECG band of the input
    spec = lambda v: np.abs(np.fft.rfft(v - v.mean())) ** 2          # noqa: E731
    f = np.fft.rfftfreq(x.size, 1 / fs)
    hi = f > 60.0
    assert spec(y)[hi].sum() < 0.5 * spec(x)[hi].sum()               # little above the band


def test_beat_encoder_and_head_equal_the_full_graph(mini_dir, tmp_path):
    """Issue 24: the bundled beats-aami scores each beat's CNN once (encoder.onnx) and the sequences with
    head.onnx; every beat of a sample record (208: N, V, F beats) gets the probabilities of the full graph (1e-5),
    the same classes (the other sample records run through both in tools/bundled_outputs.sh)."""
    import json
    import shutil

    from ecgcore.export import resolve_model

    onnx_path, card = resolve_model("beats-aami")
    assert {k: card.graphs[k] for k in ("encoder", "head")} == {"encoder": "encoder.onnx", "head": "head.onnx"}
    full = tmp_path / "full"
    shutil.copytree(onnx_path.parent, full)
    d = json.loads((full / "model.json").read_text())
    d["graphs"] = {}
    (full / "model.json").write_text(json.dumps(d))
    split_scorer, full_scorer = Scorer("beats-aami", threads=1), Scorer(full, threads=1)
    assert split_scorer._split is not None and full_scorer._split is None
    for name in ("208",):
        rec = read_record(mini_dir / name)
        a, b = split_scorer.predict_record(rec), full_scorer.predict_record(rec)
        assert len(a.rows) == len(b.rows) > 300
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5, rtol=0)
        assert [r["class"] for r in a.rows] == [r["class"] for r in b.rows]


def test_precision_int8_encoder_keeps_the_classes(mini_dir):
    """Issue 24: --precision int8 swaps in the card's statically quantised encoder; on record 208 (N, V, F beats)
    it is not the fp32 graph (probabilities differ) but at most 2 % of beats change class (0.66 % over all of
    DS2, the card's int8 entry)."""
    fp32, int8 = Scorer("beats-aami", threads=1), Scorer("beats-aami", threads=1, precision="int8")
    assert int8._split["encoder"] is not fp32._split["encoder"]
    rec = read_record(mini_dir / "208")
    a, b = fp32.predict_record(rec), int8.predict_record(rec)
    assert len(a.rows) == len(b.rows) > 300
    assert np.abs(a.probabilities - b.probabilities).max() > 1e-4
    changed = np.mean([x["class"] != y["class"] for x, y in zip(a.rows, b.rows)])
    assert changed <= 0.02, changed


def test_batch_for_budget_uses_the_cards_memory_per_item_and_its_batch_cap():
    from types import SimpleNamespace

    from ecgcore.infer.memory import FALLBACK_BYTES_PER_ITEM, batch_for_budget

    card = SimpleNamespace(resources={"peak_bytes_per_item": 2 << 20})
    assert batch_for_budget(card) == 256                          # 512 MiB / 2 MiB
    assert batch_for_budget(card, max_memory=64 << 20) == 32
    card.resources["max_batch"] = 64                                # measured no faster beyond 64
    assert batch_for_budget(card) == 64 and batch_for_budget(card, max_memory=64 << 20) == 32
    assert batch_for_budget(SimpleNamespace(resources=None)) == (512 << 20) // FALLBACK_BYTES_PER_ITEM
