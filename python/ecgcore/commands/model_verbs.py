"""``ecgcore train|evaluate|export|tune MODEL ...``: one click group per verb, one subcommand per model family.

A subcommand is the click command named like the verb in ``ecgcore.commands.<family>``; it is imported only
when invoked, so ``ecgcore train --help`` lists the families without loading torch, tensorflow or mlx. The
commands only parse options and print; the work is the family's ``train`` / ``evaluate`` / ``export``.
"""
from __future__ import annotations

import importlib
import importlib.util

import click

from ..models import MODEL_FAMILIES

_HELP = {
    "denoiser": "Heartify Attention U-Net denoiser (PyTorch; denoise-pairs dataset).",
    "attention": "CNN + 8-head attention Normal/Abnormal classifier (PyTorch; segments dataset).",
    "conformer": "CNN-Conformer AAMI beat classifier (Keras; tfrecords / beats-scalograms dataset).",
    "heartid": "HeartID cancelable biometrics (MLX; heartid dataset).",
    "hubert": "HuBERT-ECG pretraining / fine-tuning / testing (PyTorch; hubert-features dataset).",
}


class _FamilyGroup(click.Group):
    def __init__(self, *args, verb: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.verb = verb

    def _module(self, name):
        mod = f"ecgcore.commands.{name}"
        try:
            return importlib.util.find_spec(mod)
        except ModuleNotFoundError:
            return None

    def list_commands(self, ctx):
        return [n for n in MODEL_FAMILIES if self._module(n) is not None]

    def get_command(self, ctx, name):
        if name not in MODEL_FAMILIES or self._module(name) is None:
            return None
        mod = importlib.import_module(f"ecgcore.commands.{name}")
        return getattr(mod, self.verb.replace("-", "_"), None)

    def format_commands(self, ctx, formatter):
        rows = [(n, _HELP.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Models"):
                formatter.write_dl(rows)


def _make(verb: str, doc: str) -> click.Group:
    @click.group(name=verb, cls=_FamilyGroup, verb=verb, help=doc)
    def group():
        pass

    return group


train = _make("train", "Train a model family on a dataset made by `ecgcore preprocess` (checkpoints, resumable).")
evaluate = _make("evaluate", "Evaluate a trained run: metrics.json, tables and plots in the run folder.")
export = _make("export", "Export a trained run to model.onnx + model.json card, checked in onnxruntime.")
tune = _make("tune", "Hyperparameter search for a model family.")
