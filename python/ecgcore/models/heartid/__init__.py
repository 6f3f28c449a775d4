"""HeartID (SPEC §1): cancelable ECG biometrics in MLX, with an MLX-free product path.

The family's contract: ``train(data_dir, run_dir, config=None)`` (``data_dir``: one ``heartid`` dataset folder or
a list of them), ``evaluate(run_dir, data_dir=None)``, ``export(run_dir, out_dir=None)``; loaded lazily so that
``import ecgcore.models.heartid`` never imports MLX.

Modules (only ``model``, ``losses``, ``_train`` and the evaluation's embedder import MLX):

- ``config``     the seed's hyperparameters (:class:`HeartIDConfig`)
- ``preprocess`` the ``heartid`` recipe's per-record transform (record -> z-scored 1000-sample windows)
- ``keys``       unit-norm binary keys drawn with :mod:`secrets`, key files
- ``data``       windows of ``ecgcore preprocess heartid`` folders, subject-disjoint splits, triplets
- ``model``      the seed's network with the MLX layout bugs fixed
- ``losses``     the seed's 4-term triplet loss and the original Secure Triplet Loss
- ``_train``     AdamW training in the shared run folder (resumable), ``heartid_model.npz``, ``best_model.npz``
- ``_evaluate``  the protocol: verification, identification, cancelability, unlinkability; ``evaluate``
- ``metrics``    EER, FAR/FRR operating points, DET curve, rank-1, cancelability and unlinkability
- ``_export``    the ONNX graph rebuilt from the weights with ``onnx.helper`` (no MLX needed to run it)
- ``product``    ``ecgcore enroll / verify / revoke`` on onnxruntime + SQLite
"""
from __future__ import annotations

import importlib

from .config import HeartIDConfig

_LAZY = {"train": "._train", "evaluate": "._evaluate", "export": "._export"}

__all__ = ["HeartIDConfig", "train", "evaluate", "export"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
