"""An exported denoiser's weights back into a PyTorch Attention U-Net (to start a training from a shipped model).

The export folds every BatchNorm into the convolution before it (``W' = W·γ/σ``, ``b' = (b − μ)·γ/σ + β``) and may
store large weights as int8 with a per-channel scale (``DequantizeLinear``). The folded graph has no BatchNorm left,
so :func:`state_from_onnx` gives each convolution its folded weight and makes the BatchNorm after it an identity
that carries the folded bias (γ = 1, β = b', running mean 0, running variance 1 − ε): in eval mode the network
computes what the graph computes. Trained on, those BatchNorms must stay in eval mode (:func:`freeze_batchnorm`):
batch statistics would replace the identity.

A graph with a global-context block (``context="attention"``) keeps that block's LayerNorm weights and Linear biases
under their names; each Linear weight is the (transposed, possibly int8) second input of the ``MatMul`` whose output
the bias is added to, and is read from there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .model import AttentionUNet

__all__ = ["state_from_onnx", "freeze_batchnorm", "model_from_export", "export_graph", "export_context",
           "init_training"]


def _initializers(onnx_path: Path, m=None) -> dict[str, np.ndarray]:
    """Every float tensor the graph holds under its name, int8 weights dequantized as the graph does."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path)) if m is None else m
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = {k: v.astype(np.float32) for k, v in init.items() if v.dtype == np.float32}
    for node in m.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        q, scale = init[node.input[0]].astype(np.float32), init[node.input[1]].astype(np.float32)
        zero = init[node.input[2]].astype(np.float32) if len(node.input) > 2 and node.input[2] else np.zeros_like(scale)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.ndim:
            shape[axis] = -1
        out[node.output[0]] = (q - zero.reshape(shape)) * scale.reshape(shape)
    return out


