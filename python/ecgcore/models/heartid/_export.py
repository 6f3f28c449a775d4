"""ONNX export: the graph is rebuilt with ``onnx.helper`` from the flattened MLX weights (no MLX, no torch).

Graph (opset 17), inputs ``ecg`` (N, 1000) float32 z-scored windows and ``key`` (1 or N, 100) float32:

- three ``Conv`` 1->24 (kernels 192/96/64) + ``LeakyRelu(0.01)`` + ``ReduceMean`` over time -> 72
- the STFT in float64 (as the MLX model computes it): ``Pad`` 500 | 5 ``Slice`` frames | ``MatMul`` with the
  constant windowed DFT basis | magnitude | ``20 log10(|X| + 1e-5)`` | floor at max over frames - 80 dB |
  mean over frames -> 501, cast to float32
- ``fc`` in float64 (as the MLX model), split as ``feats @ W[:, :573].T + key @ W[:, 573:].T + b`` (the
  concat's exact algebra; it lets the (1, 100) key broadcast over the batch) -> ``embedding`` (N, 100) float32
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ..._fs import write_json as _write_json
from .config import STFT, HeartIDConfig

OPSET = 17


def _weights(path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        w = {k: z[k].astype(np.float32) for k in z.files}
    need = [f"{n}.{p}" for n in ("kernel1", "kernel2", "kernel3", "fc") for p in ("weight", "bias")]
    missing = [k for k in need if k not in w]
    if missing:
        raise ValueError(f"{path} is not a HeartID weight file: missing {', '.join(missing)}")
    return w


def build_onnx(weights: dict[str, np.ndarray], config: HeartIDConfig | None = None):
    """``onnx.ModelProto`` computing the HeartID embedding from MLX-layout weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .model import dft_basis, n_frames

    c = config or HeartIDConfig()
    L, K = c.input_size, c.key_size
    n_fft, hop, pad = STFT["n_fft"], STFT["hop"], STFT["n_fft"] // 2
    bins = n_fft // 2 + 1
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, outs, **attrs):
        nodes.append(helper.make_node(op, ins, outs, name=f"{op}_{len(nodes)}", **attrs))
        return outs[0]

    x3 = node("Unsqueeze", ["ecg", const("ax1", np.array([1], np.int64))], ["ecg_ncl"])
    branch = []
    for i in (1, 2, 3):
        w = weights[f"kernel{i}.weight"]  # MLX (out, k, in) -> ONNX (out, in, k)
        cw = const(f"kernel{i}.weight", np.ascontiguousarray(w.transpose(0, 2, 1)))
        cb = const(f"kernel{i}.bias", weights[f"kernel{i}.bias"])
        y = node("Conv", [x3, cw, cb], [f"conv{i}"])
        y = node("LeakyRelu", [y], [f"lrelu{i}"], alpha=0.01)
        branch.append(node("ReduceMean", [y], [f"branch{i}"], axes=[2], keepdims=0))

    xd = node("Cast", ["ecg"], ["ecg_f64"], to=TensorProto.DOUBLE)
    xp = node("Pad", [xd, const("stft_pads", np.array([0, pad, 0, pad], np.int64))], ["ecg_padded"], mode="constant")
    frames = []
    for f in range(n_frames(L)):
        s = node("Slice", [xp, const(f"fs{f}", np.array([f * hop], np.int64)),
                           const(f"fe{f}", np.array([f * hop + n_fft], np.int64)), "ax1"], [f"frame{f}"])
        frames.append(node("Unsqueeze", [s, "ax1"], [f"frame{f}_u"]))
    fr = node("Concat", frames, ["frames"], axis=1)  # (N, F, n_fft)
    # the (1000, 1002) float64 basis would be 8 MB of initializer; the graph builds it from the 1000-sample
    # window instead: angle = 2 pi ((n k) mod n_fft) / n_fft (exact integers before the mod), [cos | -sin]
    nk = node("Mul", [const("dft_n", np.arange(n_fft, dtype=np.float64)[:, None]),
                      const("dft_k", np.arange(bins, dtype=np.float64)[None, :])], ["dft_nk"])
    ang = node("Mul", [node("Mod", [nk, const("dft_nfft", np.array(float(n_fft)))], ["dft_mod"], fmod=1),
                       const("dft_step", np.array(2 * np.pi / n_fft))], ["dft_angle"])
    basis = node("Mul", [node("Concat", [node("Cos", [ang], ["dft_cos"]),
                                         node("Neg", [node("Sin", [ang], ["dft_sin"])], ["dft_nsin"])],
                              ["dft_cs"], axis=1),
                         const("dft_window", dft_basis(n_fft, STFT["win_length"])[:, :1])], ["dft_basis"])
    z = node("MatMul", [fr, basis], ["dft"])  # (N, F, 2 bins)
    two = const("ax2", np.array([2], np.int64))
    re = node("Slice", [z, const("re0", np.array([0], np.int64)), const("re1", np.array([bins], np.int64)), two], ["re"])
    im = node("Slice", [z, const("im0", np.array([bins], np.int64)), const("im1", np.array([2 * bins], np.int64)), two],
              ["im"])
    p2 = node("Add", [node("Mul", [re, re], ["re2"]), node("Mul", [im, im], ["im2"])], ["pow"])
    mag = node("Add", [node("Sqrt", [p2], ["mag0"]), const("db_eps", np.array(STFT["db_offset"], np.float64))], ["mag"])
    db = node("Mul", [node("Log", [mag], ["ln"]), const("db_scale", np.array(20.0 / np.log(10.0), np.float64))], ["db0"])
    floor = node("Sub", [node("ReduceMax", [db], ["dbmax"], axes=[1], keepdims=1),
                         const("top_db", np.array(STFT["top_db"], np.float64))], ["floor"])
    db = node("Max", [db, floor], ["db"])
    spec = node("Cast", [node("ReduceMean", [db], ["spec64"], axes=[1], keepdims=0)], ["spectrum"],
                to=TensorProto.FLOAT)

    feats = node("Cast", [node("Concat", branch + [spec], ["features"], axis=1)], ["features64"],
                 to=TensorProto.DOUBLE)
    key64 = node("Cast", ["key"], ["key64"], to=TensorProto.DOUBLE)
    W = weights["fc.weight"].astype(np.float64)  # the MLX model accumulates the dense layer in double too
    bias = weights["fc.bias"].astype(np.float64)
    nf = W.shape[1] - K
    if c.standardize_spectrum and c.spectrum_mean is not None:
        # fold (s - mean) / std of the 501 spectrum inputs into the dense layer: W' = W / std, b' = b - W' mean
        mu, sd = np.asarray(c.spectrum_mean, np.float64), np.asarray(c.spectrum_std, np.float64)
        # the MLX model rounds mean/std to float32; fold the same values
        mu, sd = mu.astype(np.float32).astype(np.float64), sd.astype(np.float32).astype(np.float64)
        j = slice(nf - mu.size, nf)
        W = W.copy()
        W[:, j] = W[:, j] / sd
        bias = bias - W[:, j] @ mu
    h = node("MatMul", [feats, const("fc.weight_x", np.ascontiguousarray(W[:, :nf].T))], ["fc_x"])
    # key_scale folded into the key's weights
    hk = node("MatMul", [key64, const("fc.weight_key", np.ascontiguousarray(W[:, nf:].T) * c.key_scale)], ["fc_key"])
    out = node("Add", [node("Add", [h, hk], ["fc_sum"]), const("fc.bias", bias)],
               ["embedding64"])
    out = node("Cast", [out], ["embedding"], to=TensorProto.FLOAT)

    graph = helper.make_graph(
        nodes, "heartid",
        [helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["N", L]),
         helper.make_tensor_value_info("key", TensorProto.FLOAT, ["K", K])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", c.embedding_size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ecgcore")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model


