"""Attention U-Net denoiser: architecture, NumPy processing, loss/augmentation, tiny real training with
resume, evaluation with baselines, ONNX export parity, CLI, and the shipped model."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal as ss
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from ecgcore.cli import main  # noqa: E402
from ecgcore.datasets.noise import snr_db  # noqa: E402
from ecgcore.export import onnx_parity, read_card  # noqa: E402
from ecgcore.models.denoiser import AttentionUNet, DenoiserConfig, denoise, evaluate, export, train  # noqa: E402
from ecgcore.models.denoiser import processing  # noqa: E402
from ecgcore.models.denoiser._evaluate import butterworth_baseline, pair_metrics, wavelet_baseline  # noqa: E402
from ecgcore.models.denoiser.model import count_parameters  # noqa: E402
from ecgcore.models.denoiser._train import HybridLoss, augment, load_model  # noqa: E402
from ecgcore.pipelines.engine import preprocess  # noqa: E402

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
# wfdb (MIT-BIH annotations) trips a pandas deprecation on import; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:Warning")
SHIPPED = REPO / "python" / "ecgcore" / "data" / "models" / "denoiser"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, mitdb_dir):
    """Real denoise-pairs: one DS1 record (101, train) and one DS2 record (100, test), all noises and SNRs."""
    out = tmp_path_factory.mktemp("denoise-pairs")
    s = preprocess("denoise-pairs", mitdb_dir, out, records=["100", "101"], workers=1, progress=False)
    assert sorted(s.done) == ["100", "101"] and not s.failed
    return out


@pytest.fixture(scope="module")
def tiny_run(pairs_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    cfg = DenoiserConfig(batch_size=4, max_steps=4, val_every=2, val_pairs=8)
    summary = train(pairs_dir, run, cfg, progress=False)
    return run, summary


# --------------------------------------------------------------------------------------------- architecture
def test_parameter_count_and_layers():
    m = AttentionUNet()
    assert count_parameters(m) == 2_796_541  # SPEC §2.1
    convs3 = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv1d) and mod.kernel_size == (3,)]
    assert convs3 and all(c.bias is None for c in convs3)
    assert [m.att4.W_g[0].out_channels, m.att3.W_g[0].out_channels, m.att2.W_g[0].out_channels,
            m.att1.W_g[0].out_channels] == [128, 64, 32, 16]
    assert m.att1.psi[0].out_channels == 1 and m.final.kernel_size == (1,) and m.final.bias is not None


@pytest.mark.parametrize("n", [1300, 1312, 999, 16])
def test_any_length_is_padded_and_cropped(n):
    m = AttentionUNet(4).eval()
    x = torch.randn(2, 1, n)
    with torch.no_grad():
        y = m(x)
        assert y.shape == (2, 1, n)
        # right zero-padding to a multiple of 16 then cropping: same as padding by hand
        pad = (-n) % 16
        y2 = m(torch.nn.functional.pad(x, (0, pad)))[..., :n] if pad else y
    torch.testing.assert_close(y, y2)


def test_attention_gate_concat_order():
    """The decoder concatenates [gated skip, upsampled] in that order (the channel split matters)."""
    m = AttentionUNet(4).eval()
    seen = {}
    m.dec1.register_forward_pre_hook(lambda mod, args: seen.setdefault("in", args[0]))
    att_out = {}
    m.att1.register_forward_hook(lambda mod, args, out: att_out.setdefault("o", out))
    with torch.no_grad():
        m(torch.randn(1, 1, 64))
    torch.testing.assert_close(seen["in"][:, :4], att_out["o"])


# --------------------------------------------------------------------------------------------- processing
def test_processing_zscore_chunk_restore():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 2700)
    z, mean, std = processing.zscore(x)
    assert mean == pytest.approx(x.mean()) and std == pytest.approx(np.std(x))  # population std
    c = processing.chunk(z)
    assert c.shape == (3, 1, 1300) and c.dtype == np.float32
    assert np.all(c[2, 0, 100:] == 0) and np.allclose(c[2, 0, :100], z[2600:])
    np.testing.assert_allclose(processing.unchunk(c, 2700), z, rtol=1e-6, atol=1e-6)
    # identity network: scale-restored output is the input; seed_compat gives its z-scores
    ident = lambda b: b  # noqa: E731
    np.testing.assert_allclose(processing.denoise_array(x, ident), x, atol=1e-5)
    np.testing.assert_allclose(processing.denoise_array(x, ident, seed_compat=True), z, atol=1e-6)
    # constant signal: std 0 is taken as 1 (the seed's rule)
    _, m0, s0 = processing.zscore(np.full(10, 5.0))
    assert (m0, s0) == (5.0, 1.0)


@pytest.mark.parametrize("bad, msg", [(np.zeros((2, 3)), "1-D"), (np.array([]), "empty"),
                                      (np.array([1.0, np.nan]), "NaN"), (np.array(["a"]), "real numbers")])
def test_processing_rejects_bad_signals(bad, msg):
    with pytest.raises(ValueError, match=msg):
        processing.zscore(bad)


def test_processing_imports_no_framework():
    code = ("import sys, ecgcore, ecgcore.models.denoiser, ecgcore.models.denoiser.processing as p; "
            "p.denoise_array([1.0, 2.0, 3.0], lambda b: b); "
            "bad = [m for m in ('torch', 'tensorflow', 'mlx') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**__import__("os").environ, "PYTHONPATH": _PKG_PARENT})
    assert r.returncode == 0, r.stderr + r.stdout


def test_denoise_torch_matches_chunked_forward():
    m = AttentionUNet(4).eval()
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.3, 2000)
    got = denoise(x, m)
    z = (x - x.mean()) / x.std()
    buf = np.zeros((2, 1, 1300), np.float32)
    buf.reshape(-1)[:2000] = z
    with torch.no_grad():
        y = m(torch.from_numpy(buf)).numpy().reshape(-1)[:2000]
    np.testing.assert_allclose(got, y * x.std() + x.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(denoise(x, m, seed_compat=True), y, rtol=1e-5, atol=1e-6)
    # batch consistency: one call per chunk gives the same as one batched call
    np.testing.assert_allclose(processing.denoise_array(x, lambda b: m(torch.from_numpy(b)).detach().numpy(),
                                                        batch_size=1), got, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="AttentionUNet"):
        denoise(x, model=42)


# --------------------------------------------------------------------------------------------- loss, augmentation
def test_hybrid_loss_formula():
    rng = np.random.default_rng(2)
    p, t = rng.normal(size=(3, 1, 50)), rng.normal(size=(3, 1, 50))
    ref = 0.5 * np.abs(p - t).mean() + 0.5 * ((p - t) ** 2).mean() + \
        0.5 * np.abs(np.diff(p, axis=-1) - np.diff(t, axis=-1)).mean()
    got = HybridLoss()(torch.from_numpy(p), torch.from_numpy(t))
    assert float(got) == pytest.approx(ref, rel=1e-12)


def test_augment_same_gain_on_both():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 10)).astype(np.float32)
    y = rng.normal(size=(400, 10)).astype(np.float32)
    xa, ya = augment(x, y, np.random.default_rng(7), 0.5, (0.8, 1.2))
    g = xa[:, 0] / x[:, 0]
    np.testing.assert_allclose(ya / y, np.repeat(g[:, None], 10, axis=1), rtol=1e-5)
    np.testing.assert_allclose(xa / x, np.repeat(g[:, None], 10, axis=1), rtol=1e-5)
    assert np.all((np.abs(g) >= 0.8 - 1e-6) & (np.abs(g) <= 1.2 + 1e-6))
    assert 0.4 < np.mean(g < 0) < 0.6
    xb, _ = augment(x, y, np.random.default_rng(7), 0.5, (0.8, 1.2))
    np.testing.assert_array_equal(xa, xb)


# --------------------------------------------------------------------------------------------- training
def test_tiny_training_writes_run(tiny_run):
    run, s = tiny_run
    for f in ("best.pt", "checkpoint", "best_attention_unet.pth", "metrics.json", "learning_curve.png", "history.csv",
              "config.json", "run.json"):
        assert (run / f).exists(), f
    assert s["steps"] == 4 and len(s["history"]) == 2 and np.isfinite(s["best_val_loss"])
    assert s["train_records"] == ["101"] and s["parameters"] == 2_796_541
    m = json.loads((run / "metrics.json").read_text())
    assert m["training"]["steps"] == 4
    # the seed's bare state_dict loads into the architecture
    net = AttentionUNet()
    net.load_state_dict(torch.load(run / "best_attention_unet.pth", weights_only=True))


def test_resume_equals_uninterrupted(pairs_dir, tmp_path):
    cfg = dict(batch_size=2, val_every=2, val_pairs=4)
    a, b = tmp_path / "a", tmp_path / "b"
    train(pairs_dir, a, DenoiserConfig(max_steps=4, **cfg), progress=False)
    train(pairs_dir, b, DenoiserConfig(max_steps=2, **cfg), progress=False)
    s = train(pairs_dir, b, DenoiserConfig(max_steps=4, **cfg), progress=False)
    assert s["steps"] == 4 and len(s["sessions"]) == 2
    wa = torch.load(a / "checkpoint" / "state.pt", weights_only=True)["model"]
    wb = torch.load(b / "checkpoint" / "state.pt", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


def test_train_errors(tmp_path, pairs_dir):
    with pytest.raises(FileNotFoundError, match="splits.json"):
        train(tmp_path, tmp_path / "run", DenoiserConfig(max_steps=1), progress=False)
    with pytest.raises(ValueError, match="device"):
        train(pairs_dir, tmp_path / "run", device="tpu", progress=False)
    with pytest.raises(FileNotFoundError, match="best.pt"):
        load_model(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path)


# --------------------------------------------------------------------------------------------- evaluation
def test_baselines_match_references():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 1300))
    ref = ss.sosfiltfilt(ss.butter(3, (0.5, 40.0), "bandpass", fs=130.0, output="sos"), x, axis=-1)
    np.testing.assert_allclose(butterworth_baseline(x), ref, atol=1e-9)
    t = np.arange(1300) / 130.0
    clean = np.sin(2 * np.pi * 1.2 * t)[None]
    noisy = clean + 0.3 * rng.normal(size=(1, 1300))
    m = pair_metrics(clean, noisy, wavelet_baseline(noisy))
    assert m["snr_improvement"][0] > 5.0  # white noise is what universal thresholding removes


def test_pair_metrics_definitions():
    c = np.array([[1.0, -1.0, 2.0, 0.0]])
    o = np.array([[1.5, -1.0, 1.0, 0.5]])
    m = pair_metrics(c, c + 1e-3, o)
    e = o - c
    assert m["rmse"][0] == pytest.approx(np.sqrt(np.mean(e ** 2)))
    assert m["prd"][0] == pytest.approx(100 * np.sqrt((e ** 2).sum() / (c ** 2).sum()))
    assert m["cosine"][0] == pytest.approx((o * c).sum() / np.linalg.norm(o) / np.linalg.norm(c))
    assert m["snr_out"][0] == pytest.approx(snr_db(c, o)[0])


def test_evaluate_tiny_run(tiny_run, pairs_dir, mitdb_dir):
    run, _ = tiny_run
    ev = evaluate(run, pairs_dir, mitdb_dir=mitdb_dir, max_windows=2, progress=False)
    assert ev["records"] == ["100"] and ev["pairs"] == 2 * 3 * 4
    assert ev["rpeak_reference"] == "mitdb-annotations"
    rows = {(r["method"], r["noise"], r["snr_in_db"]): r for r in ev["rows"]}
    assert len(rows) == 4 * 4 * 4  # methods x (3 noises + all) x SNRs
    for snr in (-6.0, 0.0, 6.0, 12.0):
        assert rows[("noisy", "all", snr)]["snr_out"] == pytest.approx(snr, abs=1e-3)
        assert rows[("noisy", "all", snr)]["snr_improvement"] == pytest.approx(0.0, abs=1e-9)
    # record 100's clean window: its R-peaks are all found (F1 ceiling), and bw noise at 12 dB is easy
    assert all(c["rpeak_f1"] > 95 for c in ev["clean_rpeak_f1"])
    assert rows[("butterworth", "bw", 12.0)]["snr_improvement"] > 0
    assert ev["deepfilter_protocol"]["status"].startswith("not run")
    assert (run / "eval" / "table.csv").is_file() and (run / "eval" / "snr_improvement.png").is_file()
    assert all((run / p).is_file() for p in ev["plots"])
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["pairs"] == 24
    # per record (one here): each (noise, SNR) mean equals the pooled row; the csv holds the same rows
    per = ev["per_record_snr_improvement"]
    assert len(per) == 4 * 4 and {r["record"] for r in per} == {"100"}
    for r in per:
        assert r["pairs"] == (6 if r["noise"] == "all" else 2)
        for m in ("denoiser", "butterworth", "wavelet"):
            assert r[m] == pytest.approx(rows[(m, r["noise"], r["snr_in_db"])]["snr_improvement"], abs=1e-9)
    with (run / "eval" / "per_record.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(per)


# --------------------------------------------------------------------------------------------- export, CLI
@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """``ecgcore export denoiser RUN --out DIR`` once for the module (the export itself is the slow part)."""
    run, _ = tiny_run
    out = tmp_path_factory.mktemp("export")
    r = CliRunner().invoke(main, ["export", "denoiser", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "max |diff|" in r.output
    return run, out


def test_export_onnx_parity(exported, pairs_dir):
    run, out = exported
    card = read_card(out)
    assert card.name == "denoiser" and card.task == "denoising" and card.fs == 130.0
    assert card.preprocessing["kind"] == "denoise-pairs" and card.preprocessing["chunk_size"] == 1300
    assert card.preprocessing["snr_db"] == [-6.0, 0.0, 6.0, 12.0] and card.preprocessing["restore_scale"]
    assert card.inputs[0]["shape"] == [None, 1, 1300]
    assert card.metrics["parity_max_abs_diff"] < 1e-4 and card.training["steps"] == 4
    assert b"pkg.torch.onnx.stack_trace" not in (out / "model.onnx").read_bytes()  # no exporter paths shipped
    # dynamic batch axis, real inputs (DS2 windows at 0 dB, z-scored) against PyTorch
    with np.load(pairs_dir / "100.npz") as z:
        d = {k: z[k] for k in ("noisy",)}
    x = np.stack([processing.zscore(d["noisy"][i, k, 1])[0] for i in range(3) for k in range(3)])
    x = x.astype(np.float32)[:, None]
    model, _ = load_model(run)
    for b in (1, 9):
        with torch.no_grad():
            e = model(torch.from_numpy(x[:b])).numpy()
        assert onnx_parity(out / "model.onnx", {"noisy": x[:b]}, e, atol=1e-4) < 1e-4
    # the NumPy pipeline around the ONNX graph equals the torch denoise() on a 2.5-window signal
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    sig = d["noisy"][:3, 2, 1].reshape(-1)[:3250]
    got = processing.denoise_array(sig, lambda b: sess.run(None, {"noisy": b})[0])
    np.testing.assert_allclose(got, denoise(sig, model), atol=1e-4)


def test_export_api_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="best.pt"):
        export(tmp_path)


def test_cli_train_evaluate(pairs_dir, tmp_path):
    run = tmp_path / "cli-run"
    cli = CliRunner()
    r = cli.invoke(main, ["train", "denoiser", str(pairs_dir), str(run), "--batch-size", "2", "--max-steps", "2",
                          "--val-every", "2", "--val-pairs", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "2 steps" in r.output and (run / "best.pt").is_file()
    r = cli.invoke(main, ["evaluate", "denoiser", str(run), str(pairs_dir), "--max-windows", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "butterworth" in r.output and "DeepFilter protocol: not run" in r.output
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["rpeak_reference"] == "clean-detections"
    r = cli.invoke(main, ["train", "denoiser", str(tmp_path), str(run / "x"), "--quiet"])
    assert r.exit_code != 0 and "splits.json" in r.output
    r = cli.invoke(main, ["evaluate", "denoiser", str(run), str(pairs_dir), "--records", "999"])
    assert r.exit_code != 0 and "not in the test split" in r.output
    r = cli.invoke(main, ["export", "denoiser", str(tmp_path)])
    assert r.exit_code != 0 and "best.pt" in r.output


# --------------------------------------------------------------------------------------------- shipped model
def test_shipped_model_runs_in_onnxruntime_alone(pairs_dir):
    """The bundled model needs onnxruntime + NumPy only, and denoises real DS2 windows at 0 dB."""
    assert (SHIPPED / "model.onnx").is_file() and (SHIPPED / "model.json").is_file()
    card = read_card(SHIPPED)
    assert card.preprocessing["kind"] == "denoise-pairs" and card.training.get("steps", 0) > 0
    with np.load(pairs_dir / "100.npz") as d:
        noisy, clean = d["noisy"][:8, :, 1].reshape(-1, 1300), np.repeat(d["clean"][:8], 3, axis=0)
    code = f"""
