"""ONNX export of a trained run: ``model.onnx`` + ``model.json`` card, checked in onnxruntime on real windows.

Two graphs, both with input ``ecg`` (batch, 1, 3600) float32 — a standardised 10 s window at 360 Hz exactly
as the ``segments`` recipe makes it — and a dynamic batch:

* ``model.onnx``: ``logits`` (batch, 2) and ``probabilities`` (batch, 2, softmax of the logits). Its
  self-attention runs over blocks of ``ATTENTION_BLOCK`` query steps, so no (batch, 8, 900, 900) score tensor
  exists at any time: memory per window is a few MB instead of ~60 MB (a batch of 256 windows took 15 GB).
* ``attention.onnx``: ``attention`` (batch, 900, 900), the head-averaged weights (rows = query steps), for
  callers who ask for attention maps (``Scorer.attention``, the app's overlay). It holds the convolutions and
  the attention layer only (no fc1), so it is small.
"""
from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...export import ModelCard, onnx_parity, write_card
from ..._fs import atomic_write
from ._evaluate import PROTOCOL_LABELS, load_run
from .data import config_splits, preprocessing_of
from .metrics import prior_decision
from .model import WIDTH_OPTIONS

BUNDLED_NAME = "segments-abnormal"
OUTPUT_NAMES = ("logits", "probabilities")
ATTENTION_OUTPUT = "attention"
ATTENTION_FILE = "attention.onnx"
ATTENTION_BLOCK = 100  # query steps per block of the logits graph's attention


class _FusedAttention(torch.autograd.Function):
    """Scaled dot-product attention of (B, L, E) queries, keys and values in ``num_heads`` heads (scale
    1/sqrt(E / heads)); exported as onnxruntime's fused ``com.microsoft.MultiHeadAttention`` kernel, which never
    holds the (B, heads, L, L) score tensor (1.7x faster than the decomposed graph on this model, one thread)."""

    @staticmethod
    def forward(ctx, q, k, v, num_heads: int):
        b, length, embed = q.shape
        d = embed // num_heads
        split = [t.reshape(b, length, num_heads, d).transpose(1, 2) for t in (q, k, v)]
        o = torch.nn.functional.scaled_dot_product_attention(*split)
        return o.transpose(1, 2).reshape(b, length, embed)

    @staticmethod
    def symbolic(g, q, k, v, num_heads: int):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=num_heads)
        out.setType(q.type())
        return out


class _Exported(nn.Module):
    """Logits and probabilities. ``fused``: the attention as onnxruntime's fused MultiHeadAttention kernel; else in
    standard ONNX ops, per block of query steps (same function as ``nn.MultiheadAttention``: the weights' rows are
    independent softmaxes over all key steps)."""

    def __init__(self, model, block: int = ATTENTION_BLOCK, fused: bool = True):
        super().__init__()
        self.model, self.block, self.fused = model, int(block), bool(fused)

    def forward(self, ecg, qrs_width=None):
        m = self.model
        h = m.pool(m.relu(m.conv1(ecg)))
        h = m.pool(m.relu(m.conv2(h)))                         # (B, E, L)
        x = h.transpose(1, 2)                                  # (B, L, E)
        mha = m.attention
        n_heads, embed = mha.num_heads, mha.embed_dim
        d = embed // n_heads
        q, k, v = torch.nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        b, length = x.shape[0], x.shape[1]
        if self.fused:
            o = _FusedAttention.apply(q, k, v, n_heads)
        else:
            q = q.reshape(b, length, n_heads, d).transpose(1, 2) * (d ** -0.5)   # (B, H, L, d)
            k = k.reshape(b, length, n_heads, d).transpose(1, 2)
            v = v.reshape(b, length, n_heads, d).transpose(1, 2)
            kt = k.transpose(-1, -2)
            blocks = [torch.softmax(q[:, :, s:s + self.block] @ kt, dim=-1) @ v
                      for s in range(0, length, self.block)]
            o = torch.cat(blocks, dim=2).transpose(1, 2).reshape(b, length, embed)
        o = mha.out_proj(o)                                    # (B, L, E)
        z = m.head_input(o.transpose(1, 2))                    # (B, E, L), as the model's permute(1, 2, 0)
        logits = m.fc2(m.dropout(m.relu(m.fc1(z))))
        if qrs_width is not None:                              # the qrs-width prior (second graph input)
            logits = m.with_prior(logits, ecg, qrs_width)
        return logits, torch.softmax(logits, dim=1)


