"""HuBERT-ECG architecture sizes (SPEC 5.4) and training settings, as framework-free dataclasses."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .._config import ConfigMixin
from .._config import config_kwargs

# Conv feature encoders for the three input rates; each maps 5 s of 12 leads to 93 tokens.
CONV_LAYOUTS = {
    100: ((10, 3, 3, 2, 2), (4, 2, 2, 2, 2)),                     # downsampling_factor 5: 6000 -> 93
    500: ((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)),         # wav2vec2 default: 30000 -> 93
    50: ((10, 3, 3, 2), (4, 2, 2, 2)),                            # downsampling_factor 10: 3000 -> 93
}


@dataclass
class HubertConfig:
    """One HuBERT-ECG encoder.

    Attributes
    ----------
    hidden_size, num_layers, num_heads, intermediate_size : transformer sizes.
    proj_size : pretraining projection (``final_proj``) and label-embedding width.
    conv_dim : channels of every conv layer of the feature encoder (512 in the seed; TINY uses fewer so CPU
        training is feasible).
    input_fs : 100, 500 or 50 Hz; selects the conv kernels/strides (``CONV_LAYOUTS``).
    n_leads : leads flattened into the input (the input has ``n_leads * 5 * input_fs`` samples).
    dropout : hidden/attention/activation/final dropout (0.1 + 0.05 * model_dropout_mult in the seed).
    feat_proj_dropout : dropout after the feature projection.
    layerdrop : probability of skipping a transformer layer in training.
    pos_conv_kernel, pos_conv_groups : the positional convolution (128, 16).
    vocab_sizes : one k-means vocabulary per pretraining target (ensemble).
    mask_prob, mask_length, min_masks : time masking in pretraining (0.33, 1, 2).
    """

    hidden_size: int = 512
    num_layers: int = 8
    num_heads: int = 8
    intermediate_size: int = 2048
    proj_size: int = 256
    conv_dim: int = 512
    input_fs: int = 100
    n_leads: int = 12
    dropout: float = 0.1
    feat_proj_dropout: float = 0.0
    layerdrop: float = 0.1
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_eps: float = 1e-5
    vocab_sizes: list[int] = field(default_factory=lambda: [100])
    mask_prob: float = 0.33
    mask_length: int = 1
    min_masks: int = 2
    size: str = "small"

    def __post_init__(self):
        if self.input_fs not in CONV_LAYOUTS:
            raise ValueError(f"input_fs must be one of {sorted(CONV_LAYOUTS)}, got {self.input_fs}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.hidden_size % self.pos_conv_groups:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of pos_conv_groups {self.pos_conv_groups}")

    @property
    def conv_kernels(self) -> tuple[int, ...]:
        return CONV_LAYOUTS[self.input_fs][0]

    @property
    def conv_strides(self) -> tuple[int, ...]:
        return CONV_LAYOUTS[self.input_fs][1]

    @property
    def input_samples(self) -> int:
        return self.n_leads * 5 * self.input_fs

    def n_tokens(self, n_samples: int | None = None) -> int:
        n = self.input_samples if n_samples is None else n_samples
        for k, s in zip(self.conv_kernels, self.conv_strides):
            n = (n - k) // s + 1
        return n

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HubertConfig":
        return cls(**config_kwargs(cls, d, strict=False))

    @classmethod
    def from_size(cls, size: str, **overrides) -> "HubertConfig":
        key = size.lower()
        if key not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
        return cls(**{**SIZES[key], "size": key, **overrides})


# SPEC 5.4 (SMALL ~30.3 M, BASE ~92.9 M, LARGE ~189 M parameters with conv_dim 512); TINY is ecgcore's CPU size.
SIZES: dict[str, dict] = {
    "tiny": dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128, proj_size=32, conv_dim=64,
                 layerdrop=0.0),
    "small": dict(hidden_size=512, num_layers=8, num_heads=8, intermediate_size=2048, proj_size=256, layerdrop=0.1),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072, proj_size=256, layerdrop=0.1),
    "large": dict(hidden_size=960, num_layers=16, num_heads=12, intermediate_size=3840, proj_size=512, layerdrop=0.0),
}


STAGES = ("pretrain", "finetune")


@dataclass
class HubertTrainConfig(ConfigMixin):
    """Every setting of a HuBERT-ECG training run; ``stage`` picks masked-prediction pretraining (SPEC 5.5) or
    fine-tuning (SPEC 5.6). Fields left ``None`` take the stage's seed default (noted per field).

    Attributes
    ----------
    stage : ``"pretrain"`` or ``"finetune"``.
    size : encoder size when not starting from ``init`` (``tiny``, ``small``, ``base``, ``large``).
    model : :class:`HubertConfig` overrides for a new encoder (e.g. ``{"input_fs": 100, "mask_prob": 0.33}``).
    init : a previous iteration's / the pretraining's checkpoint (or a Hugging Face folder); None: random init.
    labels_dirs, vocab_sizes, alpha : pretraining targets — one ``hubert-labels`` folder per k-means model, their k
        (default 1 + the largest label), the weight of the masked cross-entropy (1 − alpha: unmasked).
    task, labels_csv, head, head_hidden, activation, use_loss_weights, unfreeze_conv, blocks, linear_probe,
    freezing_steps, random_crop, dropout : fine-tuning task and head, as ``ecgcore train hubert finetune --help``.
    max_steps, batch_size, lr, weight_decay, warmup : optimisation (lr: 5e-5 pretraining, 1e-5 fine-tuning).
    val_every : steps between validations (100 pretraining, 50 fine-tuning).
    patience : validations without improvement before stopping (10 pretraining, 8 fine-tuning; 0 = never).
    time_limit_s : wall-clock budget of one session (the run resumes).
    seed, threads : random seed; torch CPU threads.
    limit : pretraining on the first N records only (tests).
    """

    stage: str = "finetune"
    size: str = "tiny"
    model: dict = field(default_factory=dict)
    init: str | None = None
    labels_dirs: list = field(default_factory=list)
    vocab_sizes: list | None = None
    alpha: float = 1.0
    task: str = "auto"
    labels_csv: str | None = None
    head: str = "linear"
    head_hidden: int = 256
    activation: str = "tanh"
    use_loss_weights: bool = True
    unfreeze_conv: bool = False
    blocks: int = -1
    linear_probe: bool = False
    freezing_steps: int = 0
    random_crop: bool = False
    dropout: float | None = None
    max_steps: int = 1000
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.01
    warmup: float = 0.08
    val_every: int | None = None
    patience: int | None = None
    time_limit_s: float | None = None
    seed: int = 42
    threads: int | None = 1
    limit: int | None = None

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        pre = self.stage == "pretrain"
        if self.lr is None:
            self.lr = 5e-5 if pre else 1e-5
        if self.val_every is None:
            self.val_every = 100 if pre else 50
        if self.patience is None:
            self.patience = 10 if pre else 8
        self.labels_dirs = [str(d) for d in self.labels_dirs]
        if self.init is not None:
            self.init = str(self.init)
        if self.labels_csv is not None:
            self.labels_csv = str(self.labels_csv)
