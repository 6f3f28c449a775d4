"""CNN + 8-head-attention Normal/Abnormal classifier of 10 s MIT-BIH windows (PyTorch; SPEC §3).

The family's contract: ``train(data_dir, run_dir, config=None)``, ``evaluate(run_dir, data_dir=None)``,
``export(run_dir, out_dir=None)``, plus ``AttentionECGModel``, ``AttentionConfig``, ``predict``, ``load_run``.
Layout: ``config.py``, ``model.py``, ``data.py``, private ``_train.py`` / ``_evaluate.py`` / ``_export.py``
(a public submodule named like a function would replace the function on the package once imported).
Attributes load lazily, so ``ecgcore.models.attention.plots`` (NumPy + matplotlib) never imports torch.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "AttentionConfig": ".config",
    "AttentionECGModel": ".model",
    "train": "._train",
    "evaluate": "._evaluate",
    "predict": "._evaluate",
    "load_run": "._evaluate",
    "export": "._export",
    "plot_attention": ".plots",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
