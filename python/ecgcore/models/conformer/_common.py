"""What training, evaluation and export of the Conformer share: TensorFlow set-up and reading a run folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

from typing import TYPE_CHECKING

from ..._fs import atomic_write, write_text

if TYPE_CHECKING:
    from .config import ConformerConfig

__all__ = ["configure_tensorflow", "load_run", "load_run_model", "save_model", "write_json"]


def configure_tensorflow(threads: int | None = 1) -> None:
    """Quiet TensorFlow's C++ logging and pin its thread pools (the machine is shared): call before any op runs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:  # already initialised in this process: keep its pools
            pass


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1, default=float))


def save_model(model, path: Path) -> None:
    """``model.save`` to ``path`` atomically (the temporary name keeps the ``.keras`` suffix Keras needs)."""
    with atomic_write(path) as tmp:
        model.save(tmp)


def load_run_model(path):
    """Load a ``.keras`` checkpoint written by :func:`train` (registers ecgcore's two layers)."""
    import keras

    from .model import custom_objects

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no trained model in this run folder")
    return keras.models.load_model(path, custom_objects=custom_objects(), compile=False)


def load_run(run_dir) -> tuple[Path, dict, "ConformerConfig", dict]:
    """A finished run folder's ``(path, run.json, config, norm.json)``, for evaluate and export."""
    from .config import ConformerConfig

    run = Path(run_dir)
    meta_path = run / "run.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {run} is not a finished `ecgcore train conformer` run")
    meta = json.loads(meta_path.read_text())
    if "train_records" not in meta or not (run / "norm.json").is_file():
        raise FileNotFoundError(f"{run} holds no finished `ecgcore train conformer` run (run.json lacks its records)")
    return run, meta, ConformerConfig.from_dict(meta["config"]), json.loads((run / "norm.json").read_text())


