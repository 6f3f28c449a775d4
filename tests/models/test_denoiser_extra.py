"""Denoiser training from a shipped model and on PTB-XL clean windows (issue 22): the ``denoise-ptbxl`` recipe,
``state_from_onnx`` (an exported graph's weights back in PyTorch), and ``extra_clean`` / ``init_from`` in a real run."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ecgcore.export import resolve_model  # noqa: E402
from ecgcore.io import read_record  # noqa: E402
from ecgcore.models.denoiser import DenoiserConfig, train  # noqa: E402
from ecgcore.models.denoiser.data import load_extra_clean  # noqa: E402
from ecgcore.models.denoiser.weights import model_from_export, state_from_onnx  # noqa: E402
from ecgcore.pipelines.engine import preprocess  # noqa: E402
from ecgcore.pipelines.recipes.denoise_pairs import clean_windows  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index:Warning")


@pytest.fixture(scope="module")
def ptb_small(ptbxl_cut, tmp_path_factory):
    """A PTB-XL folder of its first 12 table rows (the records linked, the table cut)."""
    d = tmp_path_factory.mktemp("ptbxl")
    return d, ptbxl_cut(d, 12)


@pytest.fixture(scope="module")
def ptb_windows(ptb_small, tmp_path_factory):
    d, _ = ptb_small
    out = tmp_path_factory.mktemp("denoise-ptbxl")
    s = preprocess("denoise-ptbxl", d, out, workers=1, progress=False, options={"leads": ["II", "v5"]})
    assert not s.failed
    return out


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory, mitdb_dir):
    out = tmp_path_factory.mktemp("denoise-pairs")
    s = preprocess("denoise-pairs", mitdb_dir, out, records=["100", "101"], workers=1, progress=False)
    assert sorted(s.done) == ["100", "101"] and not s.failed  # 101 trains (DS1), 100 gives export parity inputs
    return out


def test_recipe_keeps_folds_one_to_eight_and_cuts_the_pairs_clean_windows(ptb_small, ptb_windows):
    """Only ECGs of PTB-XL folds 1-8 (read from the table here), one window per asked lead (names in any case),
    equal to the denoise-pairs clean transform of that lead; metadata and splits say what was made."""
    d, rows = ptb_small
    want = sorted(f"{int(float(r['ecg_id'])):05d}" for r in rows if int(float(r["strat_fold"])) <= 8)
    assert 0 < len(want) < len(rows)  # this cut holds both kinds
    splits = json.loads((ptb_windows / "splits.json").read_text())
    meta = json.loads((ptb_windows / "metadata.json").read_text())
    assert sorted(splits["extra"]) == want and meta["recipe"] == "denoise-ptbxl" and meta["windows"] == 2 * len(want)
    row = next(r for r in rows if int(float(r["ecg_id"])) == int(want[0]))
    rec = read_record(d / row["filename_hr"], annotator=None)
    with np.load(ptb_windows / f"{want[0]}.npz") as z:
        assert list(z["lead"]) == [rec.leads[[n.upper() for n in rec.leads].index(x)] for x in ("II", "V5")]
        assert str(z["patient"]) == str(int(float(row["patient_id"])))
        assert int(z["strat_fold"]) == int(float(row["strat_fold"]))
        names = [n.upper() for n in rec.leads]
        for i, lead in enumerate(("II", "V5")):
            ref = clean_windows(rec, {"fs": 130.0, "length": 1300, "band": [0.5, 45.0], "lead": names.index(lead)})
            np.testing.assert_array_equal(z["clean"][i], ref[0].astype(np.float32))
    clean, info = load_extra_clean(ptb_windows, 130.0, 1300)
    assert clean.shape == (2 * len(want), 1300) and clean.dtype == np.float32
    assert info["ecgs"] == len(want) and info["leads"] == ["II", "v5"]


def test_recipe_and_loader_refuse_what_does_not_fit(ptb_small, ptb_windows, pairs_dir, tmp_path):
    d, _ = ptb_small
    with pytest.raises(ValueError, match="folds"):
        preprocess("denoise-ptbxl", d, tmp_path / "a", workers=1, progress=False, options={"folds": [0, 11]})
    with pytest.raises(ValueError, match="distinct"):
        preprocess("denoise-ptbxl", d, tmp_path / "b", workers=1, progress=False, options={"leads": ["II", "ii"]})
    s = preprocess("denoise-ptbxl", d, tmp_path / "c", workers=1, progress=False, options={"leads": ["II", "X9"]})
    assert s.failed and not s.done  # every ECG reported (no such lead), nothing written for it
    with pytest.raises(ValueError, match="expected 'denoise-ptbxl'"):
        load_extra_clean(pairs_dir, 130.0, 1300)
    with pytest.raises(ValueError, match="1300 samples at 130.0 Hz; the dataset.s are 1000"):
        load_extra_clean(ptb_windows, 130.0, 1000)
    with pytest.raises(ValueError, match=r"band-passed \[0.5, 45.0\] Hz; the dataset's targets are \[1.0, 40.0\]"):
        load_extra_clean(ptb_windows, 130.0, 1300, band=[1.0, 40.0])
    with pytest.raises(ValueError, match="init_from starts the seed form only"):
        DenoiserConfig(init_from="denoiser", residual=True)
    with pytest.raises(ValueError, match="mixing='online'"):
        DenoiserConfig(extra_clean=str(ptb_windows))


def test_state_from_onnx_computes_what_the_shipped_graph_computes(pairs_dir):
    """The bundled denoiser's graph (BatchNorm folded, int8 weights) back in PyTorch: on real noisy DS1 windows,
    z-scored, the network in eval mode gives the onnxruntime output within 1e-4 (float32 arithmetic in both)."""
    import onnxruntime as ort

    net, onnx_path = model_from_export("denoiser")
    with np.load(pairs_dir / "101.npz") as z:
        x = z["noisy"][:6, 2, 1].astype(np.float64)
    x = ((x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)).astype(np.float32)[:, None]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() < 1e-4 and np.abs(want).max() > 0.5
    with pytest.raises(ValueError, match=r"enc1.0.weight. has shape \(32, 1, 3\), the network.s is \(16, 1, 3\)"):
        state_from_onnx(onnx_path, base_channels=16)


def test_training_from_the_shipped_model_on_extra_windows(pairs_dir, ptb_windows, tmp_path):
    """`init_from` + `extra_clean`: the run starts from the shipped weights (its first validation loss is the
    shipped network's, far below a random start's), the PTB-XL windows join the training pairs only, the BatchNorm
    statistics stay fixed while the weights move, and the card names the folder EXTRA, not this machine's path."""
    from ecgcore.models.denoiser import export

    with np.load(pairs_dir / "101.npz") as z:
        n_windows, per_w = z["clean"].shape[0], int(np.prod(z["noisy"].shape[1:3]))
    n_extra = load_extra_clean(ptb_windows, 130.0, 1300)[0].shape[0]
    # both runs see pre-filtered input, as the shipped network does (its card's prefilter), at a fine-tuning rate:
    # one Adam step of 1e-3 on a batch of 4 moves every weight by about 1e-3 and undoes most of a trained network
    base = dict(batch_size=4, max_steps=2, val_every=1, val_pairs=16, mixing="online", prefilter_hz=0.5, lr=1e-5)
    # the shipped network has a global-context block (version 3): a run from it names the block
    a = train(pairs_dir, tmp_path / "a", DenoiserConfig(init_from="denoiser", extra_clean=str(ptb_windows),
                                                        context="attention", **base), progress=False)
    b = train(pairs_dir, tmp_path / "b", DenoiserConfig(**base), progress=False)
    n_train = n_windows - int(round(0.1 * n_windows))
    assert a["train_pairs"] == (n_train + n_extra) * per_w and b["train_pairs"] == n_train * per_w
    assert a["val_pairs"] == b["val_pairs"] == 16
    assert a["extra_clean"]["windows"] == n_extra and a["batchnorm_frozen"] and not b["batchnorm_frozen"]
    assert a["history"][0]["val_loss"] < 0.5 * b["history"][0]["val_loss"]
    start = state_from_onnx(model_from_export("denoiser")[1])
    ckpt = torch.load(tmp_path / "a" / "checkpoint" / "state.pt", weights_only=True)["model"]
    for k, v in start.items():
        if k.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(ckpt[k], v, rtol=0, atol=0, msg=k)
    assert not torch.equal(ckpt["enc1.0.weight"], start["enc1.0.weight"])
    # a resumed run takes its checkpoint's weights, not the shipped graph's again
    train(pairs_dir, tmp_path / "a", DenoiserConfig(init_from="denoiser", extra_clean=str(ptb_windows),
                                                    context="attention", **{**base, "max_steps": 3}), progress=False,
          command=
          f"ecgcore train denoiser {pairs_dir} {tmp_path / 'a'} --set init_from=denoiser --set context=attention "
          f"--set extra_clean={ptb_windows}")
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["training"]["steps"] == 3
    resumed = torch.load(tmp_path / "a" / "checkpoint" / "state.pt", weights_only=True)["model"]
    assert not torch.equal(resumed["enc1.0.weight"], start["enc1.0.weight"])
    assert (resumed["enc1.0.weight"] - ckpt["enc1.0.weight"]).abs().max() < \
        (ckpt["enc1.0.weight"] - start["enc1.0.weight"]).abs().max() * 10  # one more small step from the checkpoint
    out = export(tmp_path / "a", tmp_path / "model", data_dir=pairs_dir)
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["config"]["extra_clean"] == "EXTRA" and card["config"]["init_from"] == "denoiser"
    text = json.dumps(card)
    assert str(ptb_windows) not in text and str(tmp_path) not in text and str(pairs_dir) not in text
    want = "ecgcore train denoiser DENOISE_PAIRS RUN --set init_from=denoiser --set context=attention --set extra_clean=EXTRA"
    assert card["training"]["sessions"][-1]["command"] == card["training"]["command"] == want
    assert out["parity_max_abs_diff"] < 1e-4
    # the cost of the weights it started from travels with it: the shipped card's own training time and command
    shipped = resolve_model("denoiser")[1].to_dict()
    parent = card["training"]["init_training"]
    assert parent["model"] == "denoiser" and parent["elapsed_s"] == shipped["training"]["elapsed_s"] > 0
    assert parent["command"] == shipped["training"]["command"] and parent["steps"] == shipped["training"]["steps"]
    assert card["training"]["total_elapsed_s"] == pytest.approx(
        card["training"]["elapsed_s"] + parent["total_elapsed_s"], abs=0.2)
    assert parent["total_elapsed_s"] >= parent["elapsed_s"]
    # a run begun before runs recorded it: export reads the starting model's card then
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    del m["training"]["init_training"]
    (tmp_path / "a" / "metrics.json").write_text(json.dumps(m))
    export(tmp_path / "a", tmp_path / "model2", data_dir=pairs_dir)
    late = json.loads((tmp_path / "model2" / "model.json").read_text())["training"]["init_training"]
    assert late["read"] == "at export" and late["elapsed_s"] == parent["elapsed_s"]


