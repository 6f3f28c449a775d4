"""CNN-Conformer (SPEC §4.5-4.6): the networks, the metrics, a tiny real training + evaluation + ONNX export."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ecgcore.models.conformer.config import VARIANTS, ConformerConfig
from ecgcore.models.conformer.metrics import aami_metrics, confusion

_PKG_PARENT = __import__("os").environ["ECGCORE_PKG_PARENT"]  # set by tests/conftest.py


# Keras/TensorFlow emit DeprecationWarnings from their own internals (numpy, protobuf); nothing else is ignored.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[2]


# --- configuration and metrics (no TensorFlow) -----------------------------------------------------------------

def test_config_defaults_are_the_seed_best():
    cfg = ConformerConfig()
    assert (cfg.embed_dim, cfg.num_heads, cfg.ff_dim, cfg.kernel_size, cfg.dropout, cfg.num_blocks) == \
        (128, 8, 512, 11, 0.2, 1)
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.weight_decay) == (1e-5, 128, 20, 0.004)
    a = ConformerConfig.for_variant("attention-only")
    assert (a.embed_dim, a.num_heads, a.ff_dim, a.dropout, a.num_blocks) == (64, 8, 256, 0.0, 2)
    assert ConformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown variant"):
        ConformerConfig(variant="transformer")
    with pytest.raises(ValueError, match="unknown ConformerConfig field"):
        ConformerConfig.from_dict({"embed": 3})


def test_metrics_agree_with_sklearn():
    from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    y = rng.choice(5, 3000, p=[0.7, 0.1, 0.1, 0.07, 0.03])
    pred = np.where(rng.random(3000) < 0.7, y, rng.integers(0, 5, 3000))
    m = aami_metrics(confusion(y, pred))
    labels = list(range(5))
    for i, c in enumerate("NSVFQ"):
        assert m["per_class"][c]["Se"] == pytest.approx(recall_score(y, pred, labels=[i], average="macro"))
        assert m["per_class"][c]["+P"] == pytest.approx(precision_score(y, pred, labels=[i], average="macro"))
    assert m["macro_f1_NSVF"] == pytest.approx(f1_score(y, pred, labels=labels[:4], average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    pc = m["per_class"]
    assert m["jk_index"] == pytest.approx(m["kappa"] / 2 + (pc["S"]["Se"] + pc["S"]["+P"] + pc["V"]["Se"]
                                                            + pc["V"]["+P"]) / 8)
    # a stratified subset with N reweighted estimates the full confusion matrix: exact here by construction
    keep = (y != 0) | (np.arange(len(y)) % 4 == 0)
    w = np.where(y[keep] == 0, (y == 0).sum() / (keep & (y == 0)).sum(), 1.0)
    cm_sub = confusion(y[keep], pred[keep], w)
    assert cm_sub[1:].sum() == pytest.approx(confusion(y, pred)[1:].sum())
    assert cm_sub[0].sum() == pytest.approx((y == 0).sum())


# --- networks ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_build_and_give_probabilities(variant):
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import build_model

    cfg = ConformerConfig.for_variant(variant, **({"embed_dim": 32, "ff_dim": 64} if variant != "cnn-lstm"
                                                 else {"embed_dim": 32, "lstm_units": 16}))
    model = build_model(cfg)
    x = np.random.default_rng(1).normal(size=(2, 3, 32, 187, 1)).astype(np.float32)
    p = np.asarray(model(x, training=False))
    assert p.shape == (2, 5)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_conformer_follows_the_seed_architecture():
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import build_model

    model = build_model(ConformerConfig())
    cnn = model.get_layer("beat_cnn_td").layer
    assert cnn.get_layer("relu3").output.shape[1:] == (8, 46, 128)  # 32x187 -> 16x93 -> 8x46
    assert all(not cnn.get_layer(f"conv{i}").use_bias for i in (1, 2, 3))
    mha = model.get_layer("block1_mhsa_mha")
    assert mha.num_heads == 8 and mha.key_dim == 128  # key_dim = embed_dim per head, as the seed
    assert model.get_layer("block1_conv_dw").kernel_size == (11,)
    assert model.get_layer("block1_ff1_dense1").units == 512
    assert model.get_layer("position_embedding").embeddings.shape == (3, 128)
    rr_model = build_model(ConformerConfig(rr_features=True, embed_dim=32, ff_dim=64))
    assert [i.shape[1:] for i in rr_model.inputs] == [(3, 32, 187, 1), (3, 4)]


# --- a tiny real training, evaluation and export ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(mitdb_dir, tmp_path_factory):
    from ecgcore.pipelines.engine import preprocess

    out = tmp_path_factory.mktemp("conformer_tfrecords")
    s = preprocess("tfrecords", mitdb_dir, out, records=["232", "231", "233"], workers=1, progress=False)
    assert not s.failed
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, mitdb_dir, tmp_path_factory):
    """1 epoch of 2 steps on two records with RR inputs, through the CLI, then the test record scored."""
    pytest.importorskip("tensorflow")
    from click.testing import CliRunner

    from ecgcore.cli import main

    run = tmp_path_factory.mktemp("conformer_run") / "run"
    res = CliRunner().invoke(main, [
        "train", "conformer", str(tiny_dataset), str(run), "--protocol", "inter-patient", "--rr",
        "--records-dir", str(mitdb_dir), "--train-records", "232,233", "--test-records", "231",
        "--set", "embed_dim=32", "--set", "ff_dim=64", "--set", "batch_size=8", "--set", "learning_rate=1e-3",
        "--epochs", "1", "--steps-per-epoch", "2", "--max-n-per-epoch", "100", "--eval-n-fraction", "0.05",
        "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return run


def test_normalisation_equals_the_seed_standard_scaler(tiny_dataset, mitdb_dir, tmp_path):
    """Per-column statistics over every beat once == StandardScaler.partial_fit over the record's h5 beats."""
    from sklearn.preprocessing import StandardScaler

    from ecgcore.models.conformer.data import dataset_index, normalisation_stats, rr_table
    from ecgcore.pipelines.recipes.beats_scalograms import record_scalograms
    from ecgcore.pipelines.recipes.tfrecords import TFRecords

    index = dataset_index(tiny_dataset)
    mean, scale = normalisation_stats(index, ["231", "233"], cache_dir=tmp_path)
    again = normalisation_stats(index, ["231", "233"], cache_dir=tmp_path)  # from the per-record cache
    np.testing.assert_array_equal(mean, again[0])
    sc = StandardScaler()
    for rec in ("231", "233"):
        scal = record_scalograms(mitdb_dir, rec, TFRecords().default_options())[2]
        for i in range(0, len(scal), 128):  # the seed's chunks of 128 beats
            sc.partial_fit(scal[i:i + 128].reshape(-1, 187))
    np.testing.assert_allclose(mean, sc.mean_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(scale, sc.scale_, rtol=1e-5)
    rr = rr_table(index, ["231"], mitdb_dir)
    assert rr.shape == (len(index.labels["231"]), 3, 4) and np.isfinite(rr).all()
    np.testing.assert_array_equal(rr[1:, 0], rr[:-1, 1])  # sequence i+1 starts at beat i+1


def test_training_writes_a_complete_run(tiny_run):
    meta = json.loads((tiny_run / "run.json").read_text())
    assert meta["train_records"] == ["232", "233"] and meta["test_records"] == ["231"]
    assert meta["final"]["epochs_run"] == 1 and meta["final"]["steps_per_epoch"] == 2
    assert 0 < meta["final"]["keep_prob"][0] < 1  # N thinned to ~100 sequences per epoch
    norm = json.loads((tiny_run / "norm.json").read_text())
    assert len(norm["mean"]) == len(norm["scale"]) == 187 and len(norm["rr_mean"]) == 4
    ev = tiny_run / "eval_inter-patient"
    for f in ("metrics.json", "classification_report.txt", "confusion_matrix.png", "roc.png", "pr.png",
              "raw_predictions.npz"):
        assert (ev / f).is_file(), f
    m = json.loads((ev / "metrics.json").read_text())
    assert m["weighted"] and m["backend"] == "onnxruntime" and m["onnx_parity_first_batch"] < 1e-4
    # record 231: every non-N sequence scored, N reweighted back to its full count
    assert sum(m["confusion_matrix"][0]) == pytest.approx(m["class_counts_full"][0])
    assert sum(map(sum, m["confusion_matrix"])) == pytest.approx(sum(m["class_counts_full"]))
    assert "SVEB" in (ev / "classification_report.txt").read_text()


def test_resumed_run_skips_finished_stages(tiny_run, tiny_dataset, mitdb_dir):
    from ecgcore.models.conformer import train

    final = tiny_run / "final"
    before = {f: (final / f).stat().st_mtime_ns for f in ("model.keras", "fit.json", "norm.json")}
    cfg = ConformerConfig.from_dict(json.loads((tiny_run / "run.json").read_text())["config"])
    assert (cfg.epochs, cfg.steps_per_epoch) == (1, 2)
    s = train(tiny_dataset, tiny_run, cfg, records_dir=mitdb_dir, train_records=["232", "233"],
              test_records=["231"], evaluate_after=False, progress=False)
    assert {f: (final / f).stat().st_mtime_ns for f in before} == before  # the finished fit was not redone
    assert s["final"]["epochs_run"] == 1


def test_export_parity_and_card(tiny_run, tmp_path):
    from click.testing import CliRunner

    from ecgcore.cli import main
    from ecgcore.export import read_card

    res = CliRunner().invoke(main, ["export", "conformer", str(tiny_run), "-o", str(tmp_path)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    card = read_card(tmp_path)
    par = card.training["parity"]
    assert par["max_abs_diff"] <= 1e-4 and par["n_sequences"] > 0 and par["record"] == "231"
    pre = card.preprocessing
    assert pre["kind"] == "beats-scalograms" and pre["fs"] == 360.0
    assert (pre["before"], pre["after"], pre["scales"], pre["wavelet"], pre["lead"]) == (93, 93, [1, 32], "morl", 0)
    assert pre["sequence_length"] == 3 and pre["label_of"] == "last"
    assert len(pre["normalization"]["mean"]) == len(pre["normalization"]["scale"]) == 187
    assert len(pre["rr_features"]["mean"]) == 4 and pre["rr_features"]["local_beats"] == 10
    assert card.classes == ["N", "S", "V", "F", "Q"] and [i["name"] for i in card.inputs] == ["scalograms", "rr"]


def test_distillation_targets_are_the_teachers_probabilities(tiny_run, tiny_dataset, mitdb_dir, tmp_path):
    """``teacher=`` (an exported model fitted on the same records): its probabilities on every training sequence (its
    encoder + head) equal its full graph's on those sequences (1e-5); the targets are alpha x one-hot + (1 - alpha) x
    them; validation keeps one-hot labels; a teacher normalised otherwise is refused; a run trains with it."""
    import onnxruntime as ort
    from click.testing import CliRunner

    from ecgcore.cli import main
    from ecgcore.models.conformer import train
    from ecgcore.models.conformer.chunks import (load_store, teacher_probabilities, training_batches,
                                                 validation_batches)
    from ecgcore.models.conformer.config import ConformerConfig
    from ecgcore.models.conformer.data import dataset_index

    teacher = tmp_path / "teacher"
    res = CliRunner().invoke(main, ["export", "conformer", str(tiny_run), "-o", str(teacher)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    norm = json.loads((tiny_run / "norm.json").read_text())
    store = load_store(dataset_index(tiny_dataset), ["232"], norm, records_dir=mitdb_dir, rr=True, progress=False)
    soft = teacher_probabilities(str(teacher), store, norm)
    n = len(store.labels[0])
    assert soft[0].shape == (n, 5) and soft[0].dtype == np.float32
    idx = np.arange(0, n, max(1, n // 40))
    full = ort.InferenceSession(str(teacher / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {
        "scalograms": np.stack([store.beats[0][s:s + 3] for s in idx]),
        "rr": np.stack([store.rr[0][s:s + 3] for s in idx])})[0]
    np.testing.assert_allclose(soft[0][idx], full, atol=1e-5)
    keep = np.ones(5)
    _, y, _ = next(training_batches(store, keep, chunks_per_step=6, chunk=4, soft=soft, alpha=0.0))
    assert y.shape == (6, 4, 5) and all(np.abs(soft[0] - row).max(axis=1).min() < 1e-7 for row in y.reshape(-1, 5))
    _, y1, _ = next(training_batches(store, keep, chunks_per_step=6, chunk=4, soft=soft, alpha=1.0))
    np.testing.assert_array_equal(y1.sum(-1), 1.0)
    assert set(np.unique(y1)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="normalisation differs"):
        teacher_probabilities(str(teacher), store, dict(norm, mean=[m + 1.0 for m in norm["mean"]]))
    # validation keeps the labels, one-hot for the distillation loss
    (_, yv, wv), = validation_batches(store, keep, chunks_per_step=10 ** 6, chunk=4, one_hot=5)
    (_, yi, _), = validation_batches(store, keep, chunks_per_step=10 ** 6, chunk=4)
    np.testing.assert_array_equal(yv, np.eye(5, dtype=np.float32)[yi])
    # a distillation run, fitted on the teacher's records (so with its normalisation)
    cfg = ConformerConfig(rr_features=True, chunk=4, batch_size=8, epochs=1, steps_per_epoch=2, val_records=0,
                          max_n_per_epoch=100, lr=1e-3, teacher=str(teacher), distill_alpha=0.5, embed_dim=16,
                          ff_dim=32, num_heads=2, threads=1)
    fit = train(tiny_dataset, tmp_path / "run", cfg, records_dir=mitdb_dir, train_records=["232", "233"],
                test_records=["231"], evaluate_after=False, progress=False)["final"]
    assert fit["teacher"]["model"] == str(teacher) and fit["teacher"]["alpha"] == 0.5
    assert len(fit["teacher"]["sha256"]) == 64 and fit["train_records"] == ["232", "233"]
    assert np.isfinite(fit["history"]["loss"][0]) and "accuracy" in fit["history"]
    with pytest.raises(ValueError, match="needs chunk training"):
        ConformerConfig(teacher=str(teacher))
    with pytest.raises(ValueError, match="seed protocol"):
        ConformerConfig(teacher=str(teacher), chunk=4, protocol="seed")
    # a teacher whose graphs changed is refused when the run resumes
    head = teacher / "head.onnx"
    head.write_bytes(head.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="graphs changed"):
        train(tiny_dataset, tmp_path / "run", cfg.replace(epochs=2), records_dir=mitdb_dir,
              train_records=["232", "233"], test_records=["231"], evaluate_after=False, progress=False)


def test_evaluate_cli_refuses_training_records(tiny_run):
    from click.testing import CliRunner

    from ecgcore.cli import main

    res = CliRunner().invoke(main, ["evaluate", "conformer", str(tiny_run), "--records", "232"])
    assert res.exit_code != 0 and "used for training" in res.output


def test_bad_inputs_are_named(tmp_path):
    from ecgcore.models.conformer.data import dataset_index
    from ecgcore.models.conformer import evaluate

    with pytest.raises(FileNotFoundError, match="not found"):
        dataset_index(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="manifest"):
        dataset_index(tmp_path)
    with pytest.raises(FileNotFoundError, match="run.json"):
        evaluate(tmp_path)


# --- the shipped model -------------------------------------------------------------------------------------------

BUNDLED = REPO / "python" / "ecgcore" / "data" / "models" / "beats-aami"

_NO_TF = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'torch'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import json, numpy as np, onnxruntime as ort
from ecgcore.export import resolve_model
onnx_path, card = resolve_model('beats-aami')
sess = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
feeds = {i['name']: np.zeros([2] + i['shape'][1:], np.float32) for i in card.inputs}
p = sess.run(None, feeds)[0]
assert p.shape == (2, 5) and np.allclose(p.sum(1), 1, atol=1e-5)
assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules
print('ok', card.name)
"""


def test_bundled_model_runs_without_tensorflow():
    if not (BUNDLED / "model.onnx").is_file():
        pytest.fail(f"bundled model missing: {BUNDLED}/model.onnx")
    env = {"PYTHONPATH": _PKG_PARENT, "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    out = subprocess.run([sys.executable, "-c", _NO_TF], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok beats-aami" in out.stdout


def test_bundled_model_classifies_real_beats_from_its_card(mitdb_dir):
    """onnxruntime on record-100 sequences, preprocessed from the card alone, gets most N beats right."""
    import onnxruntime as ort

    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.export import resolve_model
    from ecgcore.io import read_record
    from ecgcore.models.conformer.preprocess import sequence_inputs

    onnx_path, card = resolve_model("beats-aami")
    rec = read_record(mitdb_dir / "100")
    cls = aami_labels(rec.annotations.symbol, "conformer")
    peaks, cls = rec.annotations.sample[cls != ""], cls[cls != ""]
    feeds, last = sequence_inputs(rec.signal[:, card.preprocessing["lead"]], peaks[:300], card.preprocessing,
                                  fs=rec.fs)
    p = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    truth = cls[last]
    assert (truth == "N").mean() > 0.95
    assert (p.argmax(1)[truth == "N"] == 0).mean() > 0.8


def test_card_preprocessing_reproduces_the_training_inputs(tiny_run, tiny_dataset, mitdb_dir, tmp_path):
    """sequence_inputs(signal, peaks, card.preprocessing) == what the network saw in training (TFRecords + tf.data)."""
    pytest.importorskip("tensorflow")
    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.io import read_record
    from ecgcore.models.conformer.data import dataset_index, make_dataset, rr_table
    from ecgcore.models.conformer._export import card_preprocessing
    from ecgcore.models.conformer.preprocess import sequence_inputs

    meta = json.loads((tiny_run / "run.json").read_text())
    norm = json.loads((tiny_run / "norm.json").read_text())
    cfg = ConformerConfig.from_dict(meta["config"])
    pre = card_preprocessing(cfg, norm, meta["dataset_options"])
    rec = read_record(mitdb_dir / "231")
    cls = aami_labels(rec.annotations.symbol, "conformer")
    feeds, last = sequence_inputs(rec.signal[:, 0], rec.annotations.sample[cls != ""], pre, fs=rec.fs)
    index = dataset_index(tiny_dataset)
    ds = make_dataset(index, ["231"], mean=norm["mean"], scale=norm["scale"], batch_size=50, training=False,
                      rr=rr_table(index, ["231"], mitdb_dir), rr_mean=norm["rr_mean"], rr_scale=norm["rr_scale"])
    xb, yb = next(iter(ds))
    assert len(feeds["scalograms"]) == len(index.labels["231"])
    np.testing.assert_allclose(feeds["scalograms"][:50], xb["scalograms"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(feeds["rr"][:50], xb["rr"].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.array(["NSVFQ"[i] for i in yb.numpy()]), cls[cls != ""][last[:50]])


@pytest.mark.slow
def test_hyperband_writes_its_results_table(tiny_dataset, tmp_path):
    """A real (tiny) Hyperband run over the seed space on fold 1 of three records."""
    pytest.importorskip("keras_tuner")
    from ecgcore.models.conformer.tune import tune

    cfg = ConformerConfig(batch_size=8, lr=1e-3, max_n_per_epoch=50)
    r = tune(tiny_dataset, tmp_path, config=cfg, records=["231", "232", "233"], max_epochs=2, factor=3,
             steps_per_epoch=1, val_fraction=0.02, progress=False)
    assert r["trials"] and (tmp_path / "tuning_results.csv").is_file()
    assert set(r["best_hyperparameters"]) >= {"embed_dim", "num_heads", "ff_multiplier", "kernel_size", "dropout",
                                              "num_blocks"}


def test_inter_patient_validation_records(tiny_dataset, mitdb_dir, tmp_path):
    """val_records holds out training records (never a test record) that validate every epoch."""
    from ecgcore.models.conformer import train

    cfg = ConformerConfig(embed_dim=16, ff_dim=32, num_heads=2, batch_size=8, epochs=2, steps_per_epoch=1,
                          val_records=1, val_fraction=0.2, patience=5, threads=1)
    s = train(tiny_dataset, tmp_path / "run", cfg, train_records=["232", "233"], test_records=["231"],
              evaluate_after=False, progress=False)
    assert len(s["val_records"]) == 1 and s["val_records"][0] in ("232", "233")
    assert s["final"]["train_records"] == sorted({"232", "233"} - set(s["val_records"]))
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert "val_loss" in rows[0] and len(rows) == 3
    with pytest.raises(ValueError, match="leaves no training record"):
        train(tiny_dataset, tmp_path / "run2", cfg.replace(val_records=2), train_records=["232", "233"],
              test_records=["231"], evaluate_after=False, progress=False)


@pytest.mark.parametrize("rr_set", ["v3", "v5"])
def test_rr_morph_v3_inputs_are_the_same_in_training_and_at_inference(tiny_dataset, mitdb_dir, rr_set):
    """``rr_set="v3"`` (and v5, its variant) needs the signal: the training table (``rr_table``: reference beats of the WFDB record, read
    again) and the card path (``sequence_inputs`` on the lead the caller passes) give the same 14 columns for every
    sequence of record 231, and the card names the function and all 14 features."""
    from ecgcore.datasets.mitdb import aami_labels
    from ecgcore.io import read_record
    from ecgcore.models.conformer._export import card_preprocessing
    from ecgcore.models.conformer.config import RR_SETS
    from ecgcore.models.conformer.data import dataset_index, rr_table
    from ecgcore.models.conformer.preprocess import sequence_inputs

    index = dataset_index(tiny_dataset)
    cfg = ConformerConfig(rr_features=True, rr_set=rr_set)
    width = len(RR_SETS[rr_set][1])
    norm = {"mean": [0.0] * 187, "scale": [1.0] * 187, "rr_mean": [0.0] * width, "rr_scale": [1.0] * width}
    pre = card_preprocessing(cfg, norm, index.options)
    assert pre["rr_features"]["function"] == f"rr-morph-{rr_set}" and len(pre["rr_features"]["names"]) == width == 14
    rec = read_record(mitdb_dir / "231")
    cls = aami_labels(rec.annotations.symbol, "conformer")
    feeds, _ = sequence_inputs(rec.signal[:, 0], rec.annotations.sample[cls != ""], pre, fs=rec.fs)
    table = rr_table(index, ["231"], mitdb_dir, rr_set)
    assert table.shape == feeds["rr"].shape == (len(index.labels["231"]), 3, 14)
    np.testing.assert_allclose(feeds["rr"], table, rtol=1e-5, atol=1e-5)
