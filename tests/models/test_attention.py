"""Attention classifier (SPEC §3): architecture, protocols, metrics, plots, resumable training, ONNX export.

Trainings here are a few optimiser steps on real MIT-BIH windows (a 4-record dataset made by the
``segments`` recipe, cut to its first windows so that validation and test stay cheap on 2 cores).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

# wfdb (read by the segments recipe) calls a pandas API that pandas 3.1 deprecates, at its import.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:Warning")

from ecgcore.models.attention import AttentionConfig, AttentionECGModel, evaluate, export, train  # noqa: E402
from ecgcore.models.attention import data as att_data  # noqa: E402
from ecgcore.models.attention import metrics as att_metrics  # noqa: E402
from ecgcore.models.attention import plots  # noqa: E402

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]
TINY_RECORDS = ["101", "106", "108", "100"]   # DS1 x3 (train x2, val x1) + DS2 x1 (test)
WINDOWS_PER_RECORD = 24


@pytest.fixture(scope="module")
def tiny_segments(mitdb_dir, tmp_path_factory) -> Path:
    """A real segments dataset (recipe output) keeping the first windows of each record."""
    from ecgcore.pipelines.engine import preprocess

    out = tmp_path_factory.mktemp("segments")
    preprocess("segments", mitdb_dir, out, records=TINY_RECORDS, workers=1, progress=False)
    meta = json.loads((out / "metadata.json").read_text())
    for r in TINY_RECORDS:
        with np.load(out / f"{r}.npz") as z:
            arrays = {k: z[k] for k in z.files}
        keep = slice(0, WINDOWS_PER_RECORD)
        for k in ("segments", "labels", "start"):
            arrays[k] = arrays[k][keep]
        np.savez(out / f"{r}.npz", **arrays)
        meta["records"][r] = {"segments": WINDOWS_PER_RECORD, "abnormal": int(arrays["labels"].sum())}
    (out / "metadata.json").write_text(json.dumps(meta))
    return out


def _cfg(**kw) -> AttentionConfig:
    base = dict(val_records=1, batch_size=4, max_steps=2, threads=1)
    base.update(kw)
    return AttentionConfig(**base)


# --- architecture ---------------------------------------------------------------------------------------------

def test_seed_architecture_exact():
    m = AttentionECGModel()
    assert sum(p.numel() for p in m.parameters()) == 7_400_322          # SPEC §3.2
    assert m.fc1.weight.shape == (128, 57_600)
    assert m.attention.num_heads == 8 and m.attention.embed_dim == 64 and not m.attention.batch_first
    assert m.dropout.p == 0.5
    # The seed's parameter names, so its best_model.pth state_dict would load unchanged.
    assert sorted(m.state_dict()) == sorted([
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "attention.in_proj_weight",
        "attention.in_proj_bias", "attention.out_proj.weight", "attention.out_proj.bias",
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])


def test_forward_shapes_and_weights():
    torch.manual_seed(0)
    m = AttentionECGModel().eval()
    x = torch.randn(2, 1, 3600)
    with torch.no_grad():
        logits, w = m(x)
        logits_fused, none = m(x, need_weights=False)
    assert logits.shape == (2, 2) and w.shape == (2, 900, 900) and none is None
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 900), atol=1e-5, rtol=0)
    # The fused (training) path computes the same function.
    torch.testing.assert_close(logits_fused, logits, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, 1, 3600\)"):
        m(torch.randn(2, 3600))


def test_config_validation():
    with pytest.raises(ValueError, match="protocol"):
        AttentionConfig(protocol="random")
    with pytest.raises(ValueError, match="unknown AttentionConfig"):
        AttentionConfig.from_dict({"bogus": 1})
    assert AttentionConfig.from_dict(AttentionConfig().to_dict()) == AttentionConfig()


# --- protocols ------------------------------------------------------------------------------------------------

def test_seed_random_split_matches_sklearn():
    sk = pytest.importorskip("sklearn.model_selection")
    idx = np.arange(17_280)
    tr_sk, te_sk = sk.train_test_split(idx, test_size=0.2, random_state=42)
    tr, te = att_data.seed_random_split(17_280, 0.2, 42)
    np.testing.assert_array_equal(tr, tr_sk)
    np.testing.assert_array_equal(te, te_sk)
    tr2_sk, va_sk = sk.train_test_split(tr_sk, test_size=0.2, random_state=42)
    tr2, va = att_data.seed_random_split(len(tr), 0.2, 42)
    np.testing.assert_array_equal(tr[tr2], tr2_sk)
    assert (len(tr2), len(va), len(te)) == (11_059, 2_765, 3_456)  # SPEC §3.1's split sizes


def test_protocol_splits(tiny_segments):
    ip = att_data.protocol_splits(tiny_segments, "inter-patient", val_records=1)
    recs = {k: set(v.record.tolist()) for k, v in ip.items()}
    assert recs["test"] == {"100"}                                  # DS2 only
    assert len(recs["val"]) == 1 and recs["val"] | recs["train"] == {"101", "106", "108"}
    assert not recs["val"] & recs["train"]                          # patient-disjoint validation
    assert ip["train"].x.shape[1:] == (1, 3600) and ip["train"].x.dtype == np.float32
    lk = att_data.protocol_splits(tiny_segments, "leaky")
    n = 4 * WINDOWS_PER_RECORD
    assert sum(len(v) for v in lk.values()) == n and len(lk["test"]) == int(np.ceil(0.2 * n))
    keys = [set(zip(v.record.tolist(), v.start.tolist())) for v in lk.values()]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    with pytest.raises(ValueError, match="protocol"):
        att_data.protocol_splits(tiny_segments, "nope")


def test_validation_records_by_name(tiny_segments):
    """``val_names``: the named DS1 records validate (whatever ``val_pick`` would spread), never a DS2 record."""
    cfg = _cfg(val_names=["108"])
    assert cfg.val_records == 1
    sp = att_data.config_splits(tiny_segments, cfg)
    assert set(sp["val"].record.tolist()) == {"108"} and set(sp["train"].record.tolist()) == {"101", "106"}
    sp = att_data.config_splits(tiny_segments, _cfg(val_names=["101", "106"]))
    assert set(sp["val"].record.tolist()) == {"101", "106"} and set(sp["train"].record.tolist()) == {"108"}
    with pytest.raises(ValueError, match="not DS1 records"):
        att_data.config_splits(tiny_segments, _cfg(val_names=["100"]))
    with pytest.raises(ValueError, match="none would train"):
        att_data.config_splits(tiny_segments, _cfg(val_names=["101", "106", "108"]))
    with pytest.raises(ValueError, match="list of record names"):
        _cfg(val_names="108")
    with pytest.raises(ValueError, match="inter-patient"):
        _cfg(val_names=["108"], protocol="leaky")


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        att_data.read_dataset_info(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="metadata.json"):
        att_data.read_dataset_info(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"recipe": "heartid"}))
    with pytest.raises(ValueError, match="expected 'segments'"):
        att_data.read_dataset_info(tmp_path)


# --- metrics --------------------------------------------------------------------------------------------------

def test_metrics_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.25, 500), 0, 1).round(2)   # rounded: ties in the scores
    m = att_metrics.classification_metrics(y, p)
    pred = (p > 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert np.isnan(att_metrics.roc_auc(np.zeros(5), np.linspace(0, 1, 5)))
    assert "Abnormal" in att_metrics.classification_report(m)


# --- plots (framework-free) -----------------------------------------------------------------------------------

def test_prior_decision_undoes_balanced_class_weights():
    """By its definition: with balanced weights w_c = n / (2 count_c) the weighted posterior is p_w(c) ∝ w_c p(c|x);
    dividing the weights back out and taking the larger class is the same as p_w(Abnormal) >= the threshold."""
    counts = [6220, 1700]
    d = att_metrics.prior_decision(counts)
    assert d["positive"] == "Abnormal" and d["threshold"] == pytest.approx(6220 / 7920, abs=1e-4)
    w = sum(counts) / (2 * np.asarray(counts, float))
    p_w = np.linspace(0.0, 1.0, 2001)
    natural = (p_w / w[1]) / (p_w / w[1] + (1 - p_w) / w[0])
    agree = (natural >= 0.5) == (p_w >= d["threshold"])
    assert agree[np.abs(p_w - d["threshold"]) > 1e-4].all()
    assert att_metrics.prior_decision(counts, class_weight="none") is None
    assert att_metrics.prior_decision([10, 0]) is None  # a class absent from training: no prior to restore
    with pytest.raises(ValueError, match="two class counts"):
        att_metrics.prior_decision([10, 5, 3])


def test_plots_module_does_not_import_torch():
    code = ("import sys; import ecgcore.models.attention.plots as p; "
            "assert 'torch' not in sys.modules, 'plots imported torch'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_upsample_matches_scipy_resample():
    signal = pytest.importorskip("scipy.signal")
    a = np.random.default_rng(0).random(900)
    np.testing.assert_allclose(plots.upsample_attention(a, 3600), signal.resample(a, 3600), atol=1e-9)
    np.testing.assert_array_equal(plots.upsample_attention(a, 3600, "repeat")[:8], np.repeat(a[:2], 4))
    with pytest.raises(ValueError, match="method"):
        plots.upsample_attention(a, 3600, "cubic")


def test_plot_attention_png(tmp_path, tiny_segments):
    with np.load(tiny_segments / "101.npz") as z:
        x = z["segments"][0]
    att = np.random.default_rng(1).dirichlet(np.ones(900))
    for style, a in (("shade", att), ("overlay", att), ("overlay", np.repeat(att, 4))):
        out = plots.plot_attention(x, a, 360.0, tmp_path / f"{style}{a.size}.png", style=style)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w = np.random.default_rng(2).dirichlet(np.ones(900), size=900)
    assert plots.plot_attention_panels(x, w, 360.0, tmp_path / "panels.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="square"):
        plots.attention_profiles(np.ones((3, 4)))


# --- training, resume, evaluation, export -------------------------------------------------------------------

def _state(run: Path) -> dict:
    return torch.load(run / "checkpoint" / "state.pt", weights_only=False)["model"]


def test_train_resume_is_deterministic(tiny_segments, tmp_path):
    straight = train(tiny_segments, tmp_path / "a", _cfg(max_steps=2), progress=False, evaluate_after=False)
    assert straight["training"]["steps"] == 2 and straight["training"]["stop_reason"] == "max_steps"
    train(tiny_segments, tmp_path / "b", _cfg(max_steps=1), progress=False, evaluate_after=False)
    resumed = train(tiny_segments, tmp_path / "b", _cfg(max_steps=2), progress=False, evaluate_after=False)
    assert resumed["training"]["steps"] == 2 and len(resumed["training"]["history"]) == 2
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)
    # Re-running a run that reached its budget trains nothing more.
    again = train(tiny_segments, tmp_path / "b", _cfg(max_steps=2), progress=False, evaluate_after=False)
    assert again["training"]["steps"] == 2 and len(again["training"]["history"]) == 2
    # A changed architecture/optimiser setting is refused rather than silently mixed.
    with pytest.raises(ValueError, match="different settings"):
        train(tiny_segments, tmp_path / "b", _cfg(max_steps=3, lr=0.1), progress=False, evaluate_after=False)


def test_train_evaluate_export_parity(tiny_segments, tmp_path):
    import onnxruntime as ort

    run = tmp_path / "run"
    m = train(tiny_segments, run, _cfg(max_steps=2, batch_size=8), progress=False)
    test = m["test"]
    assert test["n"] == WINDOWS_PER_RECORD and sum(map(sum, test["confusion_matrix"])) == WINDOWS_PER_RECORD
    for f in ("metrics.json", "best.pt", "history.csv", "learning_curve.png", "confusion_matrix_test.png", "roc_test.png",
              "classification_report_test.txt", "attention_test_0.png", "attention_test_2.png"):
        assert (run / f).is_file(), f
    again = evaluate(run, tiny_segments, split="val", progress=False, n_attention=1)
    assert again["val"]["n"] == WINDOWS_PER_RECORD and "test" in again

    r = export(run, tmp_path / "onnx", check_windows=3)
    onnx_path, card, worst = r["onnx"], r["model_card"], r["parity_max_abs_diff"]
    assert worst < 1e-4
    assert card.preprocessing["kind"] == "segments" and card.preprocessing["band"] == [0.5, 50.0]
    assert "decision" not in card.preprocessing  # unweighted training: argmax is the Bayes decision
    assert card.classes == ["Normal", "Abnormal"] and card.fs == 360.0
    assert card.inputs[0]["shape"] == [None, 1, 3600]
    assert [o["name"] for o in card.outputs] == ["logits", "probabilities", "attention"]
    # Independent check (the logits graph computes attention in blocks of query steps): real windows, batch sizes other than the export's (dynamic axis).
    from ecgcore.models.attention import load_run

    model, _ = load_run(run)
    x = att_data.protocol_splits(tiny_segments, "inter-patient", val_records=1)["test"].x[[0, 5, 11, 17, 23]]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    att_sess = ort.InferenceSession(str(onnx_path.parent / "attention.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logits", "probabilities"]   # no (B, 900, 900) output
    assert card.outputs[2]["graph"] == "attention.onnx"
    # every export carries the batch cap `ecgcore infer` honours (larger batches measured no faster, more memory)
    from ecgcore.infer.memory import batch_for_budget
    from ecgcore.models.attention._export import MAX_BATCH

    assert card.resources["max_batch"] == MAX_BATCH
    assert batch_for_budget(card, 1 << 40) == MAX_BATCH
    for batch in (x[:1], x):
        logits, prob = sess.run(None, {"ecg": batch})
        (att,) = att_sess.run(None, {"ecg": batch})
        with torch.no_grad():
            ref_logits, ref_att = model(torch.from_numpy(batch))
        np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(prob, torch.softmax(ref_logits, 1).numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(att, ref_att.numpy(), atol=1e-4, rtol=0)
    # The default graph attends with onnxruntime's fused kernel; --standard-ops gives plain ONNX ops, same outputs.
    import onnx

    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert "MultiHeadAttention" in ops and "Softmax" in ops          # fused attention; the final softmax
    std = export(run, tmp_path / "std", check_windows=3, fused_attention=False)["onnx"]
    std_nodes = onnx.load(str(std)).graph.node
    assert "MultiHeadAttention" not in {n.op_type for n in std_nodes} and all(n.domain in ("", "ai.onnx")
                                                                               for n in std_nodes)
    std_logits = ort.InferenceSession(str(std), providers=["CPUExecutionProvider"]).run(None, {"ecg": x})[0]
    np.testing.assert_allclose(std_logits, sess.run(None, {"ecg": x})[0], atol=1e-4, rtol=0)


def test_cli_train_evaluate_export(tiny_segments, tmp_path):
    from click.testing import CliRunner

    from ecgcore.cli import main

    run = tmp_path / "cli"
    r = CliRunner().invoke(main, ["train", "attention", str(tiny_segments), str(run), "--protocol", "leaky",
                                  "--max-steps", "1", "--batch-size", "4", "--threads", "1", "--quiet",
                                  "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "metrics.json").read_text())["protocol"] == "leaky"
    r = CliRunner().invoke(main, ["evaluate", "attention", str(run), "--quiet"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.output.strip().splitlines()[-1])) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    r = CliRunner().invoke(main, ["export", "attention", str(run), "--check-windows", "2"])
    assert r.exit_code == 0, r.output
    assert (run / "model.onnx").is_file() and (run / "model.json").is_file()
    r = CliRunner().invoke(main, ["train", "attention", str(tmp_path / "nowhere"), str(run)])
    assert r.exit_code != 0 and "not found" in r.output


def test_logits_graph_holds_no_full_attention_tensor():
    """The bundled segments-abnormal graph attends with onnxruntime's fused kernel: no value in it has 900 x 900
    elements per item (a (B, 8, 900, 900) tensor made a 256-window batch take 15 GB)."""
    import onnx
    from onnx import shape_inference

    from ecgcore.export import list_bundled

    if "segments-abnormal" not in list_bundled():
        pytest.skip("bundled segments-abnormal not installed")
    graph = shape_inference.infer_shapes(onnx.load(str(list_bundled()["segments-abnormal"] / "model.onnx"))).graph
    sizes = []
    for v in list(graph.value_info) + list(graph.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim[1:]]
        if dims and all(d > 0 for d in dims):
            sizes.append(int(np.prod(dims)))
    assert sizes and max(sizes) < 900 * 900, max(sizes)
    assert [o.name for o in graph.output] == ["logits", "probabilities"]
    assert "MultiHeadAttention" in {n.op_type for n in graph.node}


def test_augmented_balanced_training_resumes_identically(tiny_segments, tmp_path):
    """Augmentation is drawn from (seed, epoch, batch): a resumed run trains on the very same windows."""
    cfg = dict(augment=True, class_weight="balanced")
    train(tiny_segments, tmp_path / "a", _cfg(max_steps=2, **cfg), progress=False, evaluate_after=False)
    train(tiny_segments, tmp_path / "b", _cfg(max_steps=1, **cfg), progress=False, evaluate_after=False)
    train(tiny_segments, tmp_path / "b", _cfg(max_steps=2, **cfg), progress=False, evaluate_after=False)
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0, msg=k)
    plain = train(tiny_segments, tmp_path / "c", _cfg(max_steps=2), progress=False, evaluate_after=False)
    c = _state(tmp_path / "c")
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())  # augmentation changed training
    assert plain["training"]["steps"] == 2
    # a balanced-weight run's export carries the operating point that restores the training prior
    card = export(tmp_path / "a", tmp_path / "onnx", check_windows=2)["model_card"]
    fit = card.training["splits"]["train"]
    assert card.preprocessing["decision"]["threshold"] == pytest.approx(1 - fit["abnormal"] / fit["segments"],
                                                                        abs=1e-4)


def test_augment_batch_keeps_shape_and_varies_per_window():
    from ecgcore.models.attention._train import augment_batch

    x = np.tile(np.sin(np.linspace(0, 60, 3600, dtype=np.float32)), (6, 1, 1))
    y = augment_batch(x, np.random.default_rng(0), AttentionConfig())
    assert y.shape == x.shape and y.dtype == np.float32
    assert len({round(float(v), 4) for v in y[:, 0, 100]}) == 6  # every window drawn differently
    np.testing.assert_array_equal(y, augment_batch(x, np.random.default_rng(0), AttentionConfig()))
    with pytest.raises(ValueError, match="class_weight"):
        AttentionConfig(class_weight="auto")


def test_val_pick_keep_abnormal_leaves_mostly_abnormal_records_in_training(tmp_path):
    """``keep-abnormal`` spreads the validation records over those not mostly Abnormal; ``spread`` over all."""
    frac = {"a": 0.0, "b": 0.0, "c": 0.02, "d": 0.1, "e": 0.3, "f": 0.45, "g": 0.9, "h": 1.0}
    meta = {"recipe": "segments", "records": {r: {"segments": 100, "abnormal": int(100 * f)} for r, f in frac.items()}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    recs = sorted(frac)
    spread = att_data.pick_val_records(tmp_path, recs, 4)
    kept = att_data.pick_val_records(tmp_path, recs, 4, "keep-abnormal")
    assert spread == ["b", "d", "f", "h"]                      # evenly along the Abnormal fraction, 'h' included
    assert kept == ["a", "c", "d", "f"] and not {"g", "h"} & set(kept)
    with pytest.raises(ValueError, match="cannot hold out"):
        att_data.pick_val_records(tmp_path, recs, 6, "keep-abnormal")   # only 6 candidates left
    with pytest.raises(ValueError, match="val_pick"):
        AttentionConfig(val_pick="random")


def test_nstdb_augmentation_adds_band_passed_training_noise_at_the_drawn_snr(tiny_segments, data_dir):
    """Real NSTDB noise from the training portion, filtered as the windows were, at the SNR asked; re-z-scored."""
    from ecgcore.dsp import bandpass
    from ecgcore.io import read_record
    from ecgcore.models.attention._train import augment_batch

    cfg = AttentionConfig(augment=True, aug_nstdb=1.0, aug_nstdb_snr=(12.0, 12.0), aug_scale=0.0, aug_wander=0.0,
                          aug_noise=0.0, noise_dir=str(data_dir / "nstdb"))
    bank = att_data.train_noise_bank(cfg, tiny_segments)
    raw = read_record(data_dir / "nstdb" / "em", annotator=None).signal[:, 0]
    cut = int(raw.size * 0.7)
    assert set(bank.noise) == {"bw", "ma", "em"} and bank.noise["em"].size == cut   # training portion only
    np.testing.assert_allclose(bank.noise["em"], bandpass(raw[:cut], fs=360.0, low=0.5, high=50.0, order=5),
                               atol=1e-9)
    with np.load(tiny_segments / "101.npz") as z:
        x = z["segments"][:16, None].astype(np.float32)
    y = augment_batch(x, np.random.default_rng(3), cfg, bank=bank)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=2), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=2), 1.0, atol=1e-4)
    r = np.array([np.corrcoef(a[0], b[0])[0, 1] for a, b in zip(x, y)])
    snr = 10 * np.log10(r ** 2 / (1 - r ** 2))      # x z-scored: corr^2 = P_x / (P_x + P_noise)
    assert abs(np.median(snr) - 12.0) < 1.0, snr
    with pytest.raises(ValueError, match="aug_nstdb"):
        AttentionConfig(aug_nstdb=1.5)


def test_int8_weight_export_is_small_and_close(tiny_segments, tmp_path):
    """fc1 stored in int8 (float arithmetic): the card states the difference from PyTorch, and it holds."""
    import onnxruntime as ort

    from ecgcore.models.attention import load_run
    from ecgcore.models.attention._export import load_onnx_weights

    run = tmp_path / "run"
    train(tiny_segments, run, _cfg(max_steps=1, batch_size=8), progress=False, evaluate_after=False)
    flt = export(run, tmp_path / "f32", check_windows=3, int8_weights=False)
    r = export(run, tmp_path / "i8", check_windows=3)
    q = r["model_card"].metrics["onnx_int8"]
    assert [w["name"] for w in q["quantized"]] == ["model.fc1.weight"]  # 57,600 x 128: the only large one
    assert r["onnx"].stat().st_size < 0.5 * flt["onnx"].stat().st_size
    model, _ = load_run(run)
    x = att_data.protocol_splits(tiny_segments, "inter-patient", val_records=1)["test"].x[:24]
    logits, prob = ort.InferenceSession(str(r["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"ecg": x})
    with torch.no_grad():
        ref, _ = model(torch.from_numpy(x), need_weights=False)
    diff = np.abs(logits - ref.numpy()).max()
    assert diff < 1e-2 and q["max_abs_diff_logits"] < 1e-2
    assert (prob.argmax(1) == ref.numpy().argmax(1)).mean() >= 0.95
    # the weights read back from the int8 graph are the dequantized ones (re-export / fine-tuning still work)
    back = load_onnx_weights(r["onnx"], model.config)
    err = (back.fc1.weight - model.fc1.weight).abs().max().item()
    assert 0 < err <= max(w["max_abs_error"] for w in q["quantized"]) + 1e-7


# --- attention analysis (issue 21) ------------------------------------------------------------------------------

def test_attention_stats_see_where_the_mass_is():
    from ecgcore.models.attention.analysis import summarise, window_attention_stats

    abnormal, normal = np.array([1000]), np.array([300, 2000, 3000])
    flat = np.full((900, 900), 1 / 900)
    s = window_attention_stats(flat, abnormal, normal)
    assert s["ratio"] == pytest.approx(1.0, rel=0.05) and s["uniform"] == pytest.approx(19 / 900)
    focused = np.zeros((900, 900))
    focused[:, 1000 // 4] = 1.0  # every query looks at the abnormal beat
    f = window_attention_stats(focused, abnormal, normal)
    assert f["near_abnormal"] == pytest.approx(1.0) and f["near_normal"] == 0 and f["ratio"] == np.inf
    away = np.zeros((900, 900))
    away[:, 2000 // 4] = 1.0
    w = window_attention_stats(away, abnormal, normal)
    assert w["ratio"] == 0
    assert window_attention_stats(flat, abnormal, np.array([], int)) is None
    summ = summarise([f, w, f])
    assert summ["windows"] == 3 and summ["share_ratio_above_1"] == pytest.approx(2 / 3)
    assert 0 < summ["sign_test_p"] <= 1


def test_analyse_run_counts_the_windows_holding_both(tiny_segments, mitdb_dir, tmp_path):
    from ecgcore.io import read_annotations
    from ecgcore.models.attention.analysis import analyse_run, beats_in_window

    run = tmp_path / "run"
    train(tiny_segments, run, _cfg(max_steps=1, batch_size=8), progress=False, evaluate_after=False)
    summ = analyse_run(run, mitdb_dir, progress=False, n_plots=1)
    test = att_data.protocol_splits(tiny_segments, "inter-patient", val_records=1)["test"]
    a = read_annotations(mitdb_dir / "100", "atr")
    both = sum(all(len(v) for v in beats_in_window(a.sample, a.symbol, int(s), 3600)) for s in test.start)
    assert both >= 1 and summ["windows"] == both  # record 100's A beat at 5.7 s lies in the first windows
    assert (run / "attention_analysis_0.png").is_file()
    per = json.loads((run / "attention_analysis.json").read_text())["windows"]
    assert len(per) == both and all(w["record"] == "100" and w["near_abnormal"] >= 0 for w in per)


def test_rr_baseline_scores_windows_and_picks_its_threshold_on_training(mitdb_dir):
    from ecgcore.models.attention.baseline import rr_irregularity, score_baseline

    starts = np.arange(0, 200) * 1800
    s208 = rr_irregularity("208", starts, 3600, mitdb_dir)  # many PVCs: premature beats everywhere
    s100 = rr_irregularity("100", starts, 3600, mitdb_dir)  # sinus rhythm, one A beat early on
    assert s208.shape == (200,) and np.median(s208) > 3 * np.median(s100)
    y = np.r_[np.ones(200, int), np.zeros(200, int)]
    r = score_baseline(np.r_[s208, s100], y, np.r_[s208, s100], y)
    assert r["roc_auc"] > 0.9 and r["f1_abnormal"] > 0.8 and r["n"] == 400
    flipped = score_baseline(np.r_[s208, s100], y, np.r_[s100, s208], y)  # a threshold that does not transfer
    assert flipped["roc_auc"] < 0.1


def test_refit_without_validation_trains_every_ds1_record_for_the_epochs_asked(tiny_segments, tmp_path):
    """val_records=0: all DS1 records train (3 here, 24 windows each -> 18 batches of 4 per epoch), no early stopping
    or plateau cut however the loss moves, the last weights kept as best.pt; the test split is still DS2 only."""
    cfg = _cfg(val_records=0, max_steps=None, epochs=2, batch_size=4, patience=1, plateau_patience=0)
    m = train(tiny_segments, tmp_path / "r", cfg, progress=False, evaluate_after=False)
    t = m["training"]
    assert t["steps"] == 2 * 18 and t["epochs_completed"] == 2 and t["stop_reason"] == "epochs"
    assert t["best_val_loss"] is None and "val" not in m["splits"] and m["splits"]["test"]["records"] == ["100"]
    assert all(r["lr"] == cfg.lr and r.get("val_loss", "") == "" for r in t["history"])
    assert torch.load(tmp_path / "r" / "best.pt", weights_only=False)["epoch"] == 2
    assert all(torch.equal(v, _state(tmp_path / "r")[k]) for k, v in
               torch.load(tmp_path / "r" / "best.pt", weights_only=False)["model"].items())
    with pytest.raises(ValueError, match="validation split is empty"):
        train(tiny_segments, tmp_path / "x", _cfg(val_records=0, protocol="leaky", val_fraction=0.0),
              progress=False, evaluate_after=False)
    from click.testing import CliRunner

    from ecgcore.cli import main

    r = CliRunner().invoke(main, ["train", "attention", str(tiny_segments), str(tmp_path / "cli"), "--epochs", "1",
                                  "--batch-size", "8", "--threads", "1", "--quiet", "--no-evaluate",
                                  "--val-records", "0"])
    assert r.exit_code == 0, r.output
    assert "9 steps, 1 full epochs, stop: epochs, no validation (refit" in r.output


def test_pool_head_is_small_and_exports_with_parity(tiny_segments, tmp_path):
    """``head="pool"``: fc1 reads the mean and max of the attention output over the 900 steps (128 inputs instead of
    57,600), so the model is 43,906 parameters; the seed's flatten head stays the default. A run with it trains,
    exports (nothing large enough for int8, so the float graph ships) and matches PyTorch in onnxruntime."""
    import onnxruntime as ort

    from ecgcore.models.attention import load_run

    m = AttentionECGModel(AttentionConfig(head="pool"))
    assert AttentionConfig().head == "flatten" and m.fc1.weight.shape == (128, 128)
    assert sum(p.numel() for p in m.parameters()) == 43_906
    with pytest.raises(ValueError, match="head"):
        AttentionConfig(head="gap")
    run = tmp_path / "run"
    train(tiny_segments, run, _cfg(max_steps=2, batch_size=8, head="pool"), progress=False)
    r = export(run, tmp_path / "onnx", check_windows=3)
    assert r["parity_max_abs_diff"] < 1e-4 and r["int8"] is None
    assert r["model_card"].config["head"] == "pool" and (tmp_path / "onnx" / "model.onnx").stat().st_size < 400_000
    model, _ = load_run(run)
    x = att_data.protocol_splits(tiny_segments, "inter-patient", val_records=1)["test"].x[[0, 7, 13]]
    logits = ort.InferenceSession(str(r["onnx"]), providers=["CPUExecutionProvider"]).run(None, {"ecg": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x))[0].numpy(), atol=1e-4, rtol=0)


def test_weight_average_follows_its_decay_and_is_what_best_pt_holds(tiny_segments, tmp_path):
    """ema > 0: the averaged copy moves by (1 - d) towards the trained weights after each step, d = min(ema, (1 + step)
    / (10 + step)); best.pt holds the average (not the trained weights), and a resumed run continues it exactly."""
    from ecgcore.models.attention._train import WeightAverage

    net = torch.nn.Linear(3, 2)
    avg = WeightAverage(net, 0.9)
    start = {k: v.clone() for k, v in avg.model.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    avg.update(net, 0)  # d = min(0.9, 1 / 10) = 0.1
    for k, v in avg.model.state_dict().items():
        torch.testing.assert_close(v, 0.1 * start[k] + 0.9 * net.state_dict()[k])
    avg.update(net, 1000)  # d = 0.9
    for k, v in avg.model.state_dict().items():
        torch.testing.assert_close(v, 0.9 * (0.1 * start[k] + 0.9 * net.state_dict()[k]) + 0.1 * net.state_dict()[k])
    with pytest.raises(ValueError, match="ema"):
        AttentionConfig(ema=1.0)

    cfg = dict(val_records=0, ema=0.9)
    train(tiny_segments, tmp_path / "a", _cfg(max_steps=3, **cfg), progress=False, evaluate_after=False)
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=False)["model"]
    ema = torch.load(tmp_path / "a" / "checkpoint" / "ema.pt", weights_only=True)
    raw = _state(tmp_path / "a")
    assert all(torch.equal(best[k], ema[k]) for k in best)
    assert any(not torch.equal(best[k], raw[k]) for k in best)
    # The average the training kept, recomputed from the trained weights after each step: the average draws no
    # randomness, so a run without it trains the same weights (snapshots after steps 1, 2, 3 by resuming).
    torch.manual_seed(42)
    expect = AttentionECGModel(_cfg()).state_dict()
    for step in range(3):
        train(tiny_segments, tmp_path / "plain", _cfg(max_steps=step + 1, val_records=0), progress=False,
              evaluate_after=False)
        w, d = _state(tmp_path / "plain"), min(0.9, (1.0 + step) / (10.0 + step))
        expect = {k: d * expect[k] + (1.0 - d) * w[k] for k in expect}
    torch.testing.assert_close(w, raw, atol=0, rtol=0)  # the same trained weights with and without the average
    for k in best:
        torch.testing.assert_close(best[k], expect[k], atol=1e-6, rtol=1e-5, msg=k)
    # With validation, the averaged weights are the ones validated and kept (the first validation always improves).
    train(tiny_segments, tmp_path / "v", _cfg(max_steps=2, val_records=1, ema=0.9), progress=False,
          evaluate_after=False)
    vbest = torch.load(tmp_path / "v" / "best.pt", weights_only=False)["model"]
    vema = torch.load(tmp_path / "v" / "checkpoint" / "ema.pt", weights_only=True)
    assert all(torch.equal(vbest[k], vema[k]) for k in vbest)
    assert any(not torch.equal(vbest[k], _state(tmp_path / "v")[k]) for k in vbest)
    train(tiny_segments, tmp_path / "b", _cfg(max_steps=1, **cfg), progress=False, evaluate_after=False)
    train(tiny_segments, tmp_path / "b", _cfg(max_steps=3, **cfg), progress=False, evaluate_after=False)
    resumed = torch.load(tmp_path / "b" / "checkpoint" / "ema.pt", weights_only=True)
    for k in ema:
        torch.testing.assert_close(ema[k], resumed[k], atol=0, rtol=0, msg=k)
    with pytest.raises(ValueError, match="different settings"):  # the decay is part of the run
        train(tiny_segments, tmp_path / "b", _cfg(max_steps=4, val_records=0, ema=0.5), progress=False,
              evaluate_after=False)


def test_extra_training_windows_join_the_training_split_only(tiny_segments, data_dir, tmp_path):
    """``extra_train``: PTB-XL windows (``segments-ptbxl``) train, each Normal one ``extra_repeat[0]`` times and each
    Abnormal one ``extra_repeat[1]`` times; the card's decision prior counts the MIT-BIH windows only and names the
    folder by a placeholder; a dataset built otherwise is refused."""
    from ecgcore.models.attention._export import EXTRA_PLACEHOLDER
    from ecgcore.pipelines.engine import preprocess
    from ecgcore.pipelines.recipes.segments import ptbxl_window_labels

    lab = sorted(ptbxl_window_labels(data_dir / "ptbxl").items())
    ids = [k for k, v in lab if v["label"] == 0][:2] + [k for k, v in lab if v["label"] == 1][:1]
    extra = tmp_path / "ptb"
    preprocess("segments-ptbxl", data_dir / "ptbxl", extra, records=ids, workers=1, progress=False)
    e = att_data.extra_windows(extra, tiny_segments, (2, 5))
    assert len(e) == 2 * 2 + 5 and int(e.y.sum()) == 5 and sorted(set(e.record.tolist())) == sorted(ids)
    stored = np.load(extra / f"{ids[2]}.npz")["segments"][0]
    assert all(np.array_equal(w[0], stored) for w in e.x[e.record == ids[2]])
    assert "extra" not in att_data.config_splits(tiny_segments, _cfg(extra_train=str(extra)))  # only the trainer's
    cfg = _cfg(val_records=0, max_steps=None, epochs=1, batch_size=4, extra_train=str(extra), extra_repeat=(2, 5),
               augment=True, class_weight="balanced")
    m = train(tiny_segments, tmp_path / "r", cfg, progress=False, evaluate_after=False)
    assert m["training"]["steps"] == (3 * 24 + 9 + 3) // 4          # 72 DS1 windows + 9 extra, batches of 4
    assert m["extra_train"] == {"ecgs": 3, "windows_per_epoch": 9, "abnormal_per_epoch": 5, "repeat": [2, 5]}
    assert m["splits"]["train"]["segments"] == 72 and "extra" not in m["splits"]
    card = export(tmp_path / "r", tmp_path / "m", check_windows=2)["model_card"]
    assert card.config["extra_train"] == EXTRA_PLACEHOLDER and card.training["extra_train"] == m["extra_train"]
    assert sum(card.preprocessing["decision"]["training_counts"]) == 72
    assert str(tmp_path) not in (tmp_path / "m" / "model.json").read_text()
    meta = json.loads((extra / "metadata.json").read_text())
    meta["options"]["band"] = [1.0, 40.0]
    (extra / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="band"):
        att_data.extra_windows(extra, tiny_segments)
    with pytest.raises(ValueError, match="not a segments-ptbxl dataset"):
        att_data.extra_windows(tiny_segments, tiny_segments)  # the MIT-BIH dataset itself: its DS2 would train
    for bad in ((1, -1), 10, (0, 0)):
        with pytest.raises(ValueError, match="extra_repeat"):
            AttentionConfig(extra_repeat=bad, extra_train=str(extra))


def test_sigterm_ends_the_session_checkpointed_without_the_test_evaluation(tiny_segments, tmp_path, monkeypatch):
    """A SIGTERM during training (sent here at the first step): the epoch ends at the next step as a time limit
    would, checkpointed, no test evaluation; SIGTERM's handler is given back, and the run resumes from there."""
    import os
    import signal

    from ecgcore.models._run import Run

    prev = signal.getsignal(signal.SIGTERM)
    sent = []
    due = Run.due

    def due_and_term(self):
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGTERM)
        return due(self)

    monkeypatch.setattr(Run, "due", due_and_term)
    m = train(tiny_segments, tmp_path / "r", _cfg(max_steps=1000), progress=False, evaluate_after=True)
    t = m["training"]
    assert sent and t["steps"] == 2 and t["stop_reason"] == "time_limit" and not t["finished"]
    assert "test" not in m and signal.getsignal(signal.SIGTERM) is prev
    assert json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())["step"] == 2
    monkeypatch.setattr(Run, "due", due)
    again = train(tiny_segments, tmp_path / "r", _cfg(max_steps=4), progress=False, evaluate_after=False)
    assert again["training"]["steps"] == 4 and again["training"]["stop_reason"] == "max_steps"


