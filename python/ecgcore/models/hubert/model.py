"""HuBERT-ECG (SPEC 5.4) as plain PyTorch modules with Hugging Face ``HubertModel`` parameter names.

The module tree mirrors HF's (``feature_extractor.conv_layers.{i}.conv``, ``feature_projection``,
``encoder.pos_conv_embed``, ``encoder.layers.{i}.attention.q_proj`` ...), so a HuBERT-ECG checkpoint saved from
the seed (or from the Hugging Face hub) loads with :func:`load_pretrained` after the weight-norm key rename.
Attention is written out (matmul + softmax) so the ONNX export is plain opset operators.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import HubertConfig

__all__ = ["HubertECG", "HubertForPretraining", "HubertClassifier", "compute_mask", "load_pretrained",
           "rename_weight_norm"]


class _ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, s: int, group_norm: bool):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, stride=s, bias=False)
        # HF names the first layer's GroupNorm (one group per channel) "layer_norm".
        self.layer_norm = nn.GroupNorm(c_out, c_out, affine=True) if group_norm else None

    def forward(self, x):
        x = self.conv(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        layers, c_in = [], 1
        for i, (k, s) in enumerate(zip(cfg.conv_kernels, cfg.conv_strides)):
            layers.append(_ConvLayer(c_in, cfg.conv_dim, k, s, group_norm=(i == 0)))
            c_in = cfg.conv_dim
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, x):  # (B, L) -> (B, C, T)
        x = x[:, None, :]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.layer_norm = nn.LayerNorm(cfg.conv_dim, eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim, cfg.hidden_size)
        self.dropout = nn.Dropout(cfg.feat_proj_dropout)

    def forward(self, x):
        return self.dropout(self.projection(self.layer_norm(x)))


class PositionalConv(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        k = cfg.pos_conv_kernel
        conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, k, padding=k // 2, groups=cfg.pos_conv_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if k % 2 == 0 else 0  # HF's SamePad layer drops the extra step of an even kernel

    def forward(self, x):  # (B, T, H)
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, :-self.trim]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        h = cfg.hidden_size
        self.heads, self.head_dim = cfg.num_heads, h // cfg.num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(h, h) for _ in range(4))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, key_padding=None):  # (B, T, H); key_padding (B, T) True = padded
        B, T, H = x.shape

        def split(t):
            return t.reshape(B, T, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x)) * (self.head_dim ** -0.5)
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        w = q @ k.transpose(-1, -2)
        if key_padding is not None:
            w = w.masked_fill(key_padding[:, None, None, :], torch.finfo(w.dtype).min)
        w = self.dropout(torch.softmax(w, dim=-1))
        return self.out_proj((w @ v).transpose(1, 2).reshape(B, T, H))


class FeedForward(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.intermediate_dropout = nn.Dropout(cfg.dropout)
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.output_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.output_dropout(self.output_dense(self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))))


class EncoderLayer(nn.Module):
    """Post-LN transformer block (HF ``HubertEncoderLayer``, ``do_stable_layer_norm=False``)."""

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x, key_padding=None):
        x = self.layer_norm(x + self.dropout(self.attention(x, key_padding)))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.pos_conv_embed = PositionalConv(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_layers))
        self.layerdrop = cfg.layerdrop

    def forward(self, x, key_padding=None, output_layer: int | None = None):
        """Hidden states; ``output_layer`` i stops after layer i (0 = the input to layer 1, HF indexing)."""
        if key_padding is not None:
            x = x.masked_fill(key_padding[..., None], 0.0)
        x = self.dropout(self.layer_norm(x + self.pos_conv_embed(x)))
        if output_layer == 0:
            return x
        for i, layer in enumerate(self.layers, start=1):
            if not (self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop):
                x = layer(x, key_padding)
            if output_layer == i:
                return x
        return x


class HubertECG(nn.Module):
    """The encoder: (B, n_leads * 5 * fs) -> (B, 93, hidden) token states.

    Parameters of ``forward``
    -------------------------
    x : (B, L) float input (lead-major, see :mod:`ecgcore.models.hubert.inputs`).
    mask : (B, T) bool, tokens replaced by ``masked_spec_embed`` (pretraining), or None.
    output_layer : stop after this transformer layer (HF ``hidden_states`` index), or None for the last.
    """

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.config = cfg
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_projection = FeatureProjection(cfg)
        self.masked_spec_embed = nn.Parameter(torch.empty(cfg.hidden_size).uniform_())
        self.encoder = Encoder(cfg)

    def forward(self, x, mask=None, output_layer: int | None = None):
        h = self.feature_projection(self.feature_extractor(x).transpose(1, 2))
        if mask is not None:
            h = torch.where(mask[..., None], self.masked_spec_embed.to(h.dtype), h)
        return self.encoder(h, output_layer=output_layer)


def compute_mask(batch: int, n_tokens: int, *, prob: float = 0.33, length: int = 1, min_masks: int = 2,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Time masks as HF ``_compute_mask_indices`` draws them: ``int(prob * T / length + U[0,1))`` spans of
    ``length`` tokens per row (at least ``min_masks``), span starts without replacement -> (B, T) bool.
    With the seed's prob 0.33, length 1 and T 93, about 31 tokens are masked."""
    mask = torch.zeros(batch, n_tokens, dtype=torch.bool)
    n_starts = n_tokens - length + 1
    for b in range(batch):
        u = torch.rand((), generator=generator).item()
        n = max(min_masks, int(prob * n_tokens / length + u))
        n = min(n, n_starts)
        starts = torch.randperm(n_starts, generator=generator)[:n]
        for o in range(length):
            mask[b, starts + o] = True
    return mask


