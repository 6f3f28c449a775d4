"""Configuration of the CNN-Conformer beat classifier, with the seed's best hyperparameters (SPEC §4.5)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...pipelines.recipes.beats_scalograms import MORPH_FEATURES, MORPH_FEATURES_V5, V4_COLUMNS
from .._config import ConfigMixin, config_kwargs

__all__ = ["ConformerConfig", "VARIANTS", "SEED_BEST", "RR_FEATURES", "RR_SETS", "NAMED_CONFIGS"]

VARIANTS = ("conformer", "attention-only", "cnn-lstm", "baseline")

# Best hyperparameters of each variant from the seed's Hyperband runs [EHC Research_Runs/tuning_*].
SEED_BEST = {
    "conformer": dict(embed_dim=128, num_heads=8, ff_dim=512, kernel_size=11, dropout=0.2, num_blocks=1),
    "attention-only": dict(embed_dim=64, num_heads=8, ff_dim=256, dropout=0.0, num_blocks=2),
    "cnn-lstm": dict(embed_dim=128, lstm_units=128),
    "baseline": dict(embed_dim=128),
}

# Per-beat RR inputs (option ``rr_features=True``): de Chazal's intervals (``ecgcore.dsp.rr_features``,
# local = mean of the last 10 pre-RR) divided by the record's average RR, plus that average in seconds.
RR_FEATURES = ("pre_rr/avg_rr", "post_rr/avg_rr", "local_rr/avg_rr", "avg_rr_s")
# ``rr_set``: which per-beat RR features feed the ``rr`` input, and the function a card names for them
# (``pipelines.recipes.beats_scalograms.RR_FEATURE_FUNCTIONS``). v2 adds the prematurity against the local rhythm,
# the compensatory-pause ratio and a robust RR irregularity (atrial fibrillation), as in Mondejar-Guerra 2019 and
# Llamedo & Martinez 2011.
_V2 = RR_FEATURES + ("pre_rr/local_rr", "post_rr/pre_rr", "rr_irregularity")
# v3: v2's seven plus seven morphology columns relative to the record's own dominant beat
# (``beats_scalograms.rr_morph_features_v3``; needs the signal, not only the R-peaks); v4: v3 without its two
# P-region columns (``rr_morph_features_v4``); v5: v3's columns against the record's slowest quarter of beats
# (``rr_morph_features_v5``: the template and the P-region reference are rarely premature beats).
RR_SETS = {"v1": ("rr-intervals-v1", RR_FEATURES),
           "v2": ("rr-intervals-v2", _V2),
           "v3": ("rr-morph-v3", _V2 + MORPH_FEATURES),
           "v4": ("rr-morph-v4", tuple((_V2 + MORPH_FEATURES)[i] for i in V4_COLUMNS)),
           "v5": ("rr-morph-v5", _V2 + MORPH_FEATURES_V5)}


# ``ecgcore train conformer --config NAME``: whole training set-ups by name (options given on the command line win).
NAMED_CONFIGS = {
    # The seed's protocol exactly: its split (5-fold CV over 38 records, final model on the 38, test on its 7 --
    # leaky: beats of one patient on both sides of the k-fold), its learning rate, balanced class weights,
    # batch 128, 20 epochs, EarlyStopping(5) / ReduceLROnPlateau(0.2, 1) on the folds, no RR inputs.
    "seed": dict(protocol="seed"),
    # The bundled beats-aami (issue 20): inter-patient DS1 -> DS2, 4 DS1 records held out for early stopping,
    # RR inputs (v2: with prematurity, pause ratio and RR irregularity), chunk training, N thinned to ~8000 per
    # epoch (no class weights), lr 5e-4 with the seed's plateau schedule, epochs of 100 steps, early stopping
    # after 4 epochs without a better validation loss.
    "bundled": dict(protocol="inter-patient", rr_features=True, rr_set="v2", lr=5e-4, val_records=4, class_weight="none",
                    patience=4, chunk=4, max_n_per_epoch=8000, steps_per_epoch=100, epochs=40, threads=2,
                    eval_n_fraction=0.25),
    # "bundled" refit on every DS1 record (issue 20): the bundled run (r4) held out 4 DS1 records for early stopping,
    # among them 208 (372 of DS1's 414 F beats, 26 % of its V beats) and 209 (41 % of its S beats). Its
    # validation chose the schedule -- 4 epochs at 5e-4, the plateau cut to 1e-4, best epoch 5 -- so the refit runs
    # exactly that on all 22 DS1 records, with no validation split and no test record involved.
    "refit": dict(protocol="inter-patient", rr_features=True, rr_set="v2", lr=5e-4, val_records=0, class_weight="none",
                  chunk=4, max_n_per_epoch=8000, steps_per_epoch=100, epochs=5, lr_schedule=[[5, 1e-4]], threads=2,
                  eval_n_fraction=0.25),
}


@dataclass
class ConformerConfig(ConfigMixin):
    """Network, data and optimiser settings; defaults are the seed's (SPEC §4.3-4.6).

    Attributes
    ----------
    variant : one of :data:`VARIANTS` (Main_Model = ``"conformer"``, and the three ablations).
    embed_dim, num_heads, ff_dim, kernel_size, dropout, num_blocks, lstm_units : the searched hyperparameters.
    sequence_length, height, width : input (3, 32, 187, 1) — 3 beats, 32 Morlet scales, 187 samples.
    n_classes : AAMI N, S, V, F, Q.
    lr, weight_decay : AdamW learning rate (the seed's 1e-5) and weight decay (Keras' default 0.004, as the seed).
    batch_size, epochs : seed 128 and 20.
    patience, plateau_patience, plateau_factor, min_lr : the seed's callbacks on val_loss (early stopping
        after ``patience`` epochs without improvement).
    class_weight : ``"balanced"`` (sklearn's n / (k * count)) or ``"none"``.
    max_class_weight : cap on a balanced class weight (DS1 has 8 Q beats: uncapped, their weight is ~166 and a
        single Q in a batch swamps the loss); None = uncapped, as the seed.
    rr_features : add per-beat RR features as a second input (not in the seed; ecgcore's option).
    rr_set : which RR features (:data:`RR_SETS`): ``"v1"`` (the four of :data:`RR_FEATURES`), ``"v2"`` (seven) or
        ``"v3"`` (v2's seven plus seven morphology columns against the record's own dominant beat, computed from the
        signal: ``beats_scalograms.rr_morph_features_v3``), ``"v4"`` (v3 without the two P-region columns) or
        ``"v5"`` (v3's columns, the record's usual beat taken from its slowest quarter of beats).
    max_n_per_epoch : if set, class-balanced sampling keeps on average this many N sequences per epoch.
    seed : random seed (42, as the seed).
    protocol : ``"inter-patient"`` (DS1 → DS2) or ``"seed"`` (k-fold over 38 records, final on 38, test on 7).
    folds, fold_epochs : the seed protocol's k-fold stage (5 folds; epochs per fold, default ``epochs``).
    steps_per_epoch : cap the steps of every epoch (default: one pass over the sampled training set).
    time_limit_s : wall-clock budget of the whole run (the k-fold stage gets the first half); resumable.
    val_fraction : share of the validation sequences scored each epoch (k-fold stage, and ``val_records``).
    val_records : inter-patient protocol: hold out this many training records (DS1, chosen with ``seed``), or these
        training records by name (e.g. ``["122", "208", "209", "230"]``, the bundled run's, for a run with another
        ``seed`` validated on the same records), to validate every epoch, with early stopping (``patience``, the
        best epoch's weights kept) and ReduceLROnPlateau on them; 0 (the seed's): the final model trains on every
        training record, no validation.
    lr_schedule : None, or ``[[epoch, lr], ...]``: a fixed piecewise-constant learning rate, ``lr`` from the
        1-based ``epoch`` on (``lr`` before the first pair); replaces ReduceLROnPlateau. For a refit on every
        training record of a schedule a validated run chose (named config ``refit``).
    chunk : 0 (the seed's): stream 3-beat sequences from the TFRecords. N > 0: train on chunks of N consecutive
        sequences drawn at random from the training records held in memory, each beat's CNN computed once
        (:mod:`ecgcore.models.conformer.chunks`; ``batch_size`` counts sequences, ``batch_size // N`` chunks a step;
        validation scores every sequence of the ``val_records``, ``val_fraction`` is not used; early stopping runs
        whenever there are validation records).
    teacher : None, or an exported beats-aami model (folder or bundled name; its encoder + head graphs, e.g. an
        ensemble from ``tools/beats_aami_ensemble.py``) whose class probabilities on every training sequence become
        soft targets (knowledge distillation, Hinton et al. 2015): the loss is the cross-entropy against
        ``distill_alpha`` x the one-hot label + (1 - ``distill_alpha``) x the teacher's probabilities. Chunk training
        only; the teacher must have been fitted with the same normalisation (the same training records). Validation
        keeps the one-hot labels, so early stopping watches the same loss as without a teacher.
    distill_alpha : weight of the one-hot label in the distillation target (0.5). The training accuracy then counts
        agreement with the target's largest class, the label's unless ``distill_alpha`` < 0.5.
    swa_from : 0 (off), or the 1-based epoch from which the weights at the end of every epoch are averaged
        (stochastic weight averaging, Izmailov et al. 2018): the final model carries the average of the epochs
        ``swa_from`` .. last, its BatchNorm statistics re-estimated on ``swa_bn_batches`` training batches. Chunk
        training only. With ``val_records`` early stopping still ends the run, but the average is kept, not the
        best epoch. Resumable (the running average is checkpointed).
    swa_bn_batches : training batches run forward (training mode) to re-estimate BatchNorm statistics of the average.
    amplitude_range : None, or ``[low, high]``: amplitude augmentation. Every training chunk's signal is scaled by a
        factor drawn log-uniformly from [low, high] (e.g. ``[0.5, 2.0]``), so the network cannot key on the
        amplitude of a patient's beats. The scalogram of ``a·x`` is ``a`` times that of ``x`` (the transform is
        linear, the input its modulus), so the scaling is applied to the stored scalograms before normalisation.
        Chunk training only; validation, inference and the BatchNorm re-estimation of ``swa_from`` see unscaled
        beats.
    eval_n_fraction : share of the test records' N sequences scored (all other classes always; N reweighted).
    threads : TensorFlow intra/inter-op threads (1: the machine is shared).
    """

    variant: str = "conformer"
    embed_dim: int = 128
    num_heads: int = 8
    ff_dim: int = 512
    kernel_size: int = 11
    dropout: float = 0.2
    num_blocks: int = 1
    lstm_units: int = 128
    sequence_length: int = 3
    height: int = 32
    width: int = 187
    n_classes: int = 5
    lr: float = 1e-5
    weight_decay: float = 0.004
    batch_size: int = 128
    epochs: int = 20
    patience: int = 5
    plateau_patience: int = 1
    plateau_factor: float = 0.2
    min_lr: float = 1e-6
    class_weight: str = "balanced"
    max_class_weight: float | None = None
    rr_features: bool = False
    rr_set: str = "v1"
    max_n_per_epoch: int | None = None
    seed: int = 42
    protocol: str = "inter-patient"
    folds: int = 5
    fold_epochs: int | None = None
    steps_per_epoch: int | None = None
    time_limit_s: float | None = None
    val_fraction: float = 1.0
    val_records: int | list = 0
    lr_schedule: list | None = None
    chunk: int = 0
    teacher: str | None = None
    distill_alpha: float = 0.5
    swa_from: int = 0
    swa_bn_batches: int = 200
    amplitude_range: list | None = None
    eval_n_fraction: float = 1.0
    threads: int | None = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        if self.class_weight not in ("balanced", "none"):
            raise ValueError(f"class_weight must be 'balanced' or 'none', got {self.class_weight!r}")
        for name in ("embed_dim", "num_heads", "ff_dim", "kernel_size", "num_blocks", "lstm_units",
                     "batch_size", "epochs", "sequence_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.rr_set not in RR_SETS:
            raise ValueError(f"rr_set must be one of {', '.join(RR_SETS)}, got {self.rr_set!r}")
        if self.lr_schedule is not None:
            try:
                sched = [(int(e), float(v)) for e, v in self.lr_schedule]
            except (TypeError, ValueError):
                raise ValueError(f"lr_schedule must be a list of [epoch, lr] pairs, got {self.lr_schedule!r}") from None
            if any(e < 1 or v <= 0 for e, v in sched) or [e for e, _ in sched] != sorted({e for e, _ in sched}):
                raise ValueError(f"lr_schedule needs increasing epochs >= 1 and positive rates, got {self.lr_schedule!r}")
            self.lr_schedule = [list(p) for p in sched]
        if int(self.swa_from) < 0 or int(self.swa_bn_batches) < 0:
            raise ValueError(f"swa_from and swa_bn_batches must be >= 0, got {self.swa_from!r}, {self.swa_bn_batches!r}")
        if self.swa_from and not self.chunk:
            raise ValueError("swa_from needs chunk training (chunk > 0)")
        if self.amplitude_range is not None:
            try:
                if not isinstance(self.amplitude_range, (list, tuple)):
                    raise TypeError
                lo, hi = (float(v) for v in self.amplitude_range)
            except (TypeError, ValueError):
                raise ValueError(f"amplitude_range must be [low, high], got {self.amplitude_range!r}") from None
            if not 0.0 < lo <= 1.0 <= hi < math.inf:
                raise ValueError(f"amplitude_range needs 0 < low <= 1 <= high, got {self.amplitude_range!r}")
            if not self.chunk:
                raise ValueError("amplitude_range needs chunk training (chunk > 0)")
            self.amplitude_range = [lo, hi]
        if isinstance(self.val_records, (list, tuple)):
            names = [str(r) for r in self.val_records]
            if not names or len(set(names)) != len(names):
                raise ValueError(f"val_records as names must list distinct records, got {self.val_records!r}")
            self.val_records = sorted(names)  # a set of records: the same run whatever order they were named in
        elif (isinstance(self.val_records, bool) or not isinstance(self.val_records, (int, float))
              or int(self.val_records) != self.val_records or self.val_records < 0):
            raise ValueError(f"val_records must be a count >= 0 or a list of record names, got {self.val_records!r}")
        else:
            self.val_records = int(self.val_records)
        if not 0.0 <= float(self.distill_alpha) <= 1.0:
            raise ValueError(f"distill_alpha must lie in [0, 1], got {self.distill_alpha!r}")
        if self.teacher is not None and not self.chunk:
            raise ValueError("teacher (distillation) needs chunk training (chunk > 0)")
        if self.teacher is not None and self.protocol == "seed":
            raise ValueError("teacher (distillation): the seed protocol normalises every fold on its own records, so "
                             "no one teacher matches them; use the inter-patient protocol")
        if self.protocol not in ("inter-patient", "seed"):
            raise ValueError(f"unknown protocol {self.protocol!r}; choose inter-patient or seed")

    @classmethod
    def for_variant(cls, variant: str, **overrides) -> "ConformerConfig":
        """The seed's best hyperparameters of ``variant``, then ``overrides``."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        return cls(**{"variant": variant, **SEED_BEST[variant], **config_kwargs(cls, overrides)})

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 1-based ``epoch`` under ``lr_schedule`` (``lr`` when there is none)."""
        lr = float(self.lr)
        for first, value in self.lr_schedule or ():
            if epoch >= first:
                lr = float(value)
        return lr

    @property
    def n_rr(self) -> int:
        return len(RR_SETS[self.rr_set][1]) if self.rr_features else 0
