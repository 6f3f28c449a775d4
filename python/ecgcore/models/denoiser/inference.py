"""``denoise``: run a torch Attention U-Net on an arbitrary-length signal (ONNX-side inference is ``ecgcore.infer``)."""
from __future__ import annotations

import os

import numpy as np
import torch

from .processing import denoise_array

__all__ = ["denoise", "torch_runner"]


def torch_runner(model: torch.nn.Module, device: str = "cpu"):
    """Wrap ``model`` as ``(b, 1, n) float32 ndarray → (b, 1, n) float32 ndarray`` (eval mode, no grad)."""
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)).cpu().numpy()

    return run


def denoise(signal, model, *, seed_compat: bool = False, device: str = "cpu", batch_size: int = 64,
            prefilter_hz: float | None = None) -> np.ndarray:
    """Denoise a 1-D ECG at 130 Hz of any length with a trained Attention U-Net.

    Parameters
    ----------
    signal : (n_samples,) array, any unit
    model : an :class:`AttentionUNet`, a run folder (its ``best.pt``) or a checkpoint / state_dict file
    seed_compat : return z-score units as the Heartify API did, instead of the input's units
    device : ``"cpu"`` or ``"cuda"``
    batch_size : 1300-sample chunks per forward pass
    prefilter_hz : high-pass the input at this cut-off before the z-score (0: none); default: the run's
        ``prefilter_hz`` when ``model`` is a run folder or checkpoint, else none

    Returns
    -------
    (n_samples,) float64 denoised ECG (input units; z-score units with ``seed_compat``)
    """
    if isinstance(model, (str, os.PathLike)):
        from ._train import load_model

        model, ckpt = load_model(model, device=device)
        if prefilter_hz is None:
            prefilter_hz = float((ckpt.get("config") or {}).get("prefilter_hz", 0.0) or 0.0)
    elif not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be an AttentionUNet, a run folder or a checkpoint path, got {type(model).__name__}")
    pre = {"highpass_hz": float(prefilter_hz), "order": 3} if prefilter_hz else None
    return denoise_array(signal, torch_runner(model.to(device), device), seed_compat=seed_compat,
                         batch_size=batch_size, prefilter=pre)