class HubertForPretraining(nn.Module):
    """Encoder + one (``final_proj``, ``label_embedding``) head per k-means model; logits = cos / 0.1."""

    temperature = 0.1

    def __init__(self, cfg: HubertConfig):
        super().__init__()
        self.hubert_ecg = HubertECG(cfg)
        self.final_proj = nn.ModuleList(nn.Linear(cfg.hidden_size, cfg.proj_size) for _ in cfg.vocab_sizes)
        self.label_embedding = nn.ModuleList(nn.Embedding(v, cfg.proj_size) for v in cfg.vocab_sizes)

    def forward(self, x, mask=None):
        """-> list of (B, T, V_m) logits, one per ensemble member."""
        h = self.hubert_ecg(x, mask=mask)
        out = []
        for proj, emb in zip(self.final_proj, self.label_embedding):
            p = F.normalize(proj(h), dim=-1)
            e = F.normalize(emb.weight, dim=-1)
            out.append(p @ e.t() / self.temperature)
        return out

    def new_vocab(self, vocab_sizes: list[int]) -> None:
        """Fresh label embeddings/projections for the next iteration's vocabularies."""
        cfg = self.hubert_ecg.config
        cfg.vocab_sizes = list(vocab_sizes)
        self.final_proj = nn.ModuleList(nn.Linear(cfg.hidden_size, cfg.proj_size) for _ in vocab_sizes)
        self.label_embedding = nn.ModuleList(nn.Embedding(v, cfg.proj_size) for v in vocab_sizes)


class HubertClassifier(nn.Module):
    """Mean-pooled tokens -> Dropout(0.1) -> Linear or MLP head (SPEC 5.6); returns logits (B, n_labels)."""

    def __init__(self, cfg: HubertConfig, n_labels: int, *, head: str = "linear", head_hidden: int = 256,
                 activation: str = "tanh", head_dropout: float = 0.1):
        super().__init__()
        self.hubert_ecg = HubertECG(cfg)
        self.dropout = nn.Dropout(head_dropout)
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}
        if head == "linear":
            self.classifier = nn.Linear(cfg.hidden_size, n_labels)
        elif head == "mlp":
            if activation not in acts:
                raise ValueError(f"activation must be one of {', '.join(acts)}, got {activation!r}")
            self.classifier = nn.Sequential(nn.Linear(cfg.hidden_size, head_hidden), acts[activation](),
                                            nn.Linear(head_hidden, n_labels))
        else:
            raise ValueError(f"head must be 'linear' or 'mlp', got {head!r}")

    def forward(self, x):
        return self.classifier(self.dropout(self.hubert_ecg(x).mean(dim=1)))


class ProbabilityModel(nn.Module):
    """What is exported: sigmoid (multi-label) or softmax (multi-class) of the classifier's logits."""

    def __init__(self, clf: HubertClassifier, multi_class: bool = False):
        super().__init__()
        self.clf, self.multi_class = clf, multi_class

    def forward(self, x):
        z = self.clf(x)
        return torch.softmax(z, dim=-1) if self.multi_class else torch.sigmoid(z)


# ------------------------------------------------------------------------------------------------- checkpoints