def export_onnx(weights_path, out_path, config: HeartIDConfig | None = None) -> Path:
    """Write ``model.onnx`` from ``heartid_model.npz`` / ``best_model.npz`` atomically."""
    import onnx

    out_path = Path(out_path)
    model = build_onnx(_weights(weights_path), config)
    with atomic_write(out_path) as tmp:
        onnx.save(model, str(tmp))
    return out_path


def make_card(config: HeartIDConfig, threshold: float, score: str, metrics: dict, training: dict,
              preprocessing: dict):
    """The ``model.json`` card; ``config["verification"]`` holds the score and the accept threshold."""
    from ...export import ModelCard

    cfg = config.to_dict()
    cfg["verification"] = {"score": score, "threshold": float(threshold), "template": (
        "mean of L2-normalised window embeddings" if score == "cosine" else "mean of window embeddings"),
        "threshold_chosen_on": "EER point of the validation subjects"}
    return ModelCard(
        name="heartid", task="embedding", framework="mlx",
        inputs=[{"name": "ecg", "shape": [None, config.input_size], "dtype": "float32"},
                {"name": "key", "shape": [None, config.key_size], "dtype": "float32"}],
        outputs=[{"name": "embedding", "shape": [None, config.embedding_size], "dtype": "float32"}],
        fs=float(preprocessing["fs"]), preprocessing={"kind": "heartid", **preprocessing},
        metrics=metrics, training=training, config=cfg,
        description="HeartID cancelable ECG biometrics: 5 s lead-I/MLII windows + a 100-bit unit-norm key -> "
                    "100-dim embedding (SPEC §1). Accept when the score of the probe vs the stored template is "
                    ">= config.verification.threshold (score = minus Euclidean distance, or cosine).")


