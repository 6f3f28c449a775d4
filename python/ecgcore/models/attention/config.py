"""Configuration of the attention classifier, with the seed's defaults (SPEC §3.2-3.3)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from .._config import config_kwargs

PROTOCOLS = ("inter-patient", "leaky")


@dataclass
class AttentionConfig:
    """Architecture and training settings of :class:`AttentionECGModel`.

    The defaults are the seed's (AEC ``config.py``, ``models/attention_ecg_model.py``, ``main.py``):
    3600-sample windows, Conv 32/64 (k 5) + MaxPool 2 twice, 8-head attention over 900 steps,
    FC 128 → 2 with dropout 0.5; batch 32, up to 100 epochs, Adam 1e-3 (weight decay 1e-5),
    ReduceLROnPlateau(patience 5, factor 0.5) and early stopping (patience 10) on validation loss, seed 42.

    Additions (not in the seed): ``protocol`` (``"inter-patient"``: train/validate on DS1 records,
    test on DS2; ``"leaky"``: the seed's random segment split 0.2 / 0.2), ``val_records`` (how many DS1
    records the inter-patient protocol holds out for validation), ``max_steps`` / ``wall_cap_s`` (stop
    early on a budget), ``num_threads``.
    """

    input_length: int = 3600
    conv_channels: tuple[int, int] = (32, 64)
    kernel_size: int = 5
    num_heads: int = 8
    fc_hidden: int = 128
    dropout: float = 0.5
    num_classes: int = 2
    classes: tuple[str, ...] = ("Normal", "Abnormal")

    batch_size: int = 32
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stopping_patience: int = 10
    seed: int = 42

    protocol: str = "inter-patient"
    test_size: float = 0.2
    val_size: float = 0.2
    val_records: int = 4
    max_steps: int | None = None
    wall_cap_s: float | None = None
    num_threads: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.input_length % 4:
            raise ValueError(f"input_length must be a multiple of 4 (two MaxPool(2)), got {self.input_length}")
        if self.conv_channels[-1] % self.num_heads:
            raise ValueError(f"embed dim {self.conv_channels[-1]} is not divisible by num_heads {self.num_heads}")
        if len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for num_classes={self.num_classes}")
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        self.classes = tuple(self.classes)

    @property
    def seq_len(self) -> int:
        """Attention sequence length after the two pools (900 for 3600 samples)."""
        return self.input_length // 4

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AttentionConfig":
        return cls(**config_kwargs(cls, d))

    def replace(self, **changes) -> "AttentionConfig":
        return dataclasses.replace(self, **changes)