def rename_weight_norm(state: dict, target_keys) -> dict:
    """Map ``weight_g``/``weight_v`` <-> ``parametrizations.weight.original0/1`` to whatever ``target_keys`` uses
    (old torch ``weight_norm`` vs the parametrization API; HuBERT-ECG issue #3)."""
    target_keys = set(target_keys)
    out = {}
    for k, v in state.items():
        alt = k
        if k.endswith(".weight_g"):
            alt = k[: -len("weight_g")] + "parametrizations.weight.original0"
        elif k.endswith(".weight_v"):
            alt = k[: -len("weight_v")] + "parametrizations.weight.original1"
        elif k.endswith(".parametrizations.weight.original0"):
            alt = k[: -len("parametrizations.weight.original0")] + "weight_g"
        elif k.endswith(".parametrizations.weight.original1"):
            alt = k[: -len("parametrizations.weight.original1")] + "weight_v"
        out[alt if (k not in target_keys and alt in target_keys) else k] = v
    return out


def _hf_config(d: dict, input_fs: int | None) -> HubertConfig:
    kernels = tuple(d.get("conv_kernel", (10, 3, 3, 3, 3, 2, 2)))
    from .config import CONV_LAYOUTS

    fs = input_fs or next((f for f, (k, _) in CONV_LAYOUTS.items() if tuple(k) == kernels), 500)
    conv_dim = d.get("conv_dim", [512])
    return HubertConfig(hidden_size=d.get("hidden_size", 768), num_layers=d.get("num_hidden_layers", 12),
                        num_heads=d.get("num_attention_heads", 12), intermediate_size=d.get("intermediate_size", 3072),
                        proj_size=d.get("classifier_proj_size", 256), conv_dim=int(conv_dim[0]), input_fs=fs,
                        dropout=d.get("hidden_dropout", 0.1), layerdrop=d.get("layerdrop", 0.1),
                        pos_conv_kernel=d.get("num_conv_pos_embeddings", 128),
                        pos_conv_groups=d.get("num_conv_pos_embedding_groups", 16),
                        layer_norm_eps=d.get("layer_norm_eps", 1e-5),
                        vocab_sizes=list(d.get("vocab_sizes", [100])), size="hf")


def load_pretrained(path, *, input_fs: int | None = None) -> HubertForPretraining:
    """A HuBERT-ECG encoder from a local checkpoint.

    ``path`` is an ecgcore pretraining checkpoint (``.pt``), a seed checkpoint (``.pt`` with ``model_config`` and
    ``model_state_dict``), or a Hugging Face folder (``config.json`` + ``pytorch_model.bin`` or ``model.safetensors``).
    Keys prefixed ``hubert_ecg.``/``hubert.`` or bare HF ``HubertModel`` keys are accepted; weight-norm keys of either
    naming are renamed. Missing heads (a fine-tuned checkpoint has no ``label_embedding``) keep their random init.
    """
    import json

    path = Path(path)
    if path.is_dir():
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{path}: no config.json (expected a Hugging Face model folder)")
        cfg = _hf_config(json.loads(cfg_file.read_text()), input_fs)
        if (path / "model.safetensors").is_file():
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise ValueError(f"{path}/model.safetensors needs the 'safetensors' package") from None
            state = load_file(str(path / "model.safetensors"))
        elif (path / "pytorch_model.bin").is_file():
            state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise FileNotFoundError(f"{path}: neither model.safetensors nor pytorch_model.bin")
    else:
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        ck = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(ck, dict) or "model_state_dict" not in ck:
            raise ValueError(f"{path}: not a HuBERT-ECG checkpoint (no model_state_dict)")
        mc = ck.get("model_config")
        if isinstance(mc, dict) and "hidden_size" in mc and "num_layers" in mc:
            cfg = HubertConfig.from_dict(mc)
        elif mc is not None:
            cfg = _hf_config(mc if isinstance(mc, dict) else mc.to_dict(), input_fs)
        else:
            raise ValueError(f"{path}: checkpoint has no model_config")
        state = ck["model_state_dict"]
    model = HubertForPretraining(cfg)
    target = model.state_dict().keys()
    fixed = {}
    for k, v in state.items():
        if k.startswith("hubert."):
            k = "hubert_ecg." + k[len("hubert."):]
        elif not k.startswith(("hubert_ecg.", "final_proj", "label_embedding")):
            k = "hubert_ecg." + k
        fixed[k] = v
    fixed = rename_weight_norm(fixed, target)
    fixed = {k: v for k, v in fixed.items() if k in target}
    enc_keys = [k for k in target if k.startswith("hubert_ecg.")]
    missing = [k for k in enc_keys if k not in fixed]
    if missing:
        raise ValueError(f"{path}: encoder weights missing from the checkpoint: {', '.join(missing[:5])}"
                         + (" ..." if len(missing) > 5 else ""))
    model.load_state_dict(fixed, strict=False)
    return model


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)