import sys, numpy as np, onnxruntime as ort
sys.path.insert(0, {_PKG_PARENT!r})
from ecgcore.models.denoiser import processing
s = ort.InferenceSession({str(SHIPPED / 'model.onnx')!r}, providers=["CPUExecutionProvider"])
x = np.load(sys.argv[1])
run = lambda b: s.run(None, {{"noisy": b}})[0]
out = np.stack([processing.denoise_array(r, run) for r in x])
np.save(sys.argv[2], out)
bad = [m for m in ("torch", "tensorflow", "mlx") if m in sys.modules]
sys.exit(f"imported {{bad}}" if bad else 0)
"""
    tmp = Path(pairs_dir) / "shipped_in.npy"
    np.save(tmp, noisy)
    r = subprocess.run([sys.executable, "-c", code, str(tmp), str(tmp.with_name("shipped_out.npy"))],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    out = np.load(tmp.with_name("shipped_out.npy"))
    assert out.shape == noisy.shape
    imp = snr_db(clean, out) - snr_db(clean, noisy)
    assert np.mean(imp) > SHIPPED_MIN_IMPROVEMENT_DB


# The shipped model measured 12.7 dB on these 24 windows (record 100, 0 dB bw/ma/em); a floor with margin.
SHIPPED_MIN_IMPROVEMENT_DB = 8.0


# --------------------------------------------------------------------------------------------- online mixing (issue 22)
def test_noise_bank_keeps_the_test_noise_out(pairs_dir):
    from ecgcore.models.denoiser.data import noise_bank

    tr, te = noise_bank(pairs_dir, part="train"), noise_bank(pairs_dir, part="test")
    assert set(tr.noise) == {"bw", "ma", "em"} and tr.fs == 130.0
    for k in tr.noise:  # 70 % / 30 % of the same resampled record, disjoint and complete
        n = tr.noise[k].size + te.noise[k].size
        assert abs(tr.noise[k].size / n - 0.7) < 1e-3
        assert not np.array_equal(tr.noise[k][-100:], te.noise[k][:100])


def test_mix_online_draws_what_it_promises(pairs_dir):
    from ecgcore.datasets.noise import snr_db
    from ecgcore.models.denoiser.data import load_split, mix_online, noise_bank

    clean = load_split(pairs_dir, "train").clean[:400]
    bank = noise_bank(pairs_dir)
    noisy, info = mix_online(clean, bank, np.random.default_rng(0), snr_range=(-6, 24), p_clean=0.2, p_mixture=0.3)
    is_clean = info["kind"] == "clean"
    assert 0.12 < is_clean.mean() < 0.28 and np.array_equal(noisy[is_clean], clean[is_clean].astype(np.float32))
    assert {"bw", "ma", "em", "mix"} <= set(info["kind"])
    got = snr_db(clean[~is_clean], noisy[~is_clean])
    np.testing.assert_allclose(got, info["snr"][~is_clean], atol=0.01)  # each at exactly its drawn SNR
    assert info["snr"][~is_clean].min() >= -6 and info["snr"][~is_clean].max() <= 24
    again, _ = mix_online(clean, bank, np.random.default_rng(0), p_clean=0.2)
    np.testing.assert_array_equal(noisy, again)


def test_online_training_runs_and_resumes_identically(pairs_dir, tmp_path):
    cfg = dict(batch_size=2, val_every=2, val_pairs=4, mixing="online")
    a, b = tmp_path / "a", tmp_path / "b"
    train(pairs_dir, a, DenoiserConfig(max_steps=4, **cfg), progress=False)
    train(pairs_dir, b, DenoiserConfig(max_steps=2, **cfg), progress=False)
    train(pairs_dir, b, DenoiserConfig(max_steps=4, **cfg), progress=False)
    wa = torch.load(a / "checkpoint" / "state.pt", weights_only=True)["model"]
    wb = torch.load(b / "checkpoint" / "state.pt", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)
    with pytest.raises(ValueError, match="mixing"):
        DenoiserConfig(max_steps=1, mixing="live")


def test_noise_stress_evaluation_scores_the_held_out_stretch(mitdb_dir, data_dir):
    """Issue 22's noise-stress table: nst records from held-out noise, the bundled denoiser vs the baselines."""
    from ecgcore.datasets.ec57 import beat_mask, scored_mask
    from ecgcore.io import read_annotations
    from ecgcore.models.denoiser.stress import evaluate_noise_stress, summarise_stress

    rows = evaluate_noise_stress(mitdb_dir, data_dir / "nstdb", records=["100"], noises=["em"], snrs=[6],
                                 progress=False)
    # the bundled card has a filter guard, so the network alone is listed too
    assert sorted(r["method"] for r in rows) == ["butterworth", "denoiser", "network alone", "noisy", "wavelet"]
    assert all(r["stretch"] == [300 * 360, 420 * 360] for r in rows)  # only 5:00-7:00 has held-out noise
    a = read_annotations(mitdb_dir / "100", "atr")
    beats = a.sample[beat_mask(a.symbol)]
    beats = beats[scored_mask(a.sample, a.symbol, beats)]
    n_ref = int(((beats >= 300 * 360) & (beats < 420 * 360)).sum())
    assert all(r["tp"] + r["fn"] == n_ref for r in rows)
    noisy = next(r for r in rows if r["method"] == "noisy")
    assert noisy["snr_improvement"] == 0.0
    cell = summarise_stress(rows)["em 6 dB"]
    assert cell["butterworth"]["snr_out_minus_butterworth"] == 0.0
    assert set(cell) == {"noisy", "denoiser", "network alone", "butterworth", "wavelet"}
    assert cell["noisy"]["stretches"] == 1


