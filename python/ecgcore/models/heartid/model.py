"""The seed's ``EnhancedSecureBiometricECGModel`` (SPEC §1.2) in MLX, with its layout bugs fixed.

Fixes: the convolutions get NLC input ``(B, 1000, 1)`` (MLX's layout; the seed passed NCL), and the
``(1, key_size)`` key is broadcast over the batch before the concatenation (the seed's concat only ran for B=1).
Everything else is the seed's: three Conv1d 1->24 (kernels 192/96/64, no padding) + leaky-ReLU(0.01) + mean
over time (72), the mean over frames of the 501-bin dB STFT (mlx_stft's n_fft 1000 / win 500 / hop 250 setting,
computed here as a float64 matmul with the same windowed DFT basis), the key (100), one Linear 673 -> 100.
"""
from __future__ import annotations

import numpy as np
import mlx.core as mx
import mlx.nn as nn

from .config import STFT, HeartIDConfig


def dft_basis(n_fft: int = STFT["n_fft"], win_length: int = STFT["win_length"]) -> np.ndarray:
    """(n_fft, 2 * (n_fft // 2 + 1)) float64 windowed DFT basis, columns [cos bins 0..n/2 | -sin bins 0..n/2].

    The window is mlx_stft's symmetric Hann of ``win_length`` zero-padded at the end to ``n_fft`` (not centred).
    """
    n = np.arange(win_length)
    win = np.zeros(n_fft)
    win[:win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / (win_length - 1))
    k = np.arange(n_fft // 2 + 1)
    ang = 2 * np.pi * np.outer(np.arange(n_fft), k) / n_fft
    return np.concatenate([np.cos(ang), -np.sin(ang)], axis=1) * win[:, None]


def n_frames(input_size: int, n_fft: int = STFT["n_fft"], hop: int = STFT["hop"]) -> int:
    return 1 + (input_size + 2 * (n_fft // 2) - n_fft) // hop


class HeartIDNet(nn.Module):
    """ECG window + key -> 100-dim embedding.

    ``__call__(x, key)``: ``x`` (B, input_size) or (B, 1, input_size) z-scored windows, ``key`` (1, key_size)
    or (B, key_size) -> (B, embedding_size).
    """

    def __init__(self, config: HeartIDConfig | None = None):
        super().__init__()
        c = config or HeartIDConfig()
        self.config = c
        self.kernel1 = nn.Conv1d(1, c.num_kernels, c.kernel_sizes[0])
        self.kernel2 = nn.Conv1d(1, c.num_kernels, c.kernel_sizes[1])
        self.kernel3 = nn.Conv1d(1, c.num_kernels, c.kernel_sizes[2])
        self.fc = nn.Linear(c.n_features, c.embedding_size)
        # leading underscore: a frozen buffer, not a trainable/saved parameter (as mlx_stft's ``_weight``)
        # float64: the dB of the 40-100 Hz stop band (|X| ~ 1e-4) is float32 round-off noise (mlx_stft's float32
        # conv differs from an exact DFT by up to ~20 dB there); double precision makes the 501 features exact
        # and lets the ONNX graph reproduce them within 1e-4 (MLX runs float64 on the CPU stream)
        self._basis = mx.array(dft_basis(STFT["n_fft"], STFT["win_length"]), dtype=mx.float64)
        self._frames = n_frames(c.input_size)
        self._spec_mean = self._spec_std = None
        if c.standardize_spectrum and c.spectrum_mean is not None:
            self._spec_mean = mx.array(np.asarray(c.spectrum_mean, np.float32))
            self._spec_std = mx.array(np.asarray(c.spectrum_std, np.float32))

    def spectrum(self, x: mx.array) -> mx.array:
        """(B, L) -> (B, 501): the dB STFT (floored at each bin's max over frames - 80 dB) averaged over frames."""
        n_fft, hop, pad = STFT["n_fft"], STFT["hop"], STFT["n_fft"] // 2
        xp = mx.pad(x.astype(mx.float64), [(0, 0), (pad, pad)])
        frames = mx.stack([xp[:, i * hop:i * hop + n_fft] for i in range(self._frames)], axis=1)  # (B, F, n_fft)
        z = frames @ self._basis  # (B, F, 2 * bins)
        bins = self._basis.shape[1] // 2
        mag = mx.sqrt(z[..., :bins] ** 2 + z[..., bins:] ** 2)
        db = 20.0 * mx.log10(mag + STFT["db_offset"])
        db = mx.maximum(db, db.max(axis=1, keepdims=True) - STFT["top_db"])
        return db.mean(axis=1).astype(mx.float32)

    def features(self, x: mx.array, spectrum: mx.array | None = None) -> mx.array:
        """(B, L) or (B, 1, L) -> (B, 72 + 501): key-independent part of the dense layer's input.

        ``spectrum`` (B, 501): the STFT features when already known (training precomputes them once with the
        C++ ``db_spectrogram``; they have no parameters and no gradient).
        """
        if x.ndim == 3:
            x = x.reshape(x.shape[0], -1)
        xc = x[:, :, None]  # NLC
        branches = [nn.leaky_relu(conv(xc)).mean(axis=1) for conv in (self.kernel1, self.kernel2, self.kernel3)]
        spec = self.spectrum(x) if spectrum is None else spectrum
        if self._spec_mean is not None:
            spec = (spec - self._spec_mean) / self._spec_std
        return mx.concatenate(branches + [mx.stop_gradient(spec)], axis=1)

    def embed_features(self, feats: mx.array, key: mx.array) -> mx.array:
        """(B, 573) features + (1|B, key_size) key -> (B, embedding_size)."""
        key = mx.broadcast_to(key.astype(feats.dtype) * self.config.key_scale, (feats.shape[0], key.shape[-1]))
        z = mx.concatenate([feats, key], axis=1).astype(mx.float64)
        # float64 accumulation: the dB features are ~+-50, so a float32 sum of 673 products carries ~1e-4 of
        # order-dependent round-off, as large as the ONNX parity budget; in double both runtimes agree to ~1e-6
        w, b = self.fc.weight.astype(mx.float64), self.fc.bias.astype(mx.float64)
        return (z @ w.T + b).astype(mx.float32)

    def __call__(self, x: mx.array, key: mx.array) -> mx.array:
        return self.embed_features(self.features(x), key)

    get_embedding = __call__


def flat_parameters(model: nn.Module) -> dict[str, np.ndarray]:
    """``{"kernel1.weight": ..., "fc.bias": ...}`` float32 NumPy arrays (MLX layouts: conv weight (out, k, in))."""
    from mlx.utils import tree_flatten

    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def load_npz_weights(model: nn.Module, path) -> nn.Module:
    """Load ``heartid_model.npz`` (flattened parameter names) into ``model``, strictly."""
    model.load_weights(str(path), strict=True)
    mx.eval(model.parameters())
    return model


class MLXEmbedder:
    """NumPy in/out wrapper of a :class:`~.model.HeartIDNet` for the evaluation protocol."""

    def __init__(self, model, batch: int = 256, cache: bool = False):
        self.model, self.batch = model, batch
        # content-keyed cache: evaluation asks for the same windows many times (validation, per database and
        # pooled, 7- and 1-window probes), each time as a fresh fancy-indexed copy
        self._cache = {} if cache else None

    def features(self, windows: np.ndarray) -> np.ndarray:
        if self._cache is None:
            return self._features(windows)
        import hashlib

        w = np.ascontiguousarray(windows, np.float32)
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in w]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            for i, f in zip(todo, self._features(w[todo])):
                self._cache[keys[i]] = f
        return np.stack([self._cache[k] for k in keys])

    def _features(self, windows: np.ndarray) -> np.ndarray:
        import mlx.core as mx

        out = []
        for i in range(0, len(windows), self.batch):
            f = self.model.features(mx.array(np.asarray(windows[i:i + self.batch], np.float32)))
            mx.eval(f)
            out.append(np.array(f))
        return np.concatenate(out)

    def embed(self, feats: np.ndarray, key: np.ndarray) -> np.ndarray:
        import mlx.core as mx

        e = self.model.embed_features(mx.array(np.asarray(feats, np.float32)), mx.array(np.asarray(key, np.float32)))
        mx.eval(e)
        return np.array(e)
