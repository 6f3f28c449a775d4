"""Configuration of the attention classifier, with the seed's defaults (SPEC §3.2-3.3)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .._config import ConfigMixin

PROTOCOLS = ("inter-patient", "leaky")
VAL_PICKS = ("spread", "keep-abnormal")
HEADS = ("flatten", "pool")  # how the attention output reaches fc1 (see AttentionConfig.head)
PRIORS = ("none", "qrs-width")  # a fixed logistic function of a signal measure (see AttentionConfig.prior)
PRIOR_COMBINES = ("add", "max")  # how the prior meets the network (see AttentionConfig.prior_combine)


@dataclass
class AttentionConfig(ConfigMixin):
    """Architecture and training settings of :class:`AttentionECGModel`.

    The defaults are the seed's (AEC ``config.py``, ``models/attention_ecg_model.py``, ``main.py``):
    3600-sample windows, Conv 32/64 (k 5) + MaxPool 2 twice, 8-head attention over 900 steps,
    FC 128 → 2 with dropout 0.5; batch 32, up to 100 epochs, Adam 1e-3 (weight decay 1e-5),
    ReduceLROnPlateau(patience 5, factor 0.5) and early stopping (patience 10) on validation loss, seed 42.

    Additions (not in the seed): ``protocol`` (``"inter-patient"``: train/validate on DS1 records,
    test on DS2; ``"leaky"``: the seed's random segment split 0.2 / 0.2), ``val_records`` (how many DS1
    records the inter-patient protocol holds out for validation; 0: a refit on every DS1 record for exactly
    ``epochs`` epochs at the rate ``lr``, no validation or early stopping, the last weights kept -- for the epoch
    count a validated run chose), ``max_steps`` / ``time_limit_s`` (stop
    on a budget; the run resumes), ``threads``. Field names follow the families' shared vocabulary
    (``n_classes``, ``patience``, ``time_limit_s``; see :mod:`ecgcore.models._config`).
    ``class_weight`` (``"none"``, the seed's, or ``"balanced"``: n / (k · count) from the training windows) and
    ``augment`` (each training window, in the model's input units: amplitude × a log-uniform factor within
    1 ± ``aug_scale``, plus a random offset and a 0.05–0.5 Hz baseline-wander sinusoid of amplitude up to
    ``aug_wander``, plus white noise of standard deviation up to ``aug_noise``; drawn from (seed, epoch, batch) so a
    resumed run sees the same windows). ``aug_nstdb`` (probability, per training window, of real noise added before
    those: NSTDB bw, ma or em — or, one time in three, a blend of all three — from the *training* portion of each noise
    record (its first ``nstdb_train_fraction``, the part the denoiser trains on), band-passed as the dataset was, at
    an SNR drawn uniformly from ``aug_nstdb_snr`` dB against the window, then the window z-scored again as inference
    does; ``noise_dir`` is the NSTDB folder, default ``$ECGCORE_DATA/nstdb``). ``val_pick`` (``"spread"``: the
    validation records spread along the DS1 records sorted by Abnormal fraction; ``"keep-abnormal"``: the same over
    the records that are not mostly Abnormal, so the four bundle-branch-block records of DS1 all stay in training;
    tried once for the bundled model and worse: its validation windows are 96 % Normal, so the lowest validation
    loss came at a conservative epoch that missed most bundle-branch-block windows of DS2). ``head``
    (``"flatten"``, the seed's: the attention output flattened channel-major into fc1, 57,600 inputs; ``"pool"``:
    its mean and its max over the 900 steps, 128 inputs, so fc1 holds 16k weights instead of 7.4M and the decision
    does not depend on where in the window a beat falls -- not the seed's architecture, so its weights do not load
    into a ``"flatten"`` model). Tried once (stop 37, the bundled recipe with ``head=pool``): 1.1 s per step instead
    of 2.4, validation loss 0.105 at epoch 3 (the flatten run's best was 0.156), but all 7,920 DS2 windows through
    ``ecgcore infer`` ROC-AUC 0.663: the bundle-branch-block records (111, 212, 214, 231) and 232's atrial premature
    runs were called Normal. Not used by the bundled model.

    ``prior`` (``"none"``, the seed's; ``"qrs-width"``): before training, a logistic regression of the class on
    the window's median QRS width (:func:`ecgcore.dsp.qrs.qrs_width`, standardised; fitted on the training windows
    with the same class weights as the loss) is fixed into the model, and its log-odds are added to the Abnormal
    logit of every window (0 where a window has no complete beat). The width is measured on the window the network
    sees (after augmentation in training), and exported as a second graph input ``qrs_width`` that ``ecgcore infer``
    computes. The network then learns what the width does not explain. Why: a bundle-branch block widens every QRS
    (clinically to 120 ms or more) in any patient, while DS1 holds two patients of each block type and a network
    trained on one calls the other's windows Normal (see ``val_names`` below); the width alone, leave-one-record-out
    over DS1, recognised all four bundle-branch-block records (109, 118, 124, 207: 94-100 % of windows). (The
    measure is not the clinical QRS duration; its thresholds are learnt.) Not the seed's architecture; with
    ``"none"`` the model has no such buffer and the seed's weights load unchanged. The fit has a small L2 penalty on
    the slope (``fit_width_prior``), so widths that separate the training classes do not give a step.

    ``prior_combine`` (``"add"``, the one a training uses: the prior's log-odds added to the Abnormal logit, trained
    jointly as above; ``"max"``: P(Abnormal) is the larger of the network's and the prior's, an OR of the two at any
    threshold, the prior's probability 0 for a window without a width; the graph's ``logits`` output then holds
    log-probabilities). Tried with ``"add"`` (stop 50, two DS1 folds, the ``val_names`` recipe at lr 5e-4): with
    109, 112, 118 and 205 held out the held-out right bundle-branch block 118 went from 0 % to 85 % of its windows
    correct (the prior alone: 100 %), but with 101, 124, 207 and 220 held out the network overrode the prior and
    called 124 Normal (2 %; the prior alone 100 %) and 207 half Normal (59 %; the prior alone 94 %). With
    ``head="pool"`` (43k parameters) the same fold was worse (124 1 %, 207 23 %), so capacity is not the cause;
    presumably (not measured) the network learns from wide but Normal training windows (108, 203) to push down wide
    windows unlike its training bundle-branch-block patients, whatever its size. ``"max"`` is for a prior attached
    to a trained network (:func:`~ecgcore.models.attention.model.attach_width_prior`,
    ``tools/segments_width_prior.py``), so that the network cannot override it. Tried once (stop 50) on the bundled
    network: on the DS1 windows the width alone is best from 36.5 samples (101.4 ms) up (ROC-AUC 0.902 over the
    7,920 windows; out of fold, the plain networks of the two folds above OR the width recognised 118 and 124 in
    full), but all 7,920 DS2 windows through ``ecgcore infer`` gave ROC-AUC 0.851 and F1(Abnormal) 0.673 against the
    bundled network's 0.921 / 0.743 (scored before the L2 penalty and the quarter-sample margin: slope 1.98 per sd
    instead of 1.95, the same decisions at the threshold but for windows measuring exactly 36.5 samples, which
    float32 rounding put on either side): the width found more of the bundle-branch-block windows (111: 334 -> 359
    of 360 correct, 212: 326 -> 352, 232: 279 -> 318, 214 only 190 -> 202) but raised false alarms where noise or
    wide normal beats widen the measure (105: 224 -> 13, 222: 323 -> 228, 228: 267 -> 189, 233: 360 -> 275, 121: 342
    -> 281), as it does on DS1's noisy 108 (48 % -> 0 %). The width alone on DS2: ROC-AUC 0.737, F1 0.488. Not
    shipped. Measured on DS1 only, and not tried on DS2: the width of each window's median beat (instead of the
    median of the beats' widths) raises the width alone's F1 on DS1 from 0.782 to 0.803 (203: 59 -> 78 %, 122: 71 ->
    82 %) but leaves 108 wrong.

    ``exclude_records`` (inter-patient; default empty): DS1 records left out before the validation records are
    picked, so they neither train nor validate (a DS2 record is refused); the test split is untouched. For data
    curation chosen on DS1 folds, e.g. records whose windows contradict a prior. Tried once (stop 50) with
    ``prior="qrs-width"`` ("add"), leaving out 108 (noisy) and 203 (wide normal beats), whose windows the width
    calls Abnormal: both DS1 folds then kept the prior at their best epoch (1; fold a: 109 100 %, 112 95 %, 118 100
    %, 205 100 %, validation loss 0.145; fold b: 101 100 %, 124 99 %, 207 94 %, 220 99 %, 0.402). The refit on the
    other 20 DS1 records for that one epoch (4 min), all 7,920 DS2 windows through ``ecgcore infer``: ROC-AUC 0.750,
    F1(Abnormal) 0.467 (the bundled model 0.921 / 0.743): the right bundle-branch-block records 231 (356 -> 104 of
    360 correct) and 232 (279 -> 83) and the left one 214 (190 -> 82) were called Normal, and 105's noise Abnormal
    (224 -> 13). Not shipped; the width does not carry to DS2.

    ``val_names`` (inter-patient; default empty): the validation records by name, DS1 only, instead of ``val_records``
    spread by ``val_pick`` (``val_records`` becomes their count); for a record-grouped cross-validation that rotates
    chosen records (e.g. the four bundle-branch-block records) through the held-out fold.

    ``ema`` (0: off, the seed's): validate, keep and export an exponential moving average of the weights, updated
    after every optimiser step with the decay ``min(ema, (1 + step) / (10 + step))``, ``step`` the optimiser steps
    before this one (0 at the first update). The trained weights keep training; the average is what is validated
    (so the plateau schedule and early stopping follow its loss, which lags the trained weights by about
    ``1 / (1 - ema)`` steps) and what ``best.pt`` holds; its state is in the checkpoint, so a resumed run continues
    it. ``aug_nstdb`` and ``ema`` were tried once (stop 43, lr 5e-4, ``aug_nstdb`` 0.4 at 3-24 dB, early stopping
    on the 4 spread validation records): without the average the validation loss swung 0.48, 0.79, 0.47, 0.18,
    0.30, **0.157**, 0.23, 0.42, 0.49 (record 109's left bundle-branch-block windows called Abnormal or not from one
    epoch to the next); with ``ema=0.998`` it went 0.47, 0.44, 0.30, **0.214**, 0.24, 0.23, 0.22. The refit of the
    first for 6 epochs on every DS1 record called the bundle-branch-block and atrial-premature records of DS2 (111,
    212, 214, 231, 232) Normal: all 7,920 windows through ``ecgcore infer`` ROC-AUC 0.785, F1(Abnormal) 0.038. Not
    used by the bundled model.

    ``extra_train`` (a ``segments-ptbxl`` folder, ``ecgcore preprocess segments-ptbxl``; default none): its windows
    join the training split -- never validation or test -- each Normal window ``extra_repeat[0]`` times and each
    Abnormal one ``extra_repeat[1]`` times per epoch (augmentation then draws each copy differently). DS1 holds two
    patients with each bundle-branch block; PTB-XL's bundle-branch-block ECGs add other patients' morphology. The
    balanced class weights count these windows; the card's decision prior counts the MIT-BIH training windows only.
    Tried (2026-12-07; lr 5e-4, ``augment``, balanced weights, early stopping on DS1 records 109, 112, 118 and 205, so
    that 124 is the only right bundle-branch-block patient in training; per-record accuracy of the best weights):
    without extra windows the best validation loss was 0.495 and 118 was called Normal (0 % of its windows
    correct); with the lead-II windows of the 313 labelled PTB-XL ECGs (Abnormal ones × 20) 0.479 and 118 still 0.3 %;
    with leads I, II, aVF and V5 of each (1,252 windows, Abnormal ones × 10) **0.255** at epoch 3, 118 at 89 %
    (median P(Abnormal) 0.89), 109 and 205 at 100 %, 112 (Normal) down from 97.5 % to 62 %. Many leads of few
    patients teach the QRS width more than one lead of each does, on that validation. Its refit (every DS1 record +
    the four-lead windows, 3 epochs, 18 min) scored all 7,920 DS2 windows through ``ecgcore infer`` at ROC-AUC 0.825,
    F1(Abnormal) 0.453 (the bundled model: 0.921 / 0.743): the second left bundle-branch-block patient of DS2 (214)
    went from 190 to 352 of 360 windows correct, but the right bundle-branch-block records fell (212: 326 → 146,
    231: 356 → 106) and so did 232 (279 → 45), with new false alarms on 121 (342 → 83) and 233 (360 → 165). Not used
    by the bundled model. A second DS1 fold (``val_names`` 101, 124, 207, 220; same recipe, 19-20 min each) did not
    repeat the gain: best validation loss 0.632 without, 0.538 with the four-lead windows, and the held-out right
    bundle-branch block (124) called Normal either way (4 % and 7 % of its windows correct; 207 at 95 and 94 %).
    """

    input_length: int = 3600
    conv_channels: tuple[int, int] = (32, 64)
    kernel_size: int = 5
    num_heads: int = 8
    fc_hidden: int = 128
    dropout: float = 0.5
    head: str = "flatten"
    prior: str = "none"
    prior_combine: str = "add"
    n_classes: int = 2
    classes: tuple[str, ...] = ("Normal", "Abnormal")

    batch_size: int = 32
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    patience: int = 10
    seed: int = 42

    class_weight: str = "none"
    augment: bool = False
    aug_scale: float = 0.25
    aug_wander: float = 0.3
    aug_noise: float = 0.1
    aug_nstdb: float = 0.0
    aug_nstdb_snr: tuple[float, float] = (6.0, 24.0)
    nstdb_train_fraction: float = 0.7
    noise_dir: str | None = None
    ema: float = 0.0
    extra_train: str | None = None
    extra_repeat: tuple[int, int] = (1, 1)

    protocol: str = "inter-patient"
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    val_records: int = 4
    val_pick: str = "spread"
    val_names: tuple[str, ...] = ()
    exclude_records: tuple[str, ...] = ()
    max_steps: int | None = None
    time_limit_s: float | None = None
    threads: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {self.prior!r}")
        if self.prior_combine not in PRIOR_COMBINES:
            raise ValueError(f"prior_combine must be one of {', '.join(PRIOR_COMBINES)}, got {self.prior_combine!r}")
        if self.class_weight not in ("none", "balanced"):
            raise ValueError(f"class_weight must be 'none' or 'balanced', got {self.class_weight!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.val_pick not in VAL_PICKS:
            raise ValueError(f"val_pick must be one of {', '.join(VAL_PICKS)}, got {self.val_pick!r}")
        if not isinstance(self.ema, (int, float)) or not 0.0 <= float(self.ema) < 1.0:
            raise ValueError(f"ema is a decay per optimiser step in [0, 1) (0: off), got {self.ema!r}")
        self.ema = float(self.ema)
        if isinstance(self.val_names, str):
            raise ValueError(f"val_names is a list of record names (e.g. [\"109\", \"118\"]), got {self.val_names!r}")
        self.val_names = tuple(str(r) for r in self.val_names)
        if self.val_names and self.protocol != "inter-patient":
            raise ValueError("val_names names DS1 validation records: inter-patient protocol only")
        if self.val_names:
            self.val_records = len(set(self.val_names))
        if isinstance(self.exclude_records, str):
            raise ValueError(f"exclude_records is a list of record names (e.g. [\"108\"]), got {self.exclude_records!r}")
        self.exclude_records = tuple(str(r) for r in self.exclude_records)
        if self.exclude_records and self.protocol != "inter-patient":
            raise ValueError("exclude_records names DS1 training records: inter-patient protocol only")
        if set(self.exclude_records) & set(self.val_names):
            raise ValueError("a record cannot be both excluded and a validation record")
        rep = self.extra_repeat
        if (isinstance(rep, (str, bytes)) or not hasattr(rep, "__len__") or len(rep) != 2
                or min(int(v) for v in rep) < 0 or (self.extra_train and max(int(v) for v in rep) == 0)):
            raise ValueError(f"extra_repeat is [Normal, Abnormal]: how many times each extra_train window of that "
                             f"class trains per epoch (>= 0, not both 0), got {rep!r}")
        self.extra_repeat = tuple(int(v) for v in rep)
        if self.extra_train is not None:
            self.extra_train = str(self.extra_train)
        if not 0.0 <= self.aug_nstdb <= 1.0:
            raise ValueError(f"aug_nstdb is a probability, got {self.aug_nstdb!r}")
        self.aug_nstdb_snr = tuple(float(v) for v in self.aug_nstdb_snr)
        if len(self.aug_nstdb_snr) != 2 or self.aug_nstdb_snr[0] > self.aug_nstdb_snr[1]:
            raise ValueError(f"aug_nstdb_snr must be (low, high) in dB, got {self.aug_nstdb_snr!r}")
        if not 0.0 < self.nstdb_train_fraction < 1.0:
            raise ValueError(f"nstdb_train_fraction must be in (0, 1), got {self.nstdb_train_fraction!r}")
        if self.input_length % 4:
            raise ValueError(f"input_length must be a multiple of 4 (two MaxPool(2)), got {self.input_length}")
        if self.conv_channels[-1] % self.num_heads:
            raise ValueError(f"embed dim {self.conv_channels[-1]} is not divisible by num_heads {self.num_heads}")
        if len(self.classes) != self.n_classes:
            raise ValueError(f"{len(self.classes)} class names for n_classes={self.n_classes}")
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        self.classes = tuple(self.classes)

    @property
    def seq_len(self) -> int:
        """Attention sequence length after the two pools (900 for 3600 samples)."""
        return self.input_length // 4
