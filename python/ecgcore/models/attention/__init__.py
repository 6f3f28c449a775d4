"""CNN + 8-head-attention Normal/Abnormal classifier of 10 s MIT-BIH windows (PyTorch; SPEC §3).

``AttentionECGModel``, ``AttentionConfig``, ``train``, ``evaluate``, ``export``. Attributes are loaded lazily so
that ``ecgcore.models.attention.plots`` (NumPy + matplotlib, used by the diagnosis app) never imports torch.
The code lives in ``training.py`` / ``onnx_export.py`` (not ``train.py`` / ``export.py``): a submodule named like
a function would replace that function on the package once imported.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "AttentionConfig": ".config",
    "AttentionECGModel": ".model",
    "train": ".training",
    "evaluate": ".training",
    "predict": ".training",
    "export": ".onnx_export",
    "plot_attention": ".plots",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
