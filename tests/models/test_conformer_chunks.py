"""Chunk training of the Conformer (ecgcore.models.conformer.chunks): the chunk model scores every sequence exactly
as the standard 3-beat model with the same weights, batches are what the sampler promises, and a run resumes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ecgcore.models.conformer.chunks import BeatStore, _tiles, training_batches, validation_batches
from ecgcore.models.conformer.config import NAMED_CONFIGS, ConformerConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = dict(embed_dim=16, ff_dim=32, num_heads=2, threads=1)


def _store(sizes=(7, 12), rr=True, seed=0):
    rng = np.random.default_rng(seed)
    beats = [rng.normal(size=(n + 2, 32, 187, 1)).astype(np.float32) for n in sizes]
    rrs = [rng.normal(size=(n + 2, 4)).astype(np.float32) for n in sizes] if rr else None
    labels = [rng.choice(5, n, p=[0.6, 0.1, 0.2, 0.05, 0.05]).astype(np.int32) for n in sizes]
    return BeatStore([f"r{i}" for i in range(len(sizes))], beats, rrs, labels)


@pytest.mark.parametrize("rr", [True, False])
def test_chunk_model_equals_the_sequence_model(rr):
    """Weights moved by name: each window of the chunk model == build_model on that 3-beat sequence (1e-5)."""
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer.chunks import chunk_model, transfer_weights
    from ecgcore.models.conformer.model import build_model

    cfg = ConformerConfig(rr_features=rr, **SMALL)
    chunk = 5
    trainer = chunk_model(cfg, chunk)
    std = build_model(cfg.replace(seed=7))  # other initial weights: the transfer must overwrite all of them
    assert transfer_weights(trainer, std) > 5
    store = _store(rr=rr)
    x = store.beats[1][None, 2:2 + chunk + 2]
    feeds = {"scalograms": x, "rr": store.rr[1][None, 2:2 + chunk + 2]} if rr else x
    got = np.asarray(trainer(feeds, training=False))[0]
    seqs = np.stack([x[0, j:j + 3] for j in range(chunk)])
    sfeeds = {"scalograms": seqs, "rr": np.stack([store.rr[1][2 + j:2 + j + 3] for j in range(chunk)])} if rr else seqs
    want = np.asarray(std(sfeeds, training=False))
    assert got.shape == want.shape == (chunk, 5)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_training_batches_hold_their_anchor_and_weights():
    store = _store(sizes=(40, 60))
    keep = np.array([0.25, 1, 1, 1, 1])
    gen = training_batches(store, keep, chunks_per_step=16, chunk=4, seed=3)
    for _ in range(5):
        (x, y, w) = next(gen)
        assert x["scalograms"].shape == (16, 6, 32, 187, 1) and x["rr"].shape == (16, 6, 4)
        assert y.shape == w.shape == (16, 4)
        for b in range(16):
            # the chunk is a contiguous stretch of one record: find it by its first beat
            r = next(i for i, bb in enumerate(store.beats) if any(np.array_equal(x["scalograms"][b, 0], v) for v in bb))
            s = next(j for j in range(len(store.labels[r])) if np.array_equal(store.beats[r][j], x["scalograms"][b, 0]))
            np.testing.assert_array_equal(y[b], store.labels[r][s:s + 4])
            np.testing.assert_array_equal(x["rr"][b], store.rr[r][s:s + 6])
            # one anchor of weight 1; neighbours weighted by keep (an anchor of class N is weighted 1 too)
            assert np.sum(w[b] == 1.0) >= 1
            assert set(np.round(w[b], 6)) <= {0.25, 1.0}


def test_amplitude_augmentation_scales_the_signal_and_leaves_the_draws_alone():
    """amplitude_range: each chunk's stored (normalised) scalograms become those of its signal times one factor in
    [low, high] -- un-normalised, the augmented chunk over the original is that factor in every cell -- while the
    chunks drawn, their labels, weights and RR inputs equal the run without augmentation."""
    store = _store(sizes=(40, 60))
    before = [b.copy() for b in store.beats]
    rng = np.random.default_rng(5)
    norm = {"mean": rng.uniform(0.1, 0.3, 187), "scale": rng.uniform(0.05, 0.3, 187)}
    keep = np.array([0.25, 1, 1, 1, 1])
    plain = training_batches(store, keep, chunks_per_step=16, chunk=4, seed=3)
    aug = training_batches(store, keep, chunks_per_step=16, chunk=4, seed=3, amplitude=(0.5, 2.0), norm=norm)
    factors = []
    mean, scale = norm["mean"][:, None], norm["scale"][:, None]
    for _ in range(20):
        (xp, yp, wp), (xa, ya, wa) = next(plain), next(aug)
        np.testing.assert_array_equal(yp, ya)
        np.testing.assert_array_equal(wp, wa)
        np.testing.assert_array_equal(xp["rr"], xa["rr"])
        raw_p = xp["scalograms"].astype(np.float64) * scale + mean
        raw_a = xa["scalograms"].astype(np.float64) * scale + mean
        rp, ra = raw_p.reshape(16, -1), raw_a.reshape(16, -1)
        a = (rp * ra).sum(1) / (rp * rp).sum(1)  # each chunk's factor (least squares), then every cell must follow it
        np.testing.assert_allclose(ra, a[:, None] * rp, atol=2e-6 * np.abs(rp).max())
        assert len(np.unique(np.round(a, 6))) == 16  # one factor per chunk, not per batch
        factors += list(a)
    factors = np.array(factors)
    assert all(np.array_equal(b, c) for b, c in zip(store.beats, before))  # the store itself is never scaled
    assert factors.min() >= 0.5 - 1e-4 and factors.max() <= 2.0 + 1e-4
    # log-uniform: half the factors below 1, and they spread over the range
    assert 0.35 < np.mean(factors < 1.0) < 0.65 and factors.min() < 0.6 and factors.max() > 1.7
    # without RR inputs the batch is the scalogram array itself, scaled the same way
    bare = _store(sizes=(40, 60), rr=False)
    xp, _, _ = next(training_batches(bare, keep, chunks_per_step=8, chunk=4, seed=1))
    xa, _, _ = next(training_batches(bare, keep, chunks_per_step=8, chunk=4, seed=1, amplitude=(0.5, 2.0), norm=norm))
    rp, ra = (xp.astype(np.float64) * scale + mean).reshape(8, -1), (xa.astype(np.float64) * scale + mean).reshape(8, -1)
    a = (rp * ra).sum(1) / (rp * rp).sum(1)
    np.testing.assert_allclose(ra, a[:, None] * rp, atol=2e-6 * np.abs(rp).max())
    assert np.all((a > 0.5 - 1e-4) & (a < 2.0 + 1e-4)) and np.abs(a - 1).max() > 0.05
    with pytest.raises(ValueError, match="needs the store's normalisation"):
        next(training_batches(bare, keep, chunks_per_step=8, chunk=4, amplitude=(0.5, 2.0)))
    # validated: a range must straddle 1 and needs chunk training
    with pytest.raises(ValueError, match="0 < low <= 1 <= high"):
        ConformerConfig(chunk=4, amplitude_range=[1.2, 2.0])
    with pytest.raises(ValueError, match="needs chunk training"):
        ConformerConfig(amplitude_range=[0.5, 2.0])


def test_anchor_classes_follow_the_keep_probabilities():
    store = _store(sizes=(400, 600))
    lab = np.concatenate(store.labels)
    keep = np.array([0.1, 1, 1, 1, 1])
    gen = training_batches(store, keep, chunks_per_step=64, chunk=1, seed=0)
    ys = np.concatenate([next(gen)[1][:, 0] for _ in range(200)])
    want = np.bincount(lab, minlength=5) * keep
    np.testing.assert_allclose(np.bincount(ys, minlength=5) / len(ys), want / want.sum(), atol=0.02)


def test_validation_tiles_score_every_sequence_once():
    store = _store(sizes=(7, 12, 3))
    keep = np.array([0.5, 1, 1, 1, 1], np.float32)
    for chunk in (1, 3, 4, 5):
        tiles = _tiles(store.labels, keep, chunk)
        seen = [np.zeros(len(y)) for y in store.labels]
        for r, s, w in tiles:
            seen[r][s:s + chunk] += (w > 0)
            np.testing.assert_array_equal(w[w > 0], keep[store.labels[r][s:s + chunk]][w > 0])
        for r, y in enumerate(store.labels):
            np.testing.assert_array_equal(seen[r], 1 if len(y) >= chunk else 0)
        batches = list(validation_batches(store, keep, chunks_per_step=3, chunk=chunk))
        assert sum(len(b[1]) for b in batches) == len(tiles)


def test_chunk_training_runs_resumes_and_saves_the_standard_model(tmp_path, mitdb_dir):
    """A real 3-record run with RR inputs and a validation record; a second call with more epochs resumes."""
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import train
    from ecgcore.models.conformer._common import load_run_model
    from ecgcore.pipelines.engine import preprocess

    data = tmp_path / "tfr"
    assert not preprocess("tfrecords", mitdb_dir, data, records=["232", "231", "233"], workers=1,
                          progress=False).failed
    cfg = ConformerConfig(rr_features=True, chunk=4, batch_size=16, epochs=1, steps_per_epoch=2, val_records=1,
                          max_n_per_epoch=200, lr=1e-3, **SMALL)
    kw = dict(records_dir=mitdb_dir, train_records=["232", "233"], test_records=["231"], evaluate_after=False,
              progress=False)
    s = train(data, tmp_path / "run", cfg, **kw)
    fit = s["final"]
    assert fit["trainer"] == "chunks of 4 sequences" and fit["epochs_run"] == 1 and fit["chunks_per_step"] == 4
    state = json.loads((tmp_path / "run" / "final" / "chunk_ckpt" / "state.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1 and len(state["history"]["val_loss"]) == 1
    s2 = train(data, tmp_path / "run", cfg.replace(epochs=2), **kw)
    assert s2["final"]["epochs_run"] == 2 and len(s2["final"]["history"]["loss"]) == 2
    model = load_run_model(tmp_path / "run" / "model.keras")
    assert model.input_shape[0] == (None, 3, 32, 187, 1)  # the standard 3-beat model is what the run keeps


def test_distillation_targets_line_up_with_their_sequences():
    """Soft rows that name their record and position: at alpha 0 every chunk's targets are its own sequences' rows
    (one record, consecutive positions, the labels the same draw gives without a teacher); alpha mixes exactly;
    inputs and weights are those of the draw without a teacher."""
    sizes = (9, 14)
    store = _store(sizes=sizes)
    soft = [np.stack([np.full(n, r), np.arange(n), np.zeros(n), np.zeros(n), np.zeros(n)], 1).astype(np.float32)
            for r, n in enumerate(sizes)]
    keep = np.array([0.5, 1.0, 1.0, 1.0, 1.0])
    kw = dict(chunks_per_step=8, chunk=4, seed=3)
    x0, y0, w0 = next(training_batches(store, keep, soft=soft, alpha=0.0, **kw))
    xh, yh, wh = next(training_batches(store, keep, **kw))
    np.testing.assert_array_equal(w0, wh)
    np.testing.assert_array_equal(x0["scalograms"], xh["scalograms"])
    assert y0.shape == (8, 4, 5)
    for t, y in zip(y0, yh):
        r, pos = int(t[0, 0]), t[:, 1].astype(int)
        assert (t[:, 0] == r).all() and (np.diff(pos) == 1).all()
        np.testing.assert_array_equal(store.labels[r][pos], y)
    _, ym, _ = next(training_batches(store, keep, soft=soft, alpha=0.25, **kw))
    np.testing.assert_allclose(ym, 0.25 * np.eye(5)[yh] + 0.75 * y0, atol=1e-6)


def test_named_configs_resolve_with_command_line_overrides():
    """--config seed is the seed's protocol and settings; --config bundled the shipped model's; typed options win."""
    from click.testing import CliRunner

    from ecgcore.cli import main

    def resolved(*args):
        res = CliRunner().invoke(main, ["train", "conformer", "data", "run", *args, "--show-config"])
        assert res.exit_code == 0, res.output
        return ConformerConfig.from_dict(json.loads(res.output))

    seed = resolved("--config", "seed")
    assert seed == ConformerConfig(protocol="seed")  # every other field the seed's default
    assert (seed.lr, seed.class_weight, seed.rr_features, seed.chunk, seed.batch_size) == (1e-5, "balanced", False,
                                                                                           0, 128)
    b = resolved("--config", "bundled")
    assert (b.protocol, b.rr_features, b.chunk, b.val_records, b.class_weight) == ("inter-patient", True, 4, 4, "none")
    b2 = resolved("--config", "bundled", "--epochs", "3", "--no-rr", "--threads", "1", "--set", "lr=1e-3")
    assert (b2.epochs, b2.rr_features, b2.threads, b2.lr, b2.chunk) == (3, False, 1, 1e-3, 4)
    assert resolved().protocol == "inter-patient"  # no --config: the plain defaults, as before


def test_lr_schedule_is_validated_and_piecewise_constant():
    cfg = ConformerConfig(lr=5e-4, lr_schedule=[[3, 1e-4], [5, 2e-5]])
    assert [cfg.lr_at(e) for e in range(1, 7)] == [5e-4, 5e-4, 1e-4, 1e-4, 2e-5, 2e-5]
    assert ConformerConfig(lr=1e-3).lr_at(9) == 1e-3
    for bad in ([[0, 1e-4]], [[3, 1e-4], [2, 1e-5]], [[2, -1.0]], [[2]], "3:1e-4"):
        with pytest.raises(ValueError, match="lr_schedule"):
            ConformerConfig(lr_schedule=bad)
    refit = ConformerConfig(**NAMED_CONFIGS["refit"])
    assert refit.val_records == 0 and [refit.lr_at(e) for e in (1, 4, 5)] == [5e-4, 5e-4, 1e-4]


def test_val_records_by_name_hold_out_those_records_whatever_the_seed(tmp_path, mitdb_dir):
    """``val_records=["233"]``: that record validates under any ``seed`` (a count draws them with the seed); names
    that are not training records, repeated names or a bad count are refused."""
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import train
    from ecgcore.pipelines.engine import preprocess

    for bad in ([], ["101", "101"], -1, 1.5, True, "4"):
        with pytest.raises(ValueError, match="val_records"):
            ConformerConfig(val_records=bad)
    assert ConformerConfig(val_records=["205", 101]).val_records == ["101", "205"]
    assert ConformerConfig(val_records=2.0).val_records == 2
    data = tmp_path / "tfr"
    assert not preprocess("tfrecords", mitdb_dir, data, records=["232", "233", "231"], workers=1,
                          progress=False).failed
    kw = dict(records_dir=mitdb_dir, train_records=["232", "233"], test_records=["231"], evaluate_after=False,
              progress=False)
    for seed in (1, 2):
        cfg = ConformerConfig(rr_features=True, chunk=4, batch_size=16, epochs=1, steps_per_epoch=1, seed=seed,
                              val_records=["233"], max_n_per_epoch=100, lr=1e-3, **SMALL)
        fit = train(data, tmp_path / f"run{seed}", cfg, **kw)["final"]
        assert fit["val_records"] == ["233"] and fit["train_records"] == ["232"]
    with pytest.raises(ValueError, match="must be training records"):
        train(data, tmp_path / "bad", cfg.replace(val_records=["231"]), **kw)


def test_refit_without_validation_follows_the_lr_schedule(tmp_path, mitdb_dir):
    """val_records=0 (every training record fits) and a fixed schedule: the optimiser's rate is the schedule's at
    every epoch, across a resume."""
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import train
    from ecgcore.pipelines.engine import preprocess

    data = tmp_path / "tfr"
    assert not preprocess("tfrecords", mitdb_dir, data, records=["232", "233"], workers=1, progress=False).failed
    cfg = ConformerConfig(rr_features=True, chunk=4, batch_size=16, epochs=1, steps_per_epoch=1, val_records=0,
                          max_n_per_epoch=100, lr=1e-3, lr_schedule=[[2, 2e-4], [3, 4e-5]], **SMALL)
    kw = dict(records_dir=mitdb_dir, train_records=["232"], test_records=["233"], evaluate_after=False,
              progress=False)
    state_path = tmp_path / "run" / "final" / "chunk_ckpt" / "state.json"
    fit = train(data, tmp_path / "run", cfg, **kw)["final"]
    assert fit["val_records"] == [] and fit["train_records"] == ["232"]
    assert json.loads(state_path.read_text())["lr"] == pytest.approx(1e-3)
    train(data, tmp_path / "run", cfg.replace(epochs=2), **kw)
    assert json.loads(state_path.read_text())["lr"] == pytest.approx(2e-4)
    fit = train(data, tmp_path / "run", cfg.replace(epochs=3), **kw)["final"]
    assert fit["epochs_run"] == 3 and json.loads(state_path.read_text())["lr"] == pytest.approx(4e-5)


def test_swa_keeps_the_average_of_the_epoch_weights_across_a_resume(tmp_path, mitdb_dir):
    """swa_from=1: after epoch 1 the model is epoch 1's weights; resumed to epoch 2 it is the mean of the two epochs'
    weights (every trainable tensor, 1e-6), its BatchNorm statistics re-estimated; fit.json says which epochs."""
    pytest.importorskip("tensorflow")
    from ecgcore.models.conformer import train
    from ecgcore.models.conformer._common import load_run_model
    from ecgcore.models.conformer.chunks import chunk_model, transfer_weights
    from ecgcore.models.conformer.model import build_model
    from ecgcore.pipelines.engine import preprocess

    data = tmp_path / "tfr"
    assert not preprocess("tfrecords", mitdb_dir, data, records=["232", "233"], workers=1, progress=False).failed
    cfg = ConformerConfig(rr_features=True, chunk=4, batch_size=16, epochs=1, steps_per_epoch=2, val_records=0,
                          max_n_per_epoch=100, lr=1e-2, swa_from=1, swa_bn_batches=2, **SMALL)
    kw = dict(records_dir=mitdb_dir, train_records=["232"], test_records=["233"], evaluate_after=False,
              progress=False)
    fit = train(data, tmp_path / "run", cfg, **kw)["final"]
    assert fit["swa"] == {"epochs": [1], "bn_batches": 2}
    e1 = [w.numpy() for w in load_run_model(tmp_path / "run" / "model.keras").trainable_weights]
    fit = train(data, tmp_path / "run", cfg.replace(epochs=2), **kw)["final"]
    assert fit["swa"]["epochs"] == [1, 2] and fit["epochs_run"] == 2
    ck = tmp_path / "run" / "final" / "chunk_ckpt"
    assert [p.name for p in ck.glob("swa-e*.npz")] == ["swa-e2.npz"]
    last = chunk_model(cfg, 4)
    last.load_weights(ck / "last.weights.h5")
    e2 = build_model(cfg)
    transfer_weights(last, e2)
    final = load_run_model(tmp_path / "run" / "model.keras")
    moved = 0
    for a, b, f in zip(e1, [w.numpy() for w in e2.trainable_weights], [w.numpy() for w in final.trainable_weights]):
        np.testing.assert_allclose(f, (a + b) / 2, rtol=0, atol=1e-6)
        moved += not np.array_equal(a, b)
    assert moved > 0  # lr 1e-2: epoch 2 changed the weights, so the mean differs from either epoch
    bn = [w.numpy() for w in final.non_trainable_weights if "moving" in w.path]
    assert bn and all(np.all(np.isfinite(v)) for v in bn)