class _Attention(nn.Module):
    """The head-averaged attention weights alone (convolutions + attention layer)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ecg):
        m = self.model
        h = m.pool(m.relu(m.conv1(ecg)))
        h = m.pool(m.relu(m.conv2(h))).permute(2, 0, 1)       # (L, B, E)
        _, weights = m.attention(h, h, h, need_weights=True, average_attn_weights=True)
        return weights


def load_onnx_weights(onnx_path, config=None):
    """An :class:`AttentionECGModel` holding the weights of an exported ``model.onnx`` (e.g. the bundled
    segments-abnormal), to re-export it or fine-tune it without its run folder."""
    import onnx
    from onnx import numpy_helper

    from .model import AttentionECGModel

    model = AttentionECGModel(config).eval()
    graph = onnx.load(str(onnx_path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state, used = {}, set()
    for qname in [n for n in inits if n.endswith("_int8")]:  # weight-only int8 (ecgcore.export.quantize)
        base = qname[:-5]
        q, scale = inits[qname].astype(np.float32), inits[f"{base}_scale"]
        axis = next((a.i for node in graph.node if node.op_type == "DequantizeLinear" and node.output[0] == base
                     for a in node.attribute if a.name == "axis"), 1)
        inits[base] = q * (scale.reshape(-1, 1) if axis == 0 else scale.reshape(1, -1))
    for name, tensor in model.state_dict().items():
        if name == "prior_coef":  # the qrs-width prior's coefficients live in the card beside the graph
            card_path = Path(onnx_path).with_name("model.json")
            prior = (json.loads(card_path.read_text()).get("preprocessing", {}).get("qrs_width", {}).get("prior")
                     if card_path.is_file() else None)
            if not prior:
                raise ValueError(f"{onnx_path}: a qrs-width prior model needs its card (model.json beside the graph, "
                                 "preprocessing.qrs_width.prior)")
            state[name] = torch.tensor([prior[k] for k in ("intercept", "slope", "mean_ms", "sd_ms")],
                                       dtype=torch.float32)
            continue
        arr = inits.get(f"model.{name}")
        if arr is None and name in ("attention.in_proj_weight", "attention.out_proj.weight"):
            # the TorchScript exporter stores these pre-transposed as anonymous MatMul operands
            key = next((k for k, a in inits.items() if k.startswith("onnx::MatMul") and k not in used
                        and a.shape == tuple(tensor.shape)[::-1]), None)
            if key is not None:
                used.add(key)
                arr = inits[key].T
        if arr is None or arr.shape != tuple(tensor.shape):
            raise ValueError(f"{onnx_path}: no weights for {name} {tuple(tensor.shape)} in this graph")
        state[name] = torch.from_numpy(np.array(arr, dtype=np.float32))  # a writable copy
    model.load_state_dict(state)
    return model


# ``ecgcore infer`` batches at most this many windows (``resources.max_batch``): larger batches were no faster and
# their resident memory grew (measured on the bundled model, 5 DS2 records through ``ecgcore infer``, 2 threads:
# batch 65 12.0 s / 504 MB peak RSS, batch 260 12.5 s / 1.06 GB; an export without the cap took all 22 DS2 records in
# 70.6 s at 1.18 GB peak, with it 49.0 s at 547 MB).
MAX_BATCH = 64
MAX_BATCH_WHY = ("5 DS2 records (103 105 111 113 117) through ecgcore infer, 2 threads: batch 65 (--max-memory 128) "
                 "12.0 s, peak RSS 504 MB; batch 260 (default budget) 12.5 s, 1.06 GB")


def export_graphs(model, out_dir, example: np.ndarray, atol: float = 1e-4, fused_attention: bool = True) -> float:
    """Write ``model.onnx`` (logits, probabilities) and ``attention.onnx`` into ``out_dir``; check both in
    onnxruntime against the PyTorch model (``nn.MultiheadAttention`` as trained) on ``example`` windows and
    return the largest absolute difference."""
    out_dir = Path(out_dir)
    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    with torch.no_grad():
        logits, attention = model(x, need_weights=True)
    expected = [logits.numpy(), torch.softmax(logits, dim=1).numpy()]
    feeds = graph_feeds(model, example)
    args = (x[:2],) + ((torch.from_numpy(feeds["qrs_width"][:2]),) if "qrs_width" in feeds else ())
    _to_onnx(_Exported(model, fused=fused_attention).eval(), args, out_dir / "model.onnx", OUTPUT_NAMES)
    worst = onnx_parity(out_dir / "model.onnx", feeds, expected, atol=atol)
    _to_onnx(_Attention(model).eval(), (x[:2],), out_dir / ATTENTION_FILE, (ATTENTION_OUTPUT,))
    worst_att = onnx_parity(out_dir / ATTENTION_FILE, {"ecg": example.astype(np.float32)}, [attention.numpy()],
                            atol=atol)
    return max(worst, worst_att)


def graph_feeds(model, x: np.ndarray) -> dict:
    """onnxruntime feeds of the logits graph for windows ``x`` (n, 1, 3600): ``ecg``, and ``qrs_width`` (n,) ms for a
    model with the qrs-width prior (measured as ``ecgcore infer`` measures it)."""
    feeds = {"ecg": np.ascontiguousarray(x, dtype=np.float32)}
    if model.config.prior == "qrs-width":
        feeds["qrs_width"] = model.measure_width(torch.from_numpy(feeds["ecg"])).numpy()
    return feeds


def _to_onnx(wrapper: nn.Module, example: tuple, path: Path, output_names) -> None:
    """Write the graph with the TorchScript-based exporter (dynamic batch axis), atomically; inputs ``ecg`` and,
    with a second example tensor, ``qrs_width``."""
    inputs = ["ecg", "qrs_width"][:len(example)]
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # The legacy exporter is deprecated in favour of dynamo; it handles MultiheadAttention's
        # weights output without a custom translation and gives one self-contained file.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, tuple(example), str(tmp), dynamo=False, input_names=inputs,
                          output_names=list(output_names), opset_version=17,
                          custom_opsets={"com.microsoft": 1} if getattr(wrapper, "fused", False) else None,
                          dynamic_axes={**{n: {0: "batch"} for n in inputs}, **{n: {0: "batch"} for n in output_names}})


def int8_parity(model, onnx_path, x: np.ndarray) -> dict:
    """How far the int8-weight graph's outputs are from PyTorch's (float weights) on windows ``x``."""
    import onnxruntime as ort

    with torch.no_grad():
        logits, _ = model.eval()(torch.from_numpy(np.ascontiguousarray(x, np.float32)), need_weights=False)
    want = [logits.numpy(), torch.softmax(logits, dim=1).numpy()]
    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, graph_feeds(model, x))
    return {"windows": int(len(x)), "max_abs_diff_logits": float(np.abs(got[0] - want[0]).max()),
            "max_abs_diff_probabilities": float(np.abs(got[1] - want[1]).max()),
            "same_class": float((got[1].argmax(1) == want[1].argmax(1)).mean())}


#: the card's words for how a qrs-width prior meets the network (``preprocessing.qrs_width.prior.rule``)
PRIOR_RULES = {
    "add": "Abnormal logit += intercept + slope * (width - mean_ms) / sd_ms (0 where the width is NaN)",
    "max": "P(Abnormal) = max(network, sigmoid(intercept + slope * (width - mean_ms) / sd_ms)), the prior's term 0 "
           "where the width is NaN; the graph's 'logits' output holds log-probabilities (their softmax is that pair)",
}

def check_windows_of(test, n: int) -> np.ndarray:
    """``n`` real test-split windows for the parity checks: spread over the split, both classes when present."""
    pick = np.unique(np.r_[np.flatnonzero(test.y == 1)[:n // 2], np.linspace(0, len(test) - 1, n).astype(int)])[:n]
    return np.ascontiguousarray(test.x[pick])


def quantize_checked(model, onnx_path, x: np.ndarray, min_elements: int = 1_000_000) -> dict | None:
    """Store the graph's large weights in int8 and measure it against PyTorch on ``x``; None (the float graph stays)
    when no weight has ``min_elements`` values (``head="pool"``)."""
    from ...export.quantize import quantize_weights

    try:
        int8 = quantize_weights(onnx_path, min_elements=min_elements)
    except ValueError:
        return None
    int8.update(int8_parity(model, onnx_path, x))
    return int8


def width_prior_card(model, extra: dict | None = None, rule_suffix: str = "") -> tuple[dict, dict]:
    """The card's ``inputs`` entry for ``qrs_width`` and its ``preprocessing["qrs_width"]`` for a model with the
    qrs-width prior (coefficients from the model; ``extra`` adds fields to ``prior``)."""
    a, b, mu, sd = (float(v) for v in model.prior_coef)
    section = {
        "function": "ecgcore.dsp.qrs.qrs_width", **WIDTH_OPTIONS,
        "prior": {"intercept": a, "slope": b, "mean_ms": mu, "sd_ms": sd, **(extra or {}),
                  "rule": PRIOR_RULES[model.config.prior_combine] + rule_suffix},
        "measured_on": "each model-input window exactly as the network receives it, at 360 Hz"}
    entry = {"name": "qrs_width", "shape": [None], "dtype": "float32",
             "description": "median QRS width of the window in ms (ecgcore.dsp.qrs.qrs_width, "
                            "preprocessing.qrs_width); NaN when the window has no complete beat"}
    return entry, section


#: what the card says for ``config.extra_train`` (a folder on the training machine)
EXTRA_PLACEHOLDER = "EXTRA (ecgcore preprocess segments-ptbxl PTBXL_DIR EXTRA)"


def _portable(command: str, config) -> str:
    """The training command with the extra_train folder (a path on the training machine) named ``EXTRA``."""
    return command.replace(config.extra_train, "EXTRA") if config.extra_train else command


def export(run_dir, out_dir=None, *, data_dir=None, check_windows: int = 8, name: str = BUNDLED_NAME,
           atol: float = 1e-4, command: str | None = None,
           note: str | None = None, int8_weights: bool = True, int8_min_elements: int = 1_000_000,
           fused_attention: bool = True) -> dict:
    """Export ``run_dir``'s best weights to ``out_dir/model.onnx`` + ``model.json`` (default ``out_dir = run_dir``).

    The parity check runs ``check_windows`` real test-split windows through PyTorch and onnxruntime and
    fails (``AssertionError``) when any output differs by more than ``atol`` (+ 1e-4 relative).
    ``command`` overrides the training command line recorded in the card (default: the run's own);
    ``note`` is stored as ``training.note`` (e.g. how far a capped training got and why).

    ``int8_weights``: after the float graph passed its check, store its large weights (at least
    ``int8_min_elements`` values: fc1, 57,600 × 128) in int8 (:func:`ecgcore.export.quantize.quantize_weights`:
    29.6 MB → 7.5 MB); the difference of the shipped graph from PyTorch on the check windows goes into the card
    (``metrics.onnx_int8``). Models without such a weight (``head="pool"``: fc1 is 128 × 128) stay float.

    ``fused_attention``: the logits graph computes its attention with onnxruntime's fused
    ``com.microsoft.MultiHeadAttention`` kernel (default; ~1.5x faster per window); ``False`` writes it in standard
    ONNX ops (blocks of 100 query steps) for other runtimes.

    Returns
    -------
    ``{"onnx", "attention_onnx", "card"}`` (paths), ``"model_card"`` (the :class:`ModelCard`) and
    ``"parity_max_abs_diff"`` (the largest absolute difference over the outputs of both graphs)
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model, saved = load_run(run_dir, "cpu")
    config = model.config
    data_dir = Path(data_dir or saved["data_dir"])
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}

    splits = config_splits(data_dir, config)
    test = splits["test"]
    if check_windows < 2:
        raise ValueError("check_windows must be at least 2 (a batch > 1 proves the dynamic axis)")
    # Windows spread over the test split, both classes when present: real inputs, not noise.
    x = check_windows_of(test, check_windows)
    onnx_path = out_dir / "model.onnx"
    worst = export_graphs(model, out_dir, x, atol=atol, fused_attention=fused_attention)
    int8 = quantize_checked(model, onnx_path, x, int8_min_elements) if int8_weights else None

    training = dict(metrics.get("training", {}))
    history = training.pop("history", [])
    splits = metrics.get("splits", saved.get("splits", {}))
    preprocessing = preprocessing_of(data_dir)
    fit = splits.get("train", {})
    if fit.get("segments") and fit.get("abnormal") is not None:
        decision = prior_decision([fit["segments"] - fit["abnormal"], fit["abnormal"]], tuple(config.classes),
                                  config.class_weight)
        if decision:
            preprocessing["decision"] = decision
            decision["card_metrics_at"] = ("the test/val figures below are the run's own, at argmax (0.5); "
                                           "`ecgcore infer` decides at this threshold")
            if config.extra_train:
                decision["counts_of"] = "the MIT-BIH training windows; the extra_train windows are not counted"
    inputs = [{"name": "ecg", "shape": [None, 1, config.input_length], "dtype": "float32"}]
    if config.prior == "qrs-width":
        entry, preprocessing["qrs_width"] = width_prior_card(
            model, {k: v for k, v in (metrics.get("prior") or {}).items() if k.startswith("windows")})
        inputs.append(entry)
    card = ModelCard(
        name=name, task="classification", framework="pytorch",
        inputs=inputs,
        outputs=[{"name": "logits", "shape": [None, config.n_classes], "dtype": "float32"},
                 {"name": "probabilities", "shape": [None, config.n_classes], "dtype": "float32"},
                 {"name": "attention", "shape": [None, config.seq_len, config.seq_len], "dtype": "float32",
                  "graph": ATTENTION_FILE}],
        fs=360.0, preprocessing=preprocessing, classes=list(config.classes),
        metrics={"protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
                 **{split: {k: v for k, v in metrics[split].items() if k != "records"}
                    for split in ("test", "val") if split in metrics},
                 "onnx_parity_max_abs_diff": worst, "onnx_parity_windows": int(len(x)),
                 **({"onnx_int8": int8} if int8 else {})},
        training={**training, "dataset": "MIT-BIH Arrhythmia Database (48 records, 360 Hz), `ecgcore preprocess segments`"
                  + (" + PTB-XL ECGs as extra training windows (`ecgcore preprocess segments-ptbxl`, see "
                     "config.extra_train)" if config.extra_train else ""),
                  "splits": splits,
                  **({"extra_train": metrics["extra_train"]} if metrics.get("extra_train") else {}),
                  "validation_history": history,
                  "command": _portable(command or saved.get("command") or "ecgcore train attention DATASET_DIR "
                                       f"RUN_DIR --protocol {config.protocol}", config),
                  **({"note": note} if note else {}),
                  "exported_with": f"torch {torch.__version__}, python {platform.python_version()}, {sys.platform}"},
        config={**config.to_dict(), **({"extra_train": EXTRA_PLACEHOLDER} if config.extra_train else {})},
        resources={"max_batch": MAX_BATCH, "max_batch_why": MAX_BATCH_WHY},
        description=("CNN + 8-head self-attention Normal/Abnormal classifier of 10 s MIT-BIH lead-0 windows "
                     "(seed: Al-Khlewee/attention-based-ecg-classifier, SPEC §3). Abnormal = more abnormal beat "
                     "symbols than normal ones in the window. Input: one standardised 3600-sample window "
                     "(0.5-50 Hz order-5 zero-phase band-pass, per-window z-score). Outputs: logits, softmax "
                     "probabilities [Normal, Abnormal]; the head-averaged attention (900 x 900, rows = query steps, "
                     "one step = 4 samples) comes from the second graph attention.onnx, on request."),
    )
    write_card(card, out_dir / "model.json")
    return {"onnx": onnx_path, "attention_onnx": out_dir / ATTENTION_FILE, "card": out_dir / "model.json",
            "model_card": card, "parity_max_abs_diff": worst, "int8": int8}
