"""HeartID: preprocessing, STFT parity, model, losses, metrics, tiny real training + resume, ONNX parity."""
from __future__ import annotations

import json

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from ecgcore.models.heartid.config import HeartIDConfig  # noqa: E402


@pytest.fixture(scope="module")
def ecgid_ds(data_dir, tmp_path_factory):
    """The `heartid` recipe on the first 10 ECG-ID persons (real windows)."""
    from ecgcore.pipelines.engine import preprocess

    out = tmp_path_factory.mktemp("ecgid_heartid") / "ecgid"
    s = preprocess("heartid", data_dir / "ecgiddb", out, workers=1, limit=10, progress=False)
    assert not s.failed
    return out


def test_record_windows_match_recipe(ecgid_ds, data_dir):
    from ecgcore.models.heartid.preprocess import record_windows

    d = np.load(ecgid_ds / "Person_03.npz")
    for rec in dict.fromkeys(d["record"]):
        w = record_windows(data_dir / "ecgiddb" / rec)
        np.testing.assert_array_equal(w, d["windows"][d["record"] == rec])


def test_record_windows_bad_input(tmp_path):
    from ecgcore.models.heartid.preprocess import record_windows

    with pytest.raises(FileNotFoundError, match="nope"):
        record_windows(tmp_path / "nope")
    np.save(tmp_path / "short.npy", np.zeros((300, 1)))
    with pytest.raises(ValueError, match="--fs"):
        record_windows(tmp_path / "short.npy")
    with pytest.raises(ValueError, match="shorter than one 5 s"):
        record_windows(tmp_path / "short.npy", fs=200.0)


def test_stft_matches_cpp_and_mlx_stft(ecgid_ds):
    import mlx_stft

    from ecgcore.dsp import heartid_stft
    from ecgcore.models.heartid.model import HeartIDNet

    w = np.load(ecgid_ds / "Person_01.npz")["windows"][:12]
    ref = heartid_stft(w.astype(np.float64))  # (12, 501, 5)
    mine = np.array(HeartIDNet().spectrum(mx.array(w)))
    np.testing.assert_allclose(mine, ref.mean(-1), atol=1e-4)
    seed = np.array(mlx_stft.STFT(n_fft=1000, win_length=500, hop_length=250, return_db=True,
                                  onesided=True)(mx.array(w)))
    assert seed.shape == ref.shape == (12, 501, 5)
    # mlx_stft's float32 conv is round-off noise in the stop band (|X| ~ 1e-4); compare where the spectrum is
    # within 40 dB of each window's peak, which holds 38 % of the bins and all of the ECG's energy
    strong = ref > ref.max(axis=(1, 2), keepdims=True) - 40
    assert strong.mean() > 0.3
    assert np.abs(seed - ref)[strong].max() < 0.01


def test_network_shapes_parameters_key_broadcast():
    from mlx.utils import tree_flatten

    from ecgcore.models.heartid.keys import generate_key
    from ecgcore.models.heartid.model import HeartIDNet

    m = HeartIDNet()
    n_params = sum(v.size for _, v in tree_flatten(m.parameters()))
    assert n_params == 75_920  # SPEC 1.2
    assert m.fc.weight.shape == (100, 673)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 1000)).astype(np.float32)
    k = generate_key(100, rng)
    assert np.isclose(np.linalg.norm(k), 1.0) and set(np.unique(k > 0)) <= {True, False}
    e = np.array(m(mx.array(x), mx.array(k)))
    assert e.shape == (5, 100)
    e_ncl = np.array(m(mx.array(x[:, None, :]), mx.array(k)))  # the seed's (B, 1, 1000) input also works
    e_rows = np.array(m(mx.array(x), mx.array(np.repeat(k, 5, axis=0))))
    np.testing.assert_allclose(e_ncl, e, atol=1e-6)
    np.testing.assert_allclose(e_rows, e, atol=1e-6)
    e1 = np.array(m(mx.array(x[2:3]), mx.array(k)))  # batch-independent
    np.testing.assert_allclose(e1[0], e[2], atol=1e-5)
    k2 = generate_key(100, rng)
    assert np.abs(np.array(m(mx.array(x), mx.array(k2))) - e).max() > 1e-3