def test_qrs_width_prior_is_fitted_on_training_windows_exported_as_a_second_input_and_fed_by_infer(
        tiny_segments, mitdb_dir, tmp_path):
    """``prior="qrs-width"``: the logistic regression of the class on the standardised median QRS width is fitted on
    the training windows (class weights as the loss) and fixed into the model; its log-odds are added to the Abnormal
    logit (0 for a window without a width). The export takes ``qrs_width`` as a second input and matches PyTorch;
    the card carries the coefficients, which ``load_onnx_weights`` reads back; ``ecgcore infer`` measures the width
    on each window it classifies and feeds it."""
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression

    from ecgcore.dsp.qrs import qrs_width
    from ecgcore.infer import Scorer
    from ecgcore.io import read_record
    from ecgcore.models.attention import load_run
    from ecgcore.models.attention._export import load_onnx_weights
    from ecgcore.models.attention.model import fit_width_prior

    assert "prior_coef" not in AttentionECGModel(AttentionConfig()).state_dict()  # the seed's model: no buffer
    with pytest.raises(ValueError, match="prior"):
        AttentionConfig(prior="width")
    # the fit against scikit-learn's unpenalised weighted logistic regression
    rng = np.random.default_rng(0)
    w = np.r_[rng.normal(60, 10, 300), rng.normal(110, 15, 60), np.nan]
    y = np.r_[np.zeros(300, int), np.ones(60, int), 1]
    cw = np.array([0.6, 3.0])
    a, b, mu, sd = fit_width_prior(w, y, cw)
    ok = np.isfinite(w)
    # the fit's L2 penalty on the slope is scikit-learn's with C = 1 / (ridge * total weight)
    ref = LogisticRegression(C=1.0 / (1e-3 * cw[y[ok]].sum()), tol=1e-10, max_iter=1000).fit(
        ((w[ok] - w[ok].mean()) / w[ok].std())[:, None], y[ok], sample_weight=cw[y[ok]])
    assert (mu, sd) == pytest.approx((w[ok].mean(), w[ok].std()))
    assert (a, b) == pytest.approx((ref.intercept_[0], ref.coef_[0, 0]), abs=1e-5)
    # widths that separate the classes: a finite slope, not a step
    sep = np.r_[np.linspace(40, 80, 50), np.linspace(100, 140, 50)]
    assert 0 < fit_width_prior(sep, np.r_[np.zeros(50, int), np.ones(50, int)])[1] < 50
    with pytest.raises(ValueError, match="add"):
        train(tiny_segments, tmp_path / "max", _cfg(prior="qrs-width", prior_combine="max"), progress=False)

    cfg = _cfg(max_steps=2, batch_size=8, prior="qrs-width", class_weight="balanced")
    run = tmp_path / "run"
    train(tiny_segments, run, cfg, progress=False)
    model, _ = load_run(run)
    tr = att_data.config_splits(tiny_segments, cfg)["train"]
    counts = np.bincount(tr.y, minlength=2)
    want = fit_width_prior(qrs_width(tr.x[:, 0], fs=360.0), tr.y, counts.sum() / (2 * counts))
    np.testing.assert_allclose(model.prior_coef.numpy(), want, rtol=1e-6)
    assert json.loads((run / "metrics.json").read_text())["prior"]["slope"] == pytest.approx(want[1], rel=1e-6)
    test = att_data.config_splits(tiny_segments, cfg)["test"].x[:6]
    xt = torch.from_numpy(test)
    widths = model.measure_width(xt)
    with torch.no_grad():
        with_prior = model(xt, need_weights=False)[0]
        without = model(xt, need_weights=False, qrs_width=torch.full((6,), float("nan")))[0]
    np.testing.assert_allclose((with_prior - without).numpy(),
                               np.stack([np.zeros(6), model.prior_logit(widths).numpy()], 1), atol=1e-5)

    out = tmp_path / "onnx"
    r = export(run, out, check_windows=4)
    assert r["parity_max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(r["onnx"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["ecg", "qrs_width"]
    card = json.loads((out / "model.json").read_text())
    prior = card["preprocessing"]["qrs_width"]["prior"]
    assert [prior[k] for k in ("intercept", "slope", "mean_ms", "sd_ms")] == pytest.approx(want, rel=1e-6)
    assert [i["name"] for i in card["inputs"]] == ["ecg", "qrs_width"]
    back = load_onnx_weights(r["onnx"], model.config)
    np.testing.assert_allclose(back.prior_coef.numpy(), model.prior_coef.numpy(), rtol=1e-6)

    # ecgcore infer measures each window as training does: record 100's first windows equal the dataset's (the
    # segments recipe), and so do their widths, taken from the card's settings on one side and the model's on the other
    scorer = Scorer(out, threads=1, quality=False)
    full = scorer.prepare(read_record(mitdb_dir / "100"))
    with np.load(tiny_segments / "100.npz") as z:
        ds = z["segments"][:, None, :]
    np.testing.assert_array_equal(np.asarray(full.inputs[0])[:len(ds)], ds)
    np.testing.assert_allclose(full.inputs["qrs_width"][:len(ds)],
                               model.measure_width(torch.from_numpy(ds)).numpy(), atol=1e-4)
    # and feeds it by name: the first two minutes (23 windows) scored against PyTorch
    rec = read_record(mitdb_dir / "100", sampto=120 * 360)
    prep = scorer.prepare(rec)
    x = np.asarray(prep.inputs[0])
    pred = scorer.predict_record(rec)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x), need_weights=False)[0], 1).numpy()
    np.testing.assert_allclose(pred.probabilities, p, atol=2e-3)  # int8 fc1