def check_parity(weights_path, onnx_path, windows: np.ndarray, config: HeartIDConfig | None = None,
                 atol: float = 1e-4) -> dict:
    """MLX vs onnxruntime embeddings on ``windows`` under a shared (1, K) key and per-row (N, K) keys."""
    import mlx.core as mx

    from ...export import onnx_parity
    from .keys import generate_key
    from .model import HeartIDNet

    c = config or HeartIDConfig()
    m = HeartIDNet(c)
    m.load_weights(str(weights_path), strict=True)
    rng = np.random.default_rng(7)
    key = generate_key(c.key_size, rng)
    keys = np.concatenate([generate_key(c.key_size, rng) for _ in range(len(windows))])
    out = {}
    for name, k in (("shared_key", key), ("per_row_keys", keys)):
        ref = np.array(m(mx.array(windows), mx.array(k)))
        out[name] = onnx_parity(onnx_path, {"ecg": windows, "key": k.astype(np.float32)}, ref, atol=atol, rtol=0.0)
    out["n_windows"] = int(len(windows))
    out["atol"] = atol
    return out


def write_json(path, obj) -> None:
    _write_json(path, obj)


def export(run_dir, out_dir=None, *, weights: str = "best", also_runs=(), ecgid_raw=None) -> dict:
    """Export a HeartID run to ``out_dir/model.onnx`` (rebuilt with onnx.helper) + ``model.json``, checked in
    onnxruntime against MLX on real test windows (|diff| <= 1e-4).

    The card's accept threshold is the validation subjects' EER point from the run's ``metrics.json``
    (:func:`evaluate` runs first when it is missing or was made with other weights). ``also_runs``: other runs
    whose metrics go into the card for comparison. Returns ``{"onnx", "card", "parity", "threshold"}``.
    """
    from ...export import write_card
    from ._evaluate import evaluate, run_files
    from .data import load_subjects
    from .preprocess import recipe_options

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    cfg, split, w = run_files(run_dir, weights)
    mpath = run_dir / "metrics.json"
    if not mpath.is_file() or json.loads(mpath.read_text()).get("weights") != w.name:
        evaluate(run_dir, weights=weights, ecgid_raw=ecgid_raw)
    metrics = json.loads(mpath.read_text())
    res = metrics["results"][f"probe_windows_{cfg.probe_windows}"]
    thr = res["validation"]["eer_threshold"]
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(w, out_dir / "model.onnx", cfg)
    subjects = {s.id: s for s in load_subjects(split["data_dirs"])}
    win = np.concatenate([subjects[i].windows[:4] for i in split["test"]])[:64]
    parity = check_parity(w, onnx_path, np.ascontiguousarray(win, np.float32), cfg)
    state = json.loads((run_dir / "run.json").read_text())
    card_metrics = {"test": {k: v for k, v in metrics["results"].items()}, "onnx_parity": parity}
    for other in also_runs:
        om = Path(other) / "metrics.json"
        if om.is_file():
            o = json.loads(om.read_text())
            oc = json.loads((Path(other) / "config.json").read_text()).get("config", {})
            card_metrics[f"comparison_{Path(other).name}"] = {
                "loss": o["loss"], "key_scale": oc.get("key_scale", 1.0),
                "standardize_spectrum": oc.get("standardize_spectrum", False),
                "steps": json.loads((Path(other) / "run.json").read_text()).get("steps"), "results": o["results"]}
    training = {"data": split["data_dirs"], "protocol": "subject-disjoint split per database (train/val/test "
                "= 60/10/30 %), enrolment on the first half of each subject's windows, probes later",
                "n_subjects": {k: len(split[k]) for k in ("train", "val", "test")},
                "test_subjects": split["test"], "epochs": state.get("epochs"), "steps": state.get("steps"),
                "train_seconds": state.get("seconds"), "best_epoch": state.get("best_epoch"),
                "weights": w.name, "loss": cfg.loss, "optimizer": f"mlx AdamW (lr {cfg.lr:g}, wd {cfg.weight_decay:g})"}
    card = make_card(cfg, thr, cfg.score, card_metrics, training, recipe_options())
    # The default enroll/verify scheme (grp-iom) needs its own threshold: from the validation subjects too.
    from .protect import IOM_M, IOM_Q, SCHEME
    from .scheme_eval import dataset_iom_threshold

    iom = dataset_iom_threshold(onnx_path, [subjects[i] for i in split["val"] if i in subjects], cfg.probe_windows)
    card.config["verification"]["schemes"] = {SCHEME: {
        "threshold": iom["threshold"], "score": "share of equal IoM indices", "m": IOM_M, "q": IOM_Q,
        "embedding": "network output under the all-zero key; template = direction of the mean unit window embedding",
        "threshold_chosen_on": f"EER point (genuine vs stolen-key impostors) of the {iom['n_subjects']} validation "
                               f"subjects' {cfg.probe_windows}-window probes ({iom['n_genuine']} genuine)",
        "validation_eer": iom["eer"]}}
    card.config["verification"]["default_scheme"] = SCHEME
    write_card(card, out_dir / "model.json")
    write_json(run_dir / "parity.json", parity)
    return {"onnx": onnx_path, "card": out_dir / "model.json", "parity": parity, "threshold": thr}
