"""``DenoiserConfig``: the Heartify notebook's training defaults (SPEC §2.3), plus what ecgcore adds."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...pipelines.recipes.denoise_chunks import CHUNK_SIZE, FS  # 10 s at 130 Hz: the seed's window (SPEC §2.2)
from .._config import ConfigMixin, config_kwargs

__all__ = ["DenoiserConfig", "CHUNK_SIZE", "FS", "CONTEXTS"]

#: ``context``: ``""`` (the seed's: none) or ``"attention"`` (``model.GlobalContext`` after the bottleneck).
CONTEXTS = ("", "attention")


@dataclass
class DenoiserConfig(ConfigMixin):
    """Hyper-parameters of one training run; every default is the seed notebook's unless noted.

    Attributes
    ----------
    base_channels : width of the first encoder level (32 → 2,796,541 parameters in the seed form, SPEC §2.1).
    epochs, batch_size, lr, weight_decay : AdamW schedule of the notebook (50, 64, 1e-3, 1e-4).
    plateau_factor, plateau_patience : ReduceLROnPlateau on the validation loss (0.5, 3).
    grad_clip : max gradient L2 norm (1.0).
    loss_weights : (L1, MSE, gradient-L1) weights of the hybrid loss (0.5 each).
    flip_p, scale_range : augmentation: negate pair with p=0.5, multiply both by U(0.8, 1.2).
    val_fraction : share of each DS1 record's clean windows held out for validation. The seed split
        files at random (90/10); ecgcore holds out whole clean windows so that the other noise
        types/SNRs of a validation window never appear in training [DIVERGENCE: no leakage].
    val_every : optimiser steps between validations (0 = once per epoch). With a few CPU cores a run
        rarely completes an epoch, so the LR schedule and best-checkpoint choice run on this cadence.
    val_pairs : validation pairs scored at each validation (0 = all); a fixed random subset.
    max_steps, time_limit_s : stop early (0 = no limit); the run stays resumable.
    patience : early stopping after this many validations without a lower validation loss (0 = off, as the
        seed, which trains its 50 epochs).
    mixing : ``"fixed"`` (the seed's): the dataset's precomputed pairs; ``"online"``: every step draws fresh noise
        for the training windows (:func:`ecgcore.models.denoiser.data.mix_online`: clean inputs with ``p_clean``,
        single noise types or, with ``p_mixture``, blends of all three, SNR uniform in ``snr_range``, from the
        training portion of the NSTDB only). Validation stays on the dataset's fixed pairs.
    prefilter_hz : 0 (the seed's): none; else every noisy input is high-passed at this cut-off (zero-phase
        Butterworth, order 3, :func:`ecgcore.pipelines.recipes.denoise_chunks.highpass_prefilter`) before its
        z-score, in training, validation and evaluation, and the exported card's ``preprocessing.prefilter`` makes
        ``ecgcore infer`` do the same (issue 22: baseline wander otherwise dominates the z-score).
    residual : False (the seed's): the network outputs the clean ECG; True: it outputs a correction added to its
        input (``AttentionUNet(residual=True)``, same layers and state_dict; the export and every inference path
        follow the run's setting).
    context : "" (the seed's) or "attention": a Transformer block after the bottleneck that lets every step see
        the whole 10 s window (:class:`ecgcore.models.denoiser.model.GlobalContext`; issue 22: the seed's
        convolutions see about 1.4 s, less than two beats). It starts at zero, so with ``init_from`` a seed-form
        model the run begins from that model's exact output; from a model that has the block (the bundled denoiser
        since version 3), the run takes its trained block and must set ``context="attention"``. Same inputs,
        outputs and card preprocessing; the graph is larger.
    extra_clean : "" (none) or an ``ecgcore preprocess denoise-ptbxl`` folder: its clean PTB-XL windows join the
        training windows (never validation), each drawn as often per epoch as a DS1 window, with NSTDB training noise
        mixed online (``mixing="online"`` only). Issue 22: the DS1 windows are 22 patients' beats. Mind the scale:
        one window per ECG and lead, so the 353 fold 1-8 ECGs of the shared PTB-XL sample at 12 leads give 4,236
        windows (DS1's training part: 3,564), but the whole PTB-XL would give ~210k and leave DS1 2 % of the pairs
        (and an epoch ~60 times longer): pick leads and folds in the recipe accordingly.
    init_from : "" (random initialisation) or an exported denoiser (a bundled name, a model folder or its
        ``model.onnx``): its weights start the run (:func:`ecgcore.models.denoiser.weights.state_from_onnx`). Export
        folds each BatchNorm into its convolution, so such a run keeps every BatchNorm at the identity and frozen
        (fine-tuning with fixed normalisation); the weights of a checkpoint being resumed take precedence.
    threads : torch intra-op threads (default: torch's own setting).
    seed : the notebook's 42.
    """

    base_channels: int = 32
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    grad_clip: float = 1.0
    loss_weights: tuple[float, float, float] = (0.5, 0.5, 0.5)
    flip_p: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)
    val_fraction: float = 0.1
    val_every: int = 0
    val_pairs: int = 0
    max_steps: int = 0
    time_limit_s: float = 0.0
    patience: int = 0
    mixing: str = "fixed"
    snr_range: tuple[float, float] = (-6.0, 24.0)
    p_clean: float = 0.1
    p_mixture: float = 0.3
    prefilter_hz: float = 0.0
    residual: bool = False
    context: str = ""
    extra_clean: str = ""
    init_from: str = ""
    threads: int | None = None
    seed: int = 42
    chunk_size: int = CHUNK_SIZE
    fs: float = FS
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mixing not in ("fixed", "online"):
            raise ValueError(f"mixing must be 'fixed' or 'online', got {self.mixing!r}")
        if not 0.0 <= self.prefilter_hz < self.fs / 2:
            raise ValueError(f"prefilter_hz must be 0 (off) or a cut-off below fs/2, got {self.prefilter_hz!r}")
        if not 0.0 <= self.p_clean <= 1.0 or not 0.0 <= self.p_mixture <= 1.0:
            raise ValueError("p_clean and p_mixture are probabilities in [0, 1]")
        if self.snr_range[0] > self.snr_range[1]:
            raise ValueError(f"snr_range must be (low, high), got {self.snr_range!r}")
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(map(repr, CONTEXTS))}, got {self.context!r}")
        if self.init_from and self.residual:
            raise ValueError("init_from starts the seed form only (an exported residual graph adds its input)")
        if self.extra_clean and self.mixing != "online":
            raise ValueError("extra_clean needs mixing='online': its windows carry no precomputed noisy pairs")
        if not isinstance(self.residual, bool):  # "--set residual=False" arrives as a string (JSON is lowercase)
            raise ValueError(f"residual must be true or false, got {self.residual!r}")

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True) -> "DenoiserConfig":
        d = config_kwargs(cls, d, strict=strict)
        for k in ("loss_weights", "scale_range", "snr_range"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