def test_width_prior_attached_to_a_trained_network_is_an_or_and_the_tool_ships_it(tiny_segments, tmp_path):
    """``attach_width_prior`` (``prior_combine="max"``) on a trained seed-form network: P(Abnormal) is the larger of
    the network's and the prior's, and at the card's threshold the prior alone says Abnormal exactly when the median
    QRS width reaches the threshold chosen on the training windows (max F1 of the width alone).
    ``tools/segments_width_prior.py`` does the same from an exported model folder: its graph takes ``qrs_width``,
    gives the original network's output where the width is NaN, and its card records the prior."""
    import onnxruntime as ort

    from ecgcore.dsp.qrs import qrs_width
    from ecgcore.models.attention import load_run
    from ecgcore.models.attention.baseline import _best_threshold
    from ecgcore.models.attention.model import attach_width_prior

    cfg = _cfg(max_steps=2, batch_size=8, class_weight="balanced")
    run = tmp_path / "run"
    train(tiny_segments, run, cfg, progress=False)
    model, _ = load_run(run)
    tr = att_data.config_splits(tiny_segments, cfg)["train"]
    x = torch.from_numpy(tr.x)
    with torch.no_grad():
        p_net = torch.softmax(model(x, need_weights=False)[0], 1)[:, 1].numpy()
    thr = 0.7
    info = attach_width_prior(model, tr.x, tr.y, thr)
    w = qrs_width(tr.x[:, 0], fs=360.0)
    # T: the max-F1 threshold of the width alone, rounded up to a measurable width (medians of whole samples: steps
    # of 500 / 360 ms)
    best = _best_threshold(np.nan_to_num(w, nan=0.0), tr.y)
    assert info["threshold_ms"] - 500 / 360 < best <= info["threshold_ms"] + 1e-9
    assert np.allclose(np.nan_to_num(w) * 0.72, np.round(np.nan_to_num(w) * 0.72))  # widths: multiples of 500/360 ms
    assert ((np.nan_to_num(w) >= best) == (np.nan_to_num(w) >= info["threshold_ms"] - 1e-9)).all()
    with torch.no_grad():
        p = torch.softmax(model(x, need_weights=False)[0], 1)[:, 1].numpy()
        p_prior = torch.sigmoid(model.prior_logit(torch.from_numpy(w.astype(np.float32)))).numpy()
    np.testing.assert_allclose(p, np.maximum(p_net, np.where(np.isnan(w), 0.0, p_prior)), atol=1e-6)
    np.testing.assert_array_equal(p_prior >= thr, np.nan_to_num(w) >= info["threshold_ms"] - 1e-9)
    with pytest.raises(ValueError, match="already"):
        attach_width_prior(model, tr.x, tr.y, thr)

    src = tmp_path / "v1"
    export(run, src, check_windows=4)
    out = tmp_path / "v2"
    r = subprocess.run([sys.executable, str(REPO / "tools" / "segments_width_prior.py"), str(src), str(tiny_segments),
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    card = json.loads((out / "model.json").read_text())
    prior = card["preprocessing"]["qrs_width"]["prior"]
    dec = card["preprocessing"]["decision"]["threshold"]
    assert prior["at_probability"] == dec and card["config"]["prior_combine"] == "max" and card["version"] == "2"
    assert "test" in card["metrics"]["network alone (version 1, the same weights without the width prior)"]
    assert card["headline"] == {} and card["warnings"][0].startswith("not scored yet")
    test = att_data.config_splits(tiny_segments, cfg)["test"].x[:5]
    old = ort.InferenceSession(str(src / "model.onnx"), providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    nan = np.full(len(test), np.nan, np.float32)
    np.testing.assert_allclose(new.run(None, {"ecg": test, "qrs_width": nan})[1], old.run(None, {"ecg": test})[1],
                               atol=1e-5)
    wide = np.full(len(test), 400.0, np.float32)  # far beyond the threshold: the prior says Abnormal
    assert (new.run(None, {"ecg": test, "qrs_width": wide})[1][:, 1] >= dec).all()


def test_exclude_records_leaves_ds1_records_out_of_training_only(tiny_segments):
    """``exclude_records``: the named DS1 records leave the training (and validation) split; the test split is
    untouched; DS2 names, a record both excluded and validating, and the leaky protocol are refused."""
    base = att_data.config_splits(tiny_segments, _cfg(val_records=0))
    cut = att_data.config_splits(tiny_segments, _cfg(val_records=0, exclude_records=["108"]))
    assert "108" in set(base["train"].record) and "108" not in set(cut["train"].record)
    assert len(cut["train"]) == len(base["train"]) - int((base["train"].record == "108").sum())
    np.testing.assert_array_equal(cut["test"].x, base["test"].x)
    with pytest.raises(ValueError, match="outside DS1"):
        att_data.config_splits(tiny_segments, _cfg(val_records=0, exclude_records=["100"]))
    with pytest.raises(ValueError, match="both"):
        _cfg(val_names=["108"], exclude_records=["108"])
    with pytest.raises(ValueError, match="inter-patient"):
        _cfg(protocol="leaky", exclude_records=["108"])