def test_evaluate_scores_an_exported_model_as_infer_runs_it(pairs_dir, mitdb_dir, tmp_path):
    """``ecgcore evaluate denoiser OUT PAIRS --onnx denoiser``: the bundled model through onnxruntime, each window
    denoised by ``denoise_signal`` (pre-filter and guard included); OUT is created and only receives the results."""
    from ecgcore.infer import denoise_signal

    out = tmp_path / "onnx-eval"
    r = CliRunner().invoke(main, ["evaluate", "denoiser", str(out), str(pairs_dir), "--onnx", "denoiser",
                                  "--mitdb", str(mitdb_dir), "--max-windows", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    ev = json.loads((out / "metrics.json").read_text())["evaluation"]
    assert ev["pairs"] == 12 and "checkpoint" not in ev and ev["scored_as"].startswith("ecgcore infer")
    assert ev["prefilter"] == read_card(SHIPPED).preprocessing["prefilter"]
    with np.load(pairs_dir / "100.npz") as d:
        noisy, clean = d["noisy"][0].reshape(-1, 1300).astype(np.float64), d["clean"][0].astype(np.float64)
        noise_kinds, snrs = [str(s) for s in d["noise"]], [float(s) for s in d["snr_db"]]
    mine = [pair_metrics(clean[None], x[None], denoise_signal(x, 130.0)[None])["snr_out"][0] for x in noisy]
    rows = {(q["noise"], q["snr_in_db"]): q["snr_out"] for q in ev["rows"] if q["method"] == "denoiser"}
    k = 0
    for kind in noise_kinds:
        for snr in snrs:
            assert rows[(kind, snr)] == pytest.approx(mine[k], abs=1e-6)
            k += 1
    r = CliRunner().invoke(main, ["evaluate", "denoiser", str(out), str(pairs_dir), "--onnx", "beats-aami",
                                  "--max-windows", "1", "--quiet"])
    assert r.exit_code != 0 and "not a denoiser" in r.output


def test_prefilter_training_reaches_the_card_and_every_inference_path(pairs_dir, tmp_path):
    """``--set prefilter_hz=0.5``: the run's inputs are high-passed before their z-score; the exported card carries
    ``preprocessing.prefilter`` so that ``ecgcore infer`` does the same, and torch ``denoise`` on the run folder too."""
    from ecgcore.infer import denoise_signal
    from ecgcore.models.denoiser.inference import torch_runner
    from ecgcore.pipelines.recipes.denoise_chunks import denoise_array

    run, out = tmp_path / "pf-run", tmp_path / "pf-model"
    cli = CliRunner()
    r = cli.invoke(main, ["train", "denoiser", str(pairs_dir), str(run), "--batch-size", "2", "--max-steps", "2",
                          "--val-every", "2", "--val-pairs", "4", "--set", "prefilter_hz=0.5", "--quiet"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["export", "denoiser", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    pre = {"highpass_hz": 0.5, "order": 3}
    assert read_card(out).preprocessing["prefilter"] == pre
    with np.load(pairs_dir / "100.npz") as d:
        sig = d["noisy"][:3, 0, 1].reshape(-1).astype(np.float64) + 2.0
    model, _ = load_model(run)
    want = denoise_array(sig, torch_runner(model), prefilter=pre)
    np.testing.assert_allclose(denoise(sig, run), want, atol=1e-9)
    assert not np.allclose(denoise(sig, run, prefilter_hz=0.0), want, atol=1e-3)
    np.testing.assert_allclose(denoise_signal(sig, 130.0, model=str(out)), want, atol=1e-4 * sig.std())
    with pytest.raises(ValueError, match="prefilter_hz"):
        DenoiserConfig(prefilter_hz=70.0)


@pytest.mark.parametrize("n", [1300, 999])
def test_residual_form_adds_the_input_and_keeps_the_seed_state_dict(n):
    """``AttentionUNet(residual=True)`` is the seed network plus its input: same state_dict (a seed checkpoint
    loads), and with the last 1x1 conv zeroed it returns its input exactly (padding cropped)."""
    torch.manual_seed(0)
    seed, res = AttentionUNet(8).eval(), AttentionUNet(8, residual=True).eval()
    assert list(seed.state_dict()) == list(res.state_dict())
    res.load_state_dict(seed.state_dict())
    x = torch.randn(3, 1, n)
    with torch.no_grad():
        np.testing.assert_allclose(res(x).numpy(), (seed(x) + x).numpy(), atol=1e-6)
        res.final.weight.zero_()
        res.final.bias.zero_()
        assert torch.equal(res(x), x)


def test_residual_training_reaches_the_export_and_infer(pairs_dir, tmp_path):
    """``--set residual=true``: the checkpoint, ``load_model``, the ONNX graph and ``ecgcore infer``'s path all add
    the input; the graph minus its input equals the seed-form network with the same weights."""
    from ecgcore.infer import denoise_signal
    from ecgcore.models.denoiser.inference import torch_runner
    from ecgcore.pipelines.recipes.denoise_chunks import denoise_array

    from ecgcore.models.denoiser import _train as train_mod

    built = []

    class Spy(AttentionUNet):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            built.append(self.residual)

    run, out = tmp_path / "res-run", tmp_path / "res-model"
    cli = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "AttentionUNet", Spy)
        r = cli.invoke(main, ["train", "denoiser", str(pairs_dir), str(run), "--batch-size", "2", "--max-steps", "2",
                              "--val-every", "2", "--val-pairs", "4", "--set", "residual=true", "--quiet"])
    assert r.exit_code == 0, r.output
    assert built == [True]  # the network that trained was the residual form
    assert not (run / "best_attention_unet.pth").exists()  # bare weights would load as the seed form
    r = cli.invoke(main, ["train", "denoiser", str(pairs_dir), str(tmp_path / "bad"), "--max-steps", "1",
                          "--set", "residual=False", "--quiet"])
    assert r.exit_code != 0 and "residual must be true or false" in r.output
    r = cli.invoke(main, ["export", "denoiser", str(run), "--out", str(out)])
    assert r.exit_code == 0, r.output
    model, ckpt = load_model(run)
    assert model.residual and ckpt["config"]["residual"] is True
    assert "Residual form" in read_card(out).description
    seed_form = AttentionUNet(int(ckpt["config"]["base_channels"])).eval()
    seed_form.load_state_dict(model.state_dict())
    with np.load(pairs_dir / "100.npz") as d:
        x = np.stack([processing.zscore(d["noisy"][i, 1, 1])[0] for i in range(4)]).astype(np.float32)[:, None]
        sig = d["noisy"][:3, 0, 1].reshape(-1).astype(np.float64)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"noisy": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), atol=1e-4)
        np.testing.assert_allclose(got - x, seed_form(torch.from_numpy(x)).numpy(), atol=1e-4)
    want = denoise_array(sig, torch_runner(model))
    np.testing.assert_allclose(denoise_signal(sig, 130.0, model=str(out)), want, atol=1e-4 * sig.std())
