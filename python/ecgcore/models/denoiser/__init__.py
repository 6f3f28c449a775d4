"""Heartify Attention U-Net ECG denoiser (PyTorch), SPEC §2.

Public API: :class:`AttentionUNet`, :class:`DenoiserConfig`, :func:`train`, :func:`evaluate`, :func:`export`,
:func:`denoise`. Torch is imported on first use of a torch-backed name, so ``import ecgcore.models.denoiser``
(and :mod:`.processing`, the NumPy pre/post-processing that ``ecgcore.infer`` reuses) stays framework-free.
"""
from __future__ import annotations

from .config import CHUNK_SIZE, FS, DenoiserConfig

__all__ = ["AttentionUNet", "DenoiserConfig", "train", "evaluate", "export", "denoise", "CHUNK_SIZE", "FS"]

_LAZY = {"AttentionUNet": ".model", "train": "._train", "evaluate": "._evaluate", "export": "._export",
         "denoise": ".inference"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
