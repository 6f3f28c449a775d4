"""HeartID hyperparameters: the seed's values (SPEC §1.2, §1.5) plus the data protocol of this rebuild."""
from __future__ import annotations

from dataclasses import dataclass

from .._config import ConfigMixin, config_kwargs


@dataclass
class HeartIDConfig(ConfigMixin):
    """Network, loss, optimiser and protocol settings.

    The seed trained 10 epochs of random batches; here an "epoch" is ``steps_per_epoch`` batches of triplets
    drawn from the training subjects, and ``time_limit_s`` caps the wall clock of the whole run (resumable).
    """

    input_size: int = 1000
    key_size: int = 100
    num_kernels: int = 24
    kernel_sizes: tuple[int, int, int] = (192, 96, 64)
    embedding_size: int = 100
    # the unit-norm key enters the dense layer multiplied by this factor (1 = the seed). With unit keys the key's
    # offset W_k (k1 - k2) starts ~100x smaller than the identity spread of the un-normalised dB features, and
    # AdamW at lr 1e-3 needs thousands of steps before SecureTL can make it dominate (see train.py)
    key_scale: float = 1.0
    # standardise the 501 dB STFT features with per-bin training statistics (subject-balanced mean and std,
    # filled in by train.py). Off in the seed: its raw dB values (+-50) dwarf the conv features and the key.
    standardize_spectrum: bool = False
    spectrum_mean: list | None = None
    spectrum_std: list | None = None
    # optimiser: mlx.optimizers.AdamW defaults as the seed used them
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    epochs: int = 10
    batch_size: int = 32
    steps_per_epoch: int = 100
    margin: float = 1.0
    loss: str = "securetl"  # "securetl" (original SecureTL, cancelable) or "heartid" (the seed's 4-term loss)
    seed: int = 0
    time_limit_s: float | None = None
    # early stopping: epochs without a lower validation EER (0 = train every epoch, as the seed)
    patience: int = 0
    # protocol: subject-disjoint split fractions per database (rest is training)
    test_fraction: float = 0.3
    val_fraction: float = 0.1
    score: str = "euclidean"  # "euclidean" (the loss's metric) or "cosine"; used for validation/model selection
    probe_windows: int = 7  # windows per probe (7 x 5 s, stride 2.5 s = one 20 s ECG-ID record)

    def __post_init__(self):
        if self.loss not in ("securetl", "heartid"):
            raise ValueError(f"loss must be 'securetl' or 'heartid', got {self.loss!r}")
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        self.betas = tuple(float(b) for b in self.betas)

    @property
    def n_features(self) -> int:
        """Width of the dense layer's input: 3 x num_kernels + n_fft/2 + 1 STFT bins + key (673 for the seed)."""
        return len(self.kernel_sizes) * self.num_kernels + self.input_size // 2 + 1 + self.key_size

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = False) -> "HeartIDConfig":
        d = dict(d)
        if "max_minutes" in d:  # runs and cards made before the shared vocabulary
            minutes = d.pop("max_minutes")
            d.setdefault("time_limit_s", None if minutes is None else 60.0 * minutes)
        return cls(**config_kwargs(cls, d, strict=strict))


STFT = {"n_fft": 1000, "win_length": 500, "hop": 250, "db_offset": 1e-5, "top_db": 80.0}
"""mlx_stft.STFT(n_fft=1000, win_length=500, hop_length=250, return_db=True, onesided=True) as the seed set it."""