def test_global_context_block_starts_at_zero_and_exports(pairs_dir, tmp_path):
    """``context="attention"``: added to seed-form weights (the shipped network's own, its block left out), the block
    starts at zero, so the network computes exactly what the seed-form weights compute, and a run from a seed-form
    export begins there (at lr 0 nothing moves: every seed weight as exported, the block all zeros); a real run from
    the shipped context model moves its block; the export (float, then int8 convolutions only) reads back into
    PyTorch within 1e-4 of onnxruntime; a seed-form run cannot start from it."""
    import onnxruntime as ort

    from ecgcore.export.quantize import quantize_weights
    from ecgcore.models.denoiser import export
    from ecgcore.models.denoiser.model import AttentionUNet

    shipped, _ = model_from_export("denoiser")
    shipped_state = shipped.state_dict()
    assert shipped_state["context.proj_out.weight"].abs().max() > 0  # the shipped block was trained off zero
    seed = AttentionUNet().eval()
    seed.load_state_dict({k: v for k, v in shipped_state.items() if not k.startswith("context.")})
    ctx = AttentionUNet(context="attention")
    missing = ctx.load_state_dict(seed.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("context.") for k in missing)
    with np.load(pairs_dir / "100.npz") as z:
        x = z["noisy"][:4, 0, 1].astype(np.float64)
    x = torch.from_numpy(((x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)).astype(np.float32)[:, None])
    with torch.no_grad():
        torch.testing.assert_close(ctx.eval()(x), seed(x), rtol=0, atol=0)
        assert (shipped(x) - seed(x)).abs().max() > 1e-3  # the shipped block changes the output
    base = dict(batch_size=4, max_steps=2, val_every=1, val_pairs=16, mixing="online", prefilter_hz=0.5, lr=1e-4,
                init_from="denoiser")
    # a seed-form export (a 1-step run from scratch) as the starting model of a context run at lr 0
    train(pairs_dir, tmp_path / "seedrun", DenoiserConfig(batch_size=4, max_steps=1, val_every=1, val_pairs=16),
          progress=False)
    export(tmp_path / "seedrun", tmp_path / "seedmodel", data_dir=pairs_dir)
    train(pairs_dir, tmp_path / "zero", DenoiserConfig(context="attention", **{**base, "lr": 0.0, "max_steps": 1,
                                                       "init_from": str(tmp_path / "seedmodel")}), progress=False)
    start = state_from_onnx(tmp_path / "seedmodel" / "model.onnx")
    z0 = torch.load(tmp_path / "zero" / "checkpoint" / "state.pt", weights_only=True)["model"]
    assert z0["context.proj_out.weight"].abs().max() == 0 and z0["context.proj_out.bias"].abs().max() == 0
    for k, v in start.items():
        torch.testing.assert_close(z0[k], v, rtol=0, atol=0, msg=k)
    at_start = AttentionUNet(context="attention").eval()
    at_start.load_state_dict(z0)
    with torch.no_grad():  # the context run's first output is the seed-form export's, exactly
        torch.testing.assert_close(at_start(x), model_from_export(tmp_path / "seedmodel")[0](x), rtol=0, atol=0)
    train(pairs_dir, tmp_path / "moves", DenoiserConfig(context="attention", **{**base, "max_steps": 1,
                                                        "init_from": str(tmp_path / "seedmodel")}), progress=False)
    moved = torch.load(tmp_path / "moves" / "checkpoint" / "state.pt", weights_only=True)["model"]
    assert moved["context.proj_out.weight"].abs().max() > 0  # at lr > 0 the block leaves its zero start
    r = train(pairs_dir, tmp_path / "run", DenoiserConfig(context="attention", **base), progress=False)
    assert r["batchnorm_frozen"]
    ckpt = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=True)["model"]
    assert not torch.equal(ckpt["context.proj_out.weight"], shipped_state["context.proj_out.weight"])  # it learns
    export(tmp_path / "run", tmp_path / "model", data_dir=pairs_dir)
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["config"]["context"] == "attention"
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    import onnx

    float_graph = onnx.load(str(tmp_path / "model" / "model.onnx")).graph
    conv_weights = {n.input[1] for n in float_graph.node if n.op_type in ("Conv", "ConvTranspose")}
    for graph in ("float", "int8"):
        if graph == "int8":
            rep = quantize_weights(tmp_path / "model" / "model.onnx", min_elements=10_000,
                                   op_types=("Conv", "ConvTranspose"))
            assert rep["quantized"] and {q["name"] for q in rep["quantized"]} <= conv_weights
        net, onnx_path = model_from_export(tmp_path / "model")
        for k, v in net.state_dict().items():  # the block as trained (the exporter changes no Linear or LayerNorm)
            if k.startswith("context."):
                torch.testing.assert_close(v, best[k], rtol=0, atol=1e-7, msg=k)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        want = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            got = net(x).numpy()
        assert np.abs(got - want).max() < 1e-4 and np.abs(want).max() > 0.5, graph
    with pytest.raises(ValueError, match="global-context block; set context=attention"):
        train(pairs_dir, tmp_path / "seedform", DenoiserConfig(**{**base, "init_from": str(tmp_path / "model")}),
              progress=False)
    with pytest.raises(ValueError, match="context must be one of"):
        DenoiserConfig(context="lstm")