def test_losses_by_hand():
    from ecgcore.models.heartid.losses import heartid_loss, securetl_loss

    z = lambda *v: mx.array(np.array([v], np.float32))  # noqa: E731
    a, p1, p2, n1, n2 = z(0.0, 0.0), z(0.5, 0.0), z(0.2, 0.0), z(2.0, 0.0), z(0.0, 1.2)
    # distances: dP1 0.5, dP2 0.2, dN1 2.0, dN2 1.2; margin 1
    want_seed = max(0.5 - 2 + 1, 0) + max(0.5 - 1.2 + 1, 0) + max(0.2 - 2 + 1, 0) + max(0.2 - 1.2 + 1, 0)
    assert float(heartid_loss(a, p1, p2, n1, n2)) == pytest.approx(want_seed, abs=1e-5)
    # SecureTL: the same person under the other key (0.2) is the hardest negative
    assert float(securetl_loss(a, p1, p2, n1, n2)) == pytest.approx(0.5 - 0.2 + 1, abs=1e-5)


def test_metrics_known_values():
    from ecgcore.models.heartid import metrics

    g = np.linspace(0.5, 1.0, 101)
    i = np.linspace(0.0, 0.6, 101)
    e, t = metrics.eer(g, i)
    assert 0.05 < e < 0.12 and 0.5 <= t <= 0.6
    assert metrics.eer(g + 1, i)[0] == 0.0
    assert metrics.far_at_frr(g + 1, i) == 0.0 and metrics.frr_at_far(g + 1, i) == 0.0
    assert metrics.frr_at_far(g, i, 0.001) == pytest.approx(np.mean(g <= 0.6), abs=0.02)
    rng = np.random.default_rng(0)
    same = metrics.unlinkability(rng.normal(0, 1, 20000), rng.normal(0, 1, 20000))["d_sys"]
    apart = metrics.unlinkability(rng.normal(10, 1, 2000), rng.normal(0, 1, 2000))["d_sys"]
    assert same < 0.1 and apart > 0.99
    assert metrics.rank1(np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([0, 1])) == 0.5


def test_threshold_at_far_is_the_lowest_threshold_within_the_target():
    """200 impostor scores 0.000, 0.005, ..., 0.995 and genuine ones 0.500 ... 1.495: FAR <= 1 % leaves the two
    highest impostors (0.990, 0.995) accepted, so the threshold is 0.990; the genuine scores below it are 0.500 ...
    0.985 (98 of 200). A target below one score's share accepts none; a target of 1 accepts all."""
    from ecgcore.models.heartid import metrics

    i = np.arange(200) * 0.005
    g = 0.5 + np.arange(200) * 0.005
    t, far, frr = metrics.threshold_at_far(g, i, 0.01)
    assert t == pytest.approx(0.99) and far == 0.01 and frr == 98 / 200
    assert np.mean(i >= t) == far and np.mean(g < t) == frr
    assert frr == metrics.frr_at_far(g, i, 0.01)
    t0, far0, _ = metrics.threshold_at_far(g, i, 0.004)
    assert t0 > i.max() and far0 == 0.0
    assert metrics.threshold_at_far(g, i, 1.0) == (0.0, 1.0, 0.0)


