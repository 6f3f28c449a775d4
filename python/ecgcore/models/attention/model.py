"""``AttentionECGModel`` (SPEC §3.2): the seed's CNN + 8-head self-attention Normal/Abnormal classifier."""
from __future__ import annotations

import torch
from torch import nn

from .config import AttentionConfig


class AttentionECGModel(nn.Module):
    """Conv(1→32,k5)-ReLU-MaxPool2 → Conv(32→64,k5)-ReLU-MaxPool2 → MHA(64, 8 heads) → FC 128 → 2.

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

    def forward(self, x: torch.Tensor, need_weights: bool = True):
        """Logits and head-averaged attention weights.

        Parameters
        ----------
        x : (batch, 1, input_length) float32 — standardised 10 s windows at 360 Hz.
        need_weights : return the attention weights. ``False`` lets PyTorch use its fused
            scaled-dot-product kernel (same function, no (B, 900, 900) matrix kept): training uses it.

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
        return self.fc2(h), weights

    def head_input(self, h: torch.Tensor) -> torch.Tensor:
        """fc1's input from the attention output ``h`` (batch, channels, steps): flattened channel-major as the
        seed (``head="flatten"``, (B, 64·900)), or its mean and max over the steps (``head="pool"``, (B, 128))."""
        if self.config.head == "pool":
            return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return h.flatten(1)