def test_sigterm_ends_a_training_session_cleanly_and_it_resumes(pairs_dir, tmp_path):
    """``kill -TERM`` on ``ecgcore train denoiser`` (a scheduler's pre-emption): the process ends by itself, the
    session is recorded as ended by SIGTERM, the run is a budget stop (not finished), and it resumes from there."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ecgcore.cli", "train", "denoiser", str(pairs_dir), str(run), "--set", "batch_size=4",
           "--set", "base_channels=8", "--max-steps", "100000", "--val-every", "2", "--val-pairs", "8", "--threads", "1",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not (run / "checkpoint" / "state.json").is_file() and time.monotonic() - t0 < 300:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        assert (run / "checkpoint" / "state.json").is_file(), "no checkpoint within 300 s"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    state = json.loads((run / "run.json").read_text())
    assert state["stop_reason"] == "time_limit" and not state["finished"] and 0 < state["steps"] < 100000
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["sessions"][-1]["stopped"] == "sigterm" and training["steps"] == state["steps"]
    steps = state["steps"]
    again = train(pairs_dir, run, DenoiserConfig(batch_size=4, base_channels=8, max_steps=steps + 2, val_every=2,
                                                 val_pairs=8, threads=1), progress=False)
    assert again["steps"] == steps + 2 and [s["start_step"] for s in again["sessions"]] == [0, steps]
    assert os.path.isfile(run / "best.pt")


def test_card_names_the_steps_no_session_recorded():
    """A session killed before it recorded itself leaves a gap in the session list; the card says which steps."""
    from ecgcore.models.denoiser._export import _unrecorded_steps

    ok = [{"start_step": 0, "end_step": 40}, {"start_step": 40, "end_step": 90}]
    assert _unrecorded_steps(ok, 90) == []
    assert _unrecorded_steps([{"start_step": 65, "end_step": 87}, {"start_step": 87, "end_step": 125}], 125) == [[0, 65]]
    assert _unrecorded_steps([{"start_step": 0, "end_step": 10}, {"start_step": 30, "end_step": 40}], 55) == \
        [[10, 30], [40, 55]]


def test_export_of_a_run_whose_starting_model_is_gone_says_so(tmp_path):
    """A run begun before runs recorded their starting model's cost, whose starting model folder is gone: the card
    says the cost is unavailable (no machine path) instead of refusing the export."""
    from ecgcore.models.denoiser._export import _public_training

    gone = tmp_path / "old-model"
    out = _public_training({"init_from": str(gone), "elapsed_s": 5.0, "sessions": []}, {}, tmp_path / "run")
    assert out["init_training"] == {"model": "old-model", "read": "at export",
                                    "unavailable": "the starting model's card was not found"}
    assert out["total_elapsed_s"] == 5.0 and str(tmp_path) not in json.dumps(out)


def test_shipped_model_reproduces_its_card_on_a_ds2_record(pairs_dir, mitdb_dir, tmp_path):
    """The bundled denoiser, scored as ``ecgcore infer`` runs it (``evaluate(..., onnx_model="denoiser")``: pre-filter,
    onnxruntime, guard) on DS2 record 100's pairs built here, gives the card's per-record 0 dB rows (every noise type
    and their mean; the network and both baselines) to 1e-3 dB: the card describes the graph it ships with."""
    from ecgcore.models.denoiser import evaluate

    card = resolve_model("denoiser")[1].to_dict()
    want = {r["noise"]: r for r in card["metrics"]["per_record_snr_improvement_at_0db"] if r["record"] == "100"}
    assert set(want) == {"bw", "ma", "em", "all"}
    ev = evaluate(tmp_path / "ev", pairs_dir, mitdb_dir=mitdb_dir, records=["100"], onnx_model="denoiser",
                  progress=False)
    got = {r["noise"]: r for r in ev["per_record_snr_improvement"] if r["snr_in_db"] == 0.0}
    for noise, w in want.items():
        assert got[noise]["pairs"] == w["pairs"], noise
        for m in ("denoiser", "butterworth", "wavelet"):
            assert got[noise][m] == pytest.approx(w[m], abs=1e-3), (noise, m)
    assert want["all"]["denoiser"] > want["all"]["butterworth"] + 5  # and the network is far ahead of the filter
