"""HuBERT-ECG in plain PyTorch (SPEC 5.1-5.8): masked pseudo-label pretraining, fine-tuning, testing, ONNX export.

The family's contract: ``train(data_dir, run_dir, config=None)`` with ``config.stage`` = ``"pretrain"`` or
``"finetune"`` (:class:`HubertTrainConfig` holds every training setting), the same-shaped ``pretrain`` and
``finetune``, ``evaluate(run_dir, data_dir=None)``, ``export(run_dir, out_dir=None)``.

Modules: ``config`` (sizes and training settings, no torch), ``inputs`` (the seed's input contract and dataset
tables, NumPy + ``ecgcore.dsp`` only, so ``ecgcore infer`` can rebuild a model input from a raw record), ``metrics``
(NumPy test protocol with stratified bootstrap CIs), ``model`` and the private ``_pretrain`` / ``_finetune`` /
``_evaluate`` / ``_export`` (torch, imported lazily). The verbs are ``ecgcore train hubert
pretrain|finetune|dump|cluster``, ``ecgcore evaluate hubert``, ``ecgcore export hubert`` (``ecgcore.commands.hubert``).
"""
from __future__ import annotations

import importlib

from .config import SIZES, HubertConfig, HubertTrainConfig

_LAZY = {"train": "._train", "pretrain": "._pretrain", "finetune": "._finetune", "evaluate": "._evaluate",
         "export": "._export"}

__all__ = ["HubertConfig", "HubertTrainConfig", "SIZES", "train", "pretrain", "finetune", "evaluate", "export"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