def _linear_weights(m, w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"context.<linear>.weight": (out, in)}`` for every ``Add(MatMul(x, W), "context.<linear>.bias")`` of the
    graph ``m`` (the global-context block's Linear layers as the exporter writes them)."""
    made_by = {o: node for node in m.graph.node for o in node.output}
    out = {}
    for node in m.graph.node:
        if node.op_type != "Add":
            continue
        bias = next((i for i in node.input if i.startswith("context.") and i.endswith(".bias") and i in w), None)
        other = next((i for i in node.input if i != bias), None)
        mm = made_by.get(other) if bias else None
        if mm is not None and mm.op_type == "MatMul" and mm.input[1] in w:
            name = bias[: -len(".bias")] + ".weight"
            if name in out:
                raise ValueError(f"two MatMul weights for {name!r}")
            out[name] = w[mm.input[1]].T
    return out


def state_from_onnx(onnx_path, base_channels: int = 32, context: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of an :class:`AttentionUNet` (seed form, or with its ``context`` block when the graph has one)
    computing what the exported graph ``onnx_path`` computes (module doc); ``ValueError`` naming the first tensor the
    graph lacks or holds in another shape. ``context`` (the card's, when known): the block the graph must hold
    (``""``: none); a graph that differs is refused rather than read as the other form."""
    import onnx

    onnx_path = Path(onnx_path)
    graph = onnx.load(str(onnx_path))
    w = _initializers(onnx_path, graph)
    found = "attention" if any(k.startswith("context.") for k in w) else ""
    if context is not None and context != found:
        raise ValueError(f"{onnx_path}: its card says context={context!r}, its graph "
                         f"{'holds a' if found else 'has no'} global-context block")
    linear = _linear_weights(graph, w) if found else {}
    model = AttentionUNet(base_channels, context=found)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = dict(model.named_modules())

    def take(name: str, shape) -> torch.Tensor:
        if name not in w:
            raise ValueError(f"{onnx_path}: no tensor {name!r}; not an exported Attention U-Net of base width "
                             f"{base_channels}")
        if tuple(w[name].shape) != tuple(shape):
            raise ValueError(f"{onnx_path}: {name!r} has shape {tuple(w[name].shape)}, the network's is {tuple(shape)}")
        return torch.from_numpy(np.ascontiguousarray(w[name]))

    for name, mod in modules.items():
        if not isinstance(mod, (nn.Conv1d, nn.ConvTranspose1d)):
            continue
        parent, _, idx = name.rpartition(".")
        bn_name = f"{parent}.{int(idx) + 1}" if idx.isdigit() else None
        bn = modules.get(bn_name) if bn_name else None
        state[f"{name}.weight"] = take(f"{name}.weight", mod.weight.shape)
        if isinstance(bn, nn.BatchNorm1d):  # folded: the conv's own bias is inside the folded one
            # the folded bias keeps the conv's bias name, or is named after its weight where the conv had none
            # (or an all-zero one, which the exporter drops)
            bias = take(f"{name}.bias" if mod.bias is not None and f"{name}.bias" in w else f"{name}.weight_bias",
                        (bn.num_features,))
            if mod.bias is not None:
                state[f"{name}.bias"] = torch.zeros_like(mod.bias)
            state[f"{bn_name}.weight"] = torch.ones(bn.num_features)
            state[f"{bn_name}.bias"] = bias
            state[f"{bn_name}.running_mean"] = torch.zeros(bn.num_features)
            state[f"{bn_name}.running_var"] = torch.full((bn.num_features,), 1.0 - bn.eps)
        elif mod.bias is not None:
            state[f"{name}.bias"] = take(f"{name}.bias", mod.bias.shape)
    for name, mod in modules.items():  # the context block: LayerNorms under their names, Linears via their MatMul
        if name.startswith("context.") and isinstance(mod, (nn.Linear, nn.LayerNorm)):
            if isinstance(mod, nn.Linear):
                if f"{name}.weight" not in linear:  # never a same-named tensor of unknown orientation
                    raise ValueError(f"{onnx_path}: no MatMul feeding {name}.bias; not an exported global-context block")
                state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(linear[f"{name}.weight"]))
                if tuple(state[f"{name}.weight"].shape) != tuple(mod.weight.shape):
                    raise ValueError(f"{onnx_path}: {name}.weight has shape {tuple(state[f'{name}.weight'].shape)}, "
                                     f"the network's is {tuple(mod.weight.shape)}")
            else:
                state[f"{name}.weight"] = take(f"{name}.weight", mod.weight.shape)
            state[f"{name}.bias"] = take(f"{name}.bias", mod.bias.shape)
    return state


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``model`` in eval mode (running statistics fixed; γ and β still train)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def export_graph(model="denoiser", base_channels: int | None = None) -> Path:
    """The graph of an exported denoiser (a bundled name, a model folder or an ``.onnx`` path; seed form, with or
    without the global-context block), checked by its card: a denoise-pairs model, not residual (its graph adds the
    input), of width ``base_channels`` when given; ``ValueError`` naming what does not fit."""
    from ...export import resolve_model

    onnx_path, card = resolve_model(model)
    if (card.preprocessing or {}).get("kind") != "denoise-pairs":
        raise ValueError(f"{model}: not a denoiser (preprocessing {(card.preprocessing or {}).get('kind')!r})")
    cfg = card.config or {}
    if cfg.get("residual"):
        raise ValueError(f"{model}: a residual denoiser; its graph adds the input, the seed form cannot hold it")
    width = int(cfg.get("base_channels", 32))
    if base_channels is not None and width != int(base_channels):
        raise ValueError(f"{model}: base width {width}, the run's is {base_channels}")
    return Path(onnx_path)


def model_from_export(model="denoiser") -> tuple[AttentionUNet, Path]:
    """(eval-mode network with an exported denoiser's weights, its graph's path); ``model`` as :func:`export_graph`."""
    from ...export import resolve_model

    onnx_path = export_graph(model)
    cfg = resolve_model(model)[1].config or {}
    width, context = int(cfg.get("base_channels", 32)), str(cfg.get("context", ""))
    net = AttentionUNet(width, context=context)
    net.load_state_dict(state_from_onnx(onnx_path, width, context=context))
    return net.eval(), onnx_path


def init_training(model="denoiser") -> dict:
    """What the weights a run starts from cost, from their card (``model`` as :func:`export_graph`): the model's
    name, the steps, training time, command and learning curve of its own training, and ``total_elapsed_s``, its training time plus
    that of every model it started from in turn (a card without a training record counts 0 s)."""
    from ...export import resolve_model

    card = resolve_model(model)[1]
    tr = card.training or {}
    own = float(tr.get("elapsed_s") or 0.0)
    parent = tr.get("init_training") or {}
    return {"model": public_model_name(model), "version": card.version, "steps": tr.get("steps"), "epochs_done": tr.get("epochs_done"),
            "best_val_loss": tr.get("best_val_loss"), "elapsed_s": own, "command": tr.get("command"),
            "init_from": tr.get("init_from"), "learning_curve": tr.get("learning_curve"),
            "total_elapsed_s": round(own + float(parent.get("total_elapsed_s") or 0.0), 1)}


def export_context(model="denoiser") -> str:
    """The ``context`` an exported denoiser's card records (``""``: seed form, also for cards older than the option)."""
    from ...export import resolve_model

    return str((resolve_model(model)[1].config or {}).get("context", ""))


def public_model_name(model) -> str:
    """How a card names a starting model without this machine's paths: a bundled name as it is, a folder or an
    ``.onnx`` path by its folder's name."""
    name = str(model)
    if "/" in name or "\\" in name:
        p = Path(name)
        name = p.parent.name if p.suffix == ".onnx" else p.name
    return name
