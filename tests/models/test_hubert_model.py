"""HuBERT-ECG (ecgcore.models.hubert): architecture, input contract, metrics, and the real pretrain -> fine-tune ->
test -> export loop on PTB-XL records (a TINY model for a few steps, so the default run stays short)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ecgcore.models.hubert import inputs as I  # noqa: E402
from ecgcore.models.hubert import metrics as M  # noqa: E402
from ecgcore.models.hubert.config import HubertConfig  # noqa: E402

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ptbxl(data_dir) -> Path:
    d = data_dir / "ptbxl" / "records500"
    if not d.is_dir():
        pytest.fail(f"PTB-XL subset not found at {d}")
    return d


# ------------------------------------------------------------------------------------------------ architecture

@pytest.mark.parametrize("fs, n", [(100, 6000), (500, 30000), (50, 3000)])
def test_conv_encoders_give_93_tokens(fs, n):
    from ecgcore.models.hubert.model import FeatureEncoder

    cfg = HubertConfig.from_size("tiny", input_fs=fs)
    assert cfg.input_samples == n and cfg.n_tokens() == 93
    out = FeatureEncoder(cfg)(torch.zeros(2, n))
    assert out.shape == (2, cfg.conv_dim, 93)


def test_sizes_match_spec_parameter_counts():
    from ecgcore.models.hubert.model import HubertForPretraining, count_parameters

    expected = {"small": 30.3e6, "base": 92.9e6, "large": 189e6}  # SPEC 5.4 (HF cards, with the pretraining heads)
    with torch.device("meta"):
        for size, n in expected.items():
            got = count_parameters(HubertForPretraining(HubertConfig.from_size(size)))
            assert abs(got - n) / n < 0.01, (size, got)


def test_hf_parameter_names_and_weight_norm_rename(tmp_path):
    from ecgcore.models.hubert.model import HubertForPretraining, load_pretrained

    cfg = HubertConfig.from_size("tiny", vocab_sizes=[7])
    torch.manual_seed(0)
    ref = HubertForPretraining(cfg).eval()
    keys = set(ref.state_dict())
    for k in ["hubert_ecg.feature_extractor.conv_layers.0.conv.weight",
              "hubert_ecg.feature_extractor.conv_layers.0.layer_norm.weight",
              "hubert_ecg.feature_projection.layer_norm.weight", "hubert_ecg.feature_projection.projection.weight",
              "hubert_ecg.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
              "hubert_ecg.encoder.layer_norm.bias", "hubert_ecg.encoder.layers.1.attention.out_proj.weight",
              "hubert_ecg.encoder.layers.0.feed_forward.intermediate_dense.weight",
              "hubert_ecg.encoder.layers.0.final_layer_norm.weight", "hubert_ecg.masked_spec_embed",
              "final_proj.0.weight", "label_embedding.0.weight"]:
        assert k in keys, k
    # A Hugging Face folder: bare HubertModel keys and the old weight_g / weight_v names (HuBERT-ECG issue #3).
    hf = {}
    for k, v in ref.state_dict().items():
        k = k.replace("hubert_ecg.", "").replace("parametrizations.weight.original0", "weight_g") \
             .replace("parametrizations.weight.original1", "weight_v")
        hf[k] = v
    folder = tmp_path / "hf"
    folder.mkdir()
    torch.save(hf, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({
        "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size, "classifier_proj_size": cfg.proj_size,
        "conv_dim": [cfg.conv_dim] * 5, "conv_kernel": [10, 3, 3, 2, 2], "conv_stride": [4, 2, 2, 2, 2],
        "vocab_sizes": [7], "layerdrop": 0.0}))
    got = load_pretrained(folder).eval()
    assert got.hubert_ecg.config.input_fs == 100
    x = torch.randn(2, 6000)
    with torch.no_grad():
        np.testing.assert_allclose(got(x)[0].numpy(), ref(x)[0].numpy(), atol=1e-5)
    # An encoder with missing weights is refused with the key named, not silently half-loaded.
    del hf["encoder.layer_norm.weight"]
    torch.save(hf, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="encoder.layer_norm.weight"):
        load_pretrained(folder)


def test_mask_and_layer_outputs():
    from ecgcore.models.hubert.model import HubertECG, compute_mask

    g = torch.Generator().manual_seed(0)
    m = compute_mask(64, 93, prob=0.33, length=1, min_masks=2, generator=g)
    counts = m.sum(1).numpy()
    assert counts.min() >= 30 and counts.max() <= 31  # int(0.33 * 93 + U[0, 1)) = 30 or 31
    assert compute_mask(4, 93, prob=0.0, min_masks=2, generator=g).sum(1).tolist() == [2, 2, 2, 2]
    enc = HubertECG(HubertConfig.from_size("tiny")).eval()
    x = torch.randn(2, 6000)
    with torch.no_grad():
        full = enc(x)
        assert enc(x, output_layer=2).equal(full)  # layer num_layers is the last hidden state
        h0, h1 = enc(x, output_layer=0), enc(x, output_layer=1)
        assert h0.shape == h1.shape == (2, 93, 64) and not torch.allclose(h0, h1)
        mk = torch.zeros(2, 93, dtype=torch.bool)
        mk[:, 10] = True
        assert not torch.allclose(enc(x, mask=mk), full)


# ------------------------------------------------------------------------------------------------ inputs

def test_input_contract_matches_scipy_on_a_real_record(ptbxl):
    import scipy.signal

    from ecgcore.io import read_record

    rec = read_record(ptbxl / "00000" / "00001_hr", annotator=None)
    x = I.input_from_record(ptbxl / "00000" / "00001_hr")
    assert x.shape == (6000,) and x.dtype == np.float32
    # Same chain with SciPy: Butterworth 0.05-47 Hz (zero phase), min-max [-1, 1], first 5 s, flatten, decimate(5).
    sos = scipy.signal.butter(4, (0.05, 47.0), "bandpass", fs=rec.fs, output="sos")
    s = scipy.signal.sosfiltfilt(sos, rec.signal.T, axis=1)
    s = 2 * (s - s.min(1, keepdims=True)) / (np.ptp(s, 1, keepdims=True) + 1e-8) - 1
    ref = scipy.signal.decimate(s[:, :2500].reshape(-1), 5)
    np.testing.assert_allclose(x, ref, atol=1e-5)
    ten = I.input_from_record(ptbxl / "00000" / "00001_hr", seconds=10.0)
    assert ten.shape == (12000,)
    crops = I.random_crops(ten[None], 3, rng=0)
    assert crops.shape == (3, 1, 6000)


def test_fewer_leads_are_zero_filled_and_bad_input_is_named(mitdb_dir, tmp_path):
    x = I.input_from_record(mitdb_dir / "100")  # 2 leads at 360 Hz, resampled to 500 Hz
    lead = x.reshape(12, 500)
    assert np.abs(lead[:2]).max() > 0.1 and np.abs(lead[3:]).max() < 1e-3
    short = tmp_path / "short.npy"
    np.save(short, np.random.default_rng(0).normal(size=(12, 1000)))
    with pytest.raises(ValueError, match="short.npy.*too short|too short"):
        I.input_from_record(short)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        I.input_from_record(tmp_path / "missing.npy")


# ecgcore.datasets imports wfdb, whose import-time pandas call warns under pandas 3 (third-party noise).
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")
def test_mitdb_windows_labels(mitdb_dir, tmp_path):
    out = tmp_path / "win"
    _cli(["train", "hubert", "mitdb-windows", mitdb_dir, out, "--records", "100,208", "--per-record", "3"])
    rows = (out / "labels.csv").read_text().splitlines()
    assert rows[0] == "record,S,V,F,RHY,split" and len(rows) == 7
    x = np.load(out / rows[1].split(",")[0])
    assert x.shape == (2, 5000) and x.dtype == np.float32
    by = {r.split(",")[0][:3]: r.split(",") for r in rows[1:]}
    assert by["100"][-1] == "test" and by["208"][-1] == "train"  # DS2 / DS1
    # Record 208 is full of PVCs and fusion beats: its windows must carry V.
    assert all(r.split(",")[2] == "1" for r in rows[1:] if r.startswith("208"))
    assert I.input_from_record(out / rows[1].split(",")[0]).shape == (6000,)


def test_inputs_module_imports_no_framework():
    code = ("import sys, ecgcore.models.hubert.inputs as m; "
            "bad = [f for f in ('torch', 'tensorflow', 'mlx') if f in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": _PKG_PARENT})


def test_ptbxl_labels_and_folds(ptbxl):
    items, Y, folds, classes = I.ptbxl_table(ptbxl)
    assert classes == ["NORM", "MI", "STTC", "CD", "HYP"]
    # MANIFEST: NORM 297, STTC 96, CD 78, MI 73, HYP 40 among the 500 ECGs.
    assert Y.sum(0).astype(int).tolist() == [297, 73, 96, 78, 40]
    sp = I.split_of(items, folds=folds)
    assert set(sp) == {"train", "val", "test"} and (sp == "test").sum() == (folds == 10).sum()


# ------------------------------------------------------------------------------------------------ metrics

def test_metrics_match_sklearn_and_ci_brackets_the_point():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    Y = (rng.random((80, 3)) < [0.5, 0.2, 0.1]).astype(float)
    P = np.clip(Y * 0.3 + rng.random((80, 3)) * 0.7, 0, 1).round(2)  # ties on purpose
    for c in range(3):
        assert M.auroc(Y[:, c], P[:, c]) == pytest.approx(roc_auc_score(Y[:, c], P[:, c]), abs=1e-12)
        assert M.auprc(Y[:, c], P[:, c]) == pytest.approx(average_precision_score(Y[:, c], P[:, c]), abs=1e-12)
    rep = M.multilabel_report(Y, P, ["a", "b", "c"], n_boot=200, seed=42)
    for c in "abc":
        v, (lo, hi) = rep["per_label"][c]["auroc"]["value"], rep["per_label"][c]["auroc"]["ci95"]
        assert lo < v < hi and hi - lo < 0.5
    t = M.threshold_metrics([1, 1, 0, 0], [0.9, 0.2, 0.6, 0.1])
    assert t == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "specificity": 0.5}
    assert np.isnan(M.auroc([1, 1], [0.2, 0.3]))


def test_class_weights_are_in_class_order():
    from ecgcore.models.hubert._finetune import class_weights

    Y = np.eye(3)[[0, 1, 1, 1, 2, 2]]  # counts 1, 3, 2: frequency order (1, 2, 0) differs from index order
    np.testing.assert_allclose(class_weights(Y, "multi_class"), [3 / 1, 3 / 3, 3 / 2])
    np.testing.assert_allclose(class_weights(Y, "multi_label"), [5 / 1, 3 / 3, 4 / 2])


# ------------------------------------------------------------------------------------------------ the loop

def _cli(args):
    from click.testing import CliRunner

    from ecgcore.cli import main

    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def test_pretrain_finetune_evaluate_export_on_real_records(ptbxl, tmp_path):
    """TINY for a few steps on real PTB-XL features and labels: the loop runs, resumes, and exports with parity."""
    import onnxruntime as ort

    from ecgcore.pipelines.engine import preprocess

    items, Y, folds, classes = I.ptbxl_table(ptbxl)
    pick = [i for s in (8, 9, 10) for i in np.flatnonzero(folds == s)[:6]] + list(np.flatnonzero(folds <= 7)[:18])
    recs = [items[i] for i in pick]
    feats, labels = tmp_path / "feats", tmp_path / "labels"
    preprocess("hubert-features", ptbxl, feats, records=recs, workers=1, progress=False)
    km = tmp_path / "km.npz"
    out = json.loads(_cli(["train", "hubert", "cluster", feats, km, "--k", "8", "--data", ptbxl, "--n-init", "1"]))
    assert out["records"] == 24 and out["rows"] == 24 * 93  # folds 1-8 only
    preprocess("hubert-labels", feats, labels, options={"model": str(km)}, workers=1, progress=False)

    run = tmp_path / "pt"
    _cli(["train", "hubert", "pretrain", ptbxl, run, "--labels", labels, "--labels", labels, "--steps", "2",
          "--batch-size", "4", "--lr", "1e-3", "--val-interval", "1", "--quiet"])
    _cli(["train", "hubert", "pretrain", ptbxl, run, "--labels", labels, "--labels", labels, "--steps", "3",
          "--batch-size", "4", "--lr", "1e-3", "--val-interval", "1", "--resume", "--quiet"])
    hist = (run / "history.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in hist[1:]] == ["1", "2", "3"]
    ck = torch.load(run / "checkpoint" / "last.pt", weights_only=False)
    assert ck["global_step"] == 3 and ck["pretraining_vocab_sizes"] == [8, 8]
    assert (run / "learning_curve.png").stat().st_size > 1000
    status = json.loads((run / "run.json").read_text())
    assert status["stop_reason"] == "steps" and status["finished"] and status["iteration"] == 1

    # Iteration 2: latent features of layer 1 -> ecgcore k-means -> labels -> new heads on the same encoder.
    latent, labels2, km2 = tmp_path / "latent", tmp_path / "labels2", tmp_path / "km2.npz"
    from ecgcore.models.hubert import HubertTrainConfig, pretrain
    from ecgcore.models.hubert._pretrain import cluster_features

    sub = tmp_path / "raw"  # only the picked records, so the dump does not read all 500
    for r in recs:
        (sub / r).parent.mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            (sub / (r + ext)).symlink_to(ptbxl / (r + ext))
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        (tmp_path / name).symlink_to(ptbxl.parent / name)
    _cli(["train", "hubert", "dump", run / "best.pt", sub, latent, "--layer", "1", "--quiet"])
    h = np.load(latent / (recs[0] + ".npy"))
    assert h.shape == (93, 64) and h.dtype == np.float32
    cluster_features(latent, km2, k=5, data_dir=sub, n_init=1)
    preprocess("hubert-labels", latent, labels2, options={"model": str(km2)}, workers=1, progress=False)
    s2 = pretrain(sub, tmp_path / "pt2", HubertTrainConfig(stage="pretrain", labels_dirs=[labels2],
                                                           init=str(run / "best.pt"), max_steps=2, batch_size=4,
                                                           lr=1e-3, val_every=2), progress=False, log=lambda *a: None)
    assert s2["iteration"] == 2 and s2["vocab_sizes"] == [5]

    # Fine-tune on the real superclass labels of these records (CSV task), evaluate, export.
    csv = tmp_path / "labels.csv"
    sp = I.split_of(recs, folds=folds[pick])
    csv.write_text("record," + ",".join(classes) + ",split\n" + "".join(
        f"{r}," + ",".join(str(int(v)) for v in Y[i]) + f",{s}\n" for r, i, s in zip(recs, pick, sp)))
    ft = tmp_path / "ft"
    _cli(["train", "hubert", "finetune", ptbxl, ft, "--init", run / "best.pt", "--labels", csv, "--steps", "3",
          "--batch-size", "4", "--lr", "1e-3", "--val-interval", "1", "--patience", "0", "--random-crop", "--quiet"])
    ck = torch.load(ft / "best.pt", weights_only=False)
    assert ck["classes"] == classes and ck["task_type"] == "multi_label"
    # Pretrained encoder weights were loaded (conv frozen by default, so identical to the pretraining checkpoint).
    pre = torch.load(run / "best.pt", weights_only=False)["model_state_dict"]
    k = "hubert_ecg.feature_extractor.conv_layers.1.conv.weight"
    assert torch.equal(ck["model_state_dict"][k], pre[k])
    text = _cli(["evaluate", "hubert", ft, ptbxl, "--bootstrap", "50", "--quiet"])
    assert "macro" in text
    rep = json.loads((ft / "metrics.json").read_text())
    assert rep["n"] == 6 and set(rep["macro"]) == set(M.METRICS)
    _cli(["evaluate", "hubert", ft, ptbxl, "--bootstrap", "0", "--n-augs", "2", "--tta-aggregation", "max", "--quiet"])
    assert (ft / "metrics_tta2max.json").is_file()
    assert (ft / "performance.csv").read_text().startswith("metric,NORM,MI,STTC,CD,HYP,macro")

    out = json.loads(_cli(["export", "hubert", ft, "--out", tmp_path / "export"]))
    assert out["max_abs_diff"] < 1e-4 and out["batches"][-2:] == [1, 7]
    sess = ort.InferenceSession(out["onnx"], providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] != 1  # symbolic batch axis
    assert b"pkg.torch.onnx.stack_trace" not in Path(out["onnx"]).read_bytes()  # no exporter paths shipped
    from ecgcore.export import read_card

    card = read_card(tmp_path / "export")
    assert card.classes == classes and card.preprocessing["kind"] == "hubert-features"
    assert card.metrics["macro"]["auroc"]["value"] == rep["macro"]["auroc"]["value"]
    x = I.input_from_record(ptbxl / recs[0], preprocessing=card.preprocessing)[None]
    model = __import__("ecgcore.models.hubert._finetune", fromlist=["x"]).load_classifier(ft)[0]
    with torch.no_grad():
        np.testing.assert_allclose(sess.run(None, {"ecg": x})[0], torch.sigmoid(model(torch.from_numpy(x))).numpy(),
                                   atol=1e-4)


def test_clear_errors(ptbxl, tmp_path):
    from ecgcore.models.hubert import HubertTrainConfig, pretrain
    from ecgcore.models.hubert._finetune import load_classifier

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        pretrain(ptbxl, tmp_path / "run", HubertTrainConfig(stage="pretrain", labels_dirs=[tmp_path / "empty"],
                                                            max_steps=1), progress=False)
    with pytest.raises(ValueError, match="stage='pretrain'"):
        pretrain(ptbxl, tmp_path / "run", HubertTrainConfig(stage="finetune"), progress=False)
    with pytest.raises(FileNotFoundError, match="best.pt"):
        load_classifier(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown size"):
        HubertConfig.from_size("huge")


# ------------------------------------------------------------------------------------------------ bundled model

def test_bundled_ptbxl_model_reproduces_its_card(ptbxl):
    """The shipped ONNX + card: inputs rebuilt from raw WFDB records with the card's preprocessing give the
    test-fold macro-AUROC the card reports."""
    import onnxruntime as ort

    from ecgcore.export import read_card, resolve_model

    onnx_path, card = resolve_model("hubert-ptbxl-super")
    assert card.classes == list(I.PTBXL_SUPERCLASSES) and card.inputs[0]["shape"] == [None, 6000]
    assert onnx_path.stat().st_size < 8e6
    items, Y, folds, _ = I.ptbxl_table(ptbxl)
    test = np.flatnonzero(folds == 10)
    X = np.stack([I.input_from_record(ptbxl / items[i], preprocessing=card.preprocessing) for i in test])
    P = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"ecg": X})[0]
    assert P.shape == (len(test), 5) and ((P >= 0) & (P <= 1)).all()
    macro = M.nanmean([M.auroc(Y[test, c], P[:, c]) for c in range(5)])
    assert macro == pytest.approx(card.metrics["macro"]["auroc"]["value"], abs=1e-4)
    assert read_card(onnx_path.parent).metrics["n"] == len(test)
