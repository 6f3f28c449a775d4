"""``AttentionECGModel`` (SPEC §3.2): the seed's CNN + 8-head self-attention Normal/Abnormal classifier."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import AttentionConfig

FS = 360.0  # the windows' sampling rate (the segments recipe; 3600 samples = 10 s)
#: the ``qrs_width`` settings of the qrs-width prior (the card's ``preprocessing.qrs_width`` repeats them)
WIDTH_OPTIONS = {"frac": 0.15, "half_window": 0.15, "smooth": 0.014}


def fit_width_prior(width, y, class_weight=None, iters: int = 100, ridge: float = 1e-3) -> list[float]:
    """``[intercept, slope, mean, sd]`` of a logistic regression of ``y`` (0/1) on the standardised QRS width
    (``(width - mean) / sd``), windows without a width (NaN) left out; ``class_weight`` (n_classes,) weighs each
    window by its class as the training loss does. Newton's method on the weighted log-likelihood with an L2 penalty
    ``ridge / 2 * (total weight) * slope**2`` (scikit-learn's ``C = 1 / (ridge * total weight)``), so that widths that
    separate the classes give a finite slope; ``ValueError`` if it has not converged after ``iters`` steps."""
    w = np.asarray(width, np.float64)
    y = np.asarray(y, np.float64)
    ok = np.isfinite(w)
    w, y = w[ok], y[ok]
    if len(np.unique(y)) < 2:
        raise ValueError("the qrs-width prior needs training windows of both classes with a measurable width")
    mu, sd = float(w.mean()), float(w.std())
    if not sd > 0:
        raise ValueError("the qrs-width prior needs training windows of more than one QRS width")
    sw = np.ones_like(y) if class_weight is None else np.asarray(class_weight, np.float64)[y.astype(int)]
    X = np.stack([np.ones_like(w), (w - mu) / sd], 1)
    lam = np.diag([0.0, ridge * sw.sum()])
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-X @ beta))
        g = X.T @ (sw * (y - p)) - lam @ beta
        H = (X * (sw * p * (1 - p))[:, None]).T @ X + lam
        step = np.linalg.solve(H + 1e-12 * np.eye(2), g)
        beta += step
        if np.abs(step).max() < 1e-10:
            return [float(beta[0]), float(beta[1]), mu, sd]
    raise ValueError(f"the qrs-width prior's logistic fit did not converge in {iters} Newton steps")


class AttentionECGModel(nn.Module):
    """Conv(1→32,k5)-ReLU-MaxPool2 → Conv(32→64,k5)-ReLU-MaxPool2 → MHA(64, 8 heads) → FC 128 → 2.

    ``config.prior="qrs-width"`` adds a fixed logistic function of the window's median QRS width to the Abnormal
    logit (buffer ``prior_coef``: intercept, slope, mean and sd of the width in ms; see
    :class:`AttentionConfig`); without it the model holds no buffer.

    ``config.head="pool"`` feeds fc1 the mean and max of the attention output over time instead of all of it
    (not the seed's; 43,906 parameters with the other defaults, against 7,400,322).

    Exactly the seed's layers and layer names (``conv1``, ``conv2``, ``pool``, ``attention``, ``fc1``,
    ``dropout``, ``fc2``), so a seed ``best_model.pth`` state_dict loads unchanged. 7,400,322 parameters
    with the defaults, 99.6 % of them in ``fc1`` (57,600 × 128).

    Parameters
    ----------
    config : :class:`AttentionConfig` (defaults: the seed's).
    """

    def __init__(self, config: AttentionConfig | None = None):
        super().__init__()
        self.config = config = config or AttentionConfig()
        c1, c2 = config.conv_channels
        k = config.kernel_size
        self.conv1 = nn.Conv1d(1, c1, kernel_size=k, stride=1, padding=k // 2)
        self.conv2 = nn.Conv1d(c1, c2, kernel_size=k, stride=1, padding=k // 2)
        self.pool = nn.MaxPool1d(2)
        self.relu = nn.ReLU()
        # Seq-first (batch_first=False) and dropout 0, as the seed.
        self.attention = nn.MultiheadAttention(embed_dim=c2, num_heads=config.num_heads)
        self.fc1 = nn.Linear(c2 * (config.seq_len if config.head == "flatten" else 2), config.fc_hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.fc2 = nn.Linear(config.fc_hidden, config.n_classes)
        if config.prior == "qrs-width":
            self.register_buffer("prior_coef", torch.tensor([0.0, 0.0, 0.0, 1.0]))

    def measure_width(self, x: torch.Tensor) -> torch.Tensor:
        """The median QRS width (ms, NaN where none) of each window of ``x`` (batch, 1, n)."""
        from ...dsp.qrs import qrs_width

        w = qrs_width(x[:, 0].detach().cpu().numpy(), fs=FS, **WIDTH_OPTIONS)
        return torch.from_numpy(np.atleast_1d(w).astype(np.float32)).to(x.device)

    def prior_logit(self, qrs_width: torch.Tensor) -> torch.Tensor:
        """The prior's log-odds of Abnormal for widths (batch,) in ms; 0 where the width is NaN."""
        a, b, mu, sd = self.prior_coef.unbind(0)
        off = a + b * (qrs_width - mu) / sd
        return torch.where(torch.isnan(qrs_width), torch.zeros_like(off), off)

    def with_prior(self, logits: torch.Tensor, x: torch.Tensor, qrs_width: torch.Tensor | None) -> torch.Tensor:
        """``logits`` with the prior applied (unchanged without a prior): ``prior_combine="add"`` adds its log-odds to
        the Abnormal column; ``"max"`` returns log-probabilities whose Abnormal one is the larger of the network's and
        the prior's (0 where the width is NaN), so their softmax is exactly that pair."""
        if self.config.prior == "none":
            return logits
        if qrs_width is None:
            qrs_width = self.measure_width(x)
        off = self.prior_logit(qrs_width.reshape(-1).to(logits.dtype))
        if self.config.prior_combine == "add":
            return logits + torch.stack([torch.zeros_like(off), off], dim=1)
        p_net = torch.softmax(logits, dim=1)[:, 1]
        p_prior = torch.where(torch.isnan(qrs_width.reshape(-1)), torch.zeros_like(off), torch.sigmoid(off))
        p = torch.maximum(p_net, p_prior)
        return torch.log(torch.stack([1.0 - p, p], dim=1).clamp_min(1e-12))

    def forward(self, x: torch.Tensor, need_weights: bool = True, qrs_width: torch.Tensor | None = None):
        """Logits and head-averaged attention weights.

        Parameters
        ----------
        x : (batch, 1, input_length) float32 — standardised 10 s windows at 360 Hz.
        need_weights : return the attention weights. ``False`` lets PyTorch use its fused
            scaled-dot-product kernel (same function, no (B, 900, 900) matrix kept): training uses it.
        qrs_width : (batch,) ms, for ``prior="qrs-width"``; measured from ``x`` when not given.

        Returns
        -------
        logits : (batch, n_classes), no softmax (as the seed).
        attention : (batch, 900, 900) — attention from each query step (rows) to each key step,
            averaged over the 8 heads; ``None`` when ``need_weights`` is false.
        """
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.config.input_length:
            raise ValueError(f"expected input of shape (batch, 1, {self.config.input_length}), got {tuple(x.shape)}")
        h = self.pool(self.relu(self.conv1(x)))
        h = self.pool(self.relu(self.conv2(h)))          # (B, 64, 900)
        h = h.permute(2, 0, 1)                             # (900, B, 64)
        h, weights = self.attention(h, h, h, need_weights=need_weights, average_attn_weights=True)
        h = self.head_input(h.permute(1, 2, 0))            # (B, 64, 900) -> fc1's input
        h = self.dropout(self.relu(self.fc1(h)))
        return self.with_prior(self.fc2(h), x, qrs_width), weights

    def head_input(self, h: torch.Tensor) -> torch.Tensor:
        """fc1's input from the attention output ``h`` (batch, channels, steps): flattened channel-major as the
        seed (``head="flatten"``, (B, 64·900)), or its mean and max over the steps (``head="pool"``, (B, 128))."""
        if self.config.head == "pool":
            return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return h.flatten(1)


def attach_width_prior(model: AttentionECGModel, x, y, threshold: float) -> dict:
    """Give a trained seed-form ``model`` the qrs-width prior in ``"max"`` combination, fitted on training windows.

    ``x`` (n, 1, 3600) and ``y`` (n,) are the windows the network trained on (DS1). The width threshold ``T`` is the
    one that maximises F1(Abnormal) of the width alone on them (:func:`ecgcore.models.attention.baseline.score_baseline`'s
    rule, rounded up to a measurable width: a multiple of half a sample); the slope is the logistic regression's
    (class weights as the model's ``class_weight``), and the intercept is moved so that the prior's probability
    equals the card's decision ``threshold`` a quarter sample below ``T``. So at that threshold
    the model calls a window Abnormal when the network does or its median QRS width is at least ``T``.
    Returns what was fitted (for the card)."""
    from ...dsp.qrs import qrs_width
    from .baseline import _best_threshold

    if model.config.prior != "none":
        raise ValueError("the model already has a prior")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
    w = qrs_width(x[:, 0], fs=FS, **WIDTH_OPTIONS)
    counts = np.bincount(y, minlength=2).astype(np.float64)
    cw = counts.sum() / (2 * np.maximum(counts, 1)) if model.config.class_weight == "balanced" else None
    a, b, mu, sd = fit_width_prior(w, y, cw)
    if not b > 0:
        raise ValueError(f"the width does not rise with the Abnormal class on these windows (slope {b:.3g})")
    # A window's width is a median of whole-sample widths, so a multiple of half a sample (500 / FS ms): T is the
    # smallest such value at or above the max-F1 threshold, and the prior crosses the decision threshold a quarter
    # sample below it, so float32 rounding cannot move a window across.
    step_ms = 500.0 / FS
    t_ms = float(np.ceil(_best_threshold(np.nan_to_num(w, nan=0.0), y) / step_ms - 1e-9) * step_ms)
    a_shift = float(np.log(threshold / (1.0 - threshold)) - b * (t_ms - step_ms / 2 - mu) / sd)
    model.config.prior, model.config.prior_combine = "qrs-width", "max"
    device = next(model.parameters()).device
    model.register_buffer("prior_coef", torch.tensor([a_shift, b, mu, sd], dtype=torch.float32, device=device))
    return {"kind": "qrs-width", "combine": "max", "intercept": a_shift, "slope": b, "mean_ms": mu, "sd_ms": sd,
            "threshold_ms": float(t_ms), "at_probability": float(threshold), "fitted_intercept": a,
            "windows": int(np.isfinite(w).sum()), "windows_without_width": int((~np.isfinite(w)).sum())}