def test_tiny_training_real_windows_resume_and_onnx_parity(ecgid_ds, tmp_path):

    from ecgcore.models.heartid._export import check_parity, export_onnx
    from ecgcore.models.heartid import train

    run = tmp_path / "run"
    cfg = HeartIDConfig(epochs=2, steps_per_epoch=2, batch_size=6, loss="securetl", val_fraction=0.2)
    st = train([ecgid_ds], run, cfg, progress=False, log=lambda s: None)
    assert st["epoch"] == 2 and st["step"] == 4
    for f in ("heartid_model.npz", "checkpoint/optimizer.safetensors", "best_model.npz", "split.json",
              "checkpoint/state.json", "history.csv", "learning_curve.png", "run.json", "config.json"):
        assert (run / f).is_file(), f
    split = json.loads((run / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"]) and not set(split["train"]) & set(split["val"])
    assert len(split["test"]) == 3 and len(split["val"]) == 2
    assert all(np.isfinite(h["train_loss"]) for h in st["history"])
    w0 = dict(np.load(run / "heartid_model.npz"))
    assert set(w0) == {f"kernel{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")} | {"fc.weight", "fc.bias"}
    opt = mx.load(str(run / "checkpoint" / "optimizer.safetensors"))
    assert int(opt["step"]) == 4 and "fc.weight.m" in opt and "kernel1.weight.v" in opt
    # resume: a third epoch continues from the checkpoint (step counter and weights carry on)
    cfg3 = cfg.replace(epochs=3)
    st3 = train(ecgid_ds, run, cfg3, progress=False, log=lambda s: None)
    assert st3["epoch"] == 3 and st3["step"] == 6 and len(st3["history"]) == 3
    assert int(mx.load(str(run / "checkpoint" / "optimizer.safetensors"))["step"]) == 6
    with pytest.raises(ValueError, match="different settings"):   # settings other than the budgets are kept
        train(ecgid_ds, run, cfg.replace(epochs=4, lr=0.1), progress=False, log=lambda s: None)
    w1 = dict(np.load(run / "heartid_model.npz"))
    assert any(np.abs(w1[k] - w0[k]).max() > 0 for k in w0)

    onnx_path = export_onnx(run / "heartid_model.npz", tmp_path / "model.onnx")
    win = np.load(ecgid_ds / "Person_02.npz")["windows"][:10]
    par = check_parity(run / "heartid_model.npz", onnx_path, win, atol=1e-4)
    assert par["shared_key"] <= 1e-4 and par["per_row_keys"] <= 1e-4


def test_evaluation_protocol_detects_key_blind_embedder(ecgid_ds):
    """An embedder that ignores the key is not cancelable: the other-key probe is always accepted."""
    from ecgcore.models.heartid.data import load_dataset
    from ecgcore.models.heartid._evaluate import evaluate_subjects

    class KeyBlind:
        def features(self, w):
            return np.abs(np.fft.rfft(w, axis=1))[:, :60]

        def embed(self, f, key):
            return f

    class KeyDominated(KeyBlind):
        R = np.random.default_rng(3).standard_normal((100, 60))

        def embed(self, f, key):
            return f + 1e4 * key @ self.R

    subs = load_dataset(ecgid_ds)
    r = evaluate_subjects(subs, KeyBlind(), probe_windows=7)
    m = r["metrics"]
    assert m["n_subjects"] == 10 and m["n_genuine"] == m["n_probes"]
    assert m["n_impostor"] == m["n_probes"] * 9
    np.testing.assert_allclose(r["scores"]["mated_different_keys"], r["scores"]["genuine"])
    assert m["eer_genuine_vs_mated_different_keys"] > 0.3  # mated scores look like genuine ones
    assert m["mated_different_keys_accept"] == 1 - m["frr_at_threshold"]
    assert m["d_sys"] > 0.3
    k = evaluate_subjects(subs, KeyDominated(), probe_windows=7)["metrics"]
    assert k["eer"] == pytest.approx(m["eer"], abs=1e-9)  # same key on both sides: the offset cancels
    assert k["mated_different_keys_accept"] == 0.0
    k1 = evaluate_subjects(subs, KeyDominated(), probe_windows=1)["metrics"]  # ~200 mated scores for D_sys
    assert k1["mated_different_keys_accept"] == 0.0 and k1["d_sys"] < 0.15


def test_cli_train_evaluate_export_and_product_on_export(ecgid_ds, data_dir, tmp_path):
    """`ecgcore train|evaluate|export heartid` wiring on a tiny run, then enroll/verify against that export."""
    from click.testing import CliRunner

    from ecgcore.cli import main
    from ecgcore.export import read_card

    run, out = tmp_path / "run", tmp_path / "export"
    r = CliRunner().invoke(main, ["train", "heartid", str(ecgid_ds), "-o", str(run), "--epochs", "1",
                                  "--steps-per-epoch", "2", "--batch-size", "4", "--val-fraction", "0.2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert (run / "heartid_model.npz").is_file() and "done: 1 epochs, 2 steps" in r.output
    r = CliRunner().invoke(main, ["evaluate", "heartid", str(run), "--ecgid-raw", str(data_dir / "ecgiddb")])
    assert r.exit_code == 0, r.output
    m = json.loads((run / "metrics.json").read_text())
    test7 = m["results"]["probe_windows_7"]["ecgid"]
    assert test7["n_subjects"] == 3 and 0 <= test7["eer"] <= 1 and 0 <= test7["d_sys"] <= 1
    assert test7["n_probes_close"] + test7["n_probes_far"] == test7["n_probes"]
    assert (run / "det.png").stat().st_size > 1000 and "securetl" in r.output
    r = CliRunner().invoke(main, ["export", "heartid", str(run), "-o", str(out)])
    assert r.exit_code == 0, r.output
    card = read_card(out)
    assert card.preprocessing == {"kind": "heartid", "fs": 200.0, "window": 1000, "stride": 500, "lead": 0,
                                  "band": [0.5, 40.0], "enrol_fraction": 0.5}
    v = card.config["verification"]
    assert v["threshold"] == m["results"]["probe_windows_7"]["validation"]["eer_threshold"]
    assert card.metrics["onnx_parity"]["shared_key"] <= 1e-4
    assert (out / "model.onnx").stat().st_size < 2_000_000
    # the product accepts any exported folder through --model
    store, key = tmp_path / "s.sqlite", tmp_path / "k.key"
    rec = data_dir / "ecgiddb" / "Person_01" / "rec_1"
    r = CliRunner().invoke(main, ["enroll", "P1", str(rec), "--key-file", str(key), "--store", str(store),
                                  "--model", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["verify", "P1", str(rec), "--key-file", str(key), "--store", str(store),
                                  "--model", str(out), "--json"])
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["decision"] == "accept" and d["score"] == 1.0  # same record: every index equal
    iom = v["schemes"]["grp-iom-v1"]  # the default scheme's threshold, chosen on the validation subjects too
    assert v["default_scheme"] == "grp-iom-v1" and 1 / 16 < iom["threshold"] <= 1.0 and iom["validation_eer"] <= 0.5
    r = CliRunner().invoke(main, ["enroll", "P1s", str(rec), "--key-file", str(key), "--store", str(store),
                                  "--model", str(out), "--scheme", "seed"])
    r = CliRunner().invoke(main, ["verify", "P1s", str(rec), "--key-file", str(key), "--store", str(store),
                                  "--model", str(out), "--json", "--scheme", "seed"])
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["decision"] == "accept" and abs(d["score"]) < 1e-6  # same record: distance 0


def test_export_folds_key_scale_and_spectrum_standardisation(ecgid_ds, tmp_path):
    from ecgcore.models.heartid._export import check_parity, export_onnx
    from ecgcore.models.heartid.model import HeartIDNet
    from ecgcore.models.heartid._train import save_model

    rng = np.random.default_rng(5)
    cfg = HeartIDConfig(key_scale=30.0, standardize_spectrum=True, spectrum_mean=rng.normal(0, 20, 501).tolist(),
                        spectrum_std=rng.uniform(2, 9, 501).tolist())
    save_model(HeartIDNet(cfg), tmp_path / "w.npz")
    p = export_onnx(tmp_path / "w.npz", tmp_path / "m.onnx", cfg)
    win = np.load(ecgid_ds / "Person_04.npz")["windows"][:6]
    par = check_parity(tmp_path / "w.npz", p, win, cfg)
    assert max(par["shared_key"], par["per_row_keys"]) <= 1e-4
