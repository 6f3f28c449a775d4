"""ONNX export of a trained run: ``model.onnx`` + ``model.json`` card, checked in onnxruntime on real windows.

Graph: input ``ecg`` (batch, 1, 3600) float32 — a standardised 10 s window at 360 Hz exactly as the
``segments`` recipe makes it; outputs ``logits`` (batch, 2), ``probabilities`` (batch, 2, softmax of the
logits) and ``attention`` (batch, 900, 900, head-averaged weights, rows = query steps). Batch is dynamic.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...export import ModelCard, onnx_parity, write_card
from .data import preprocessing_of, protocol_splits
from .training import PROTOCOL_LABELS, load_run

BUNDLED_NAME = "segments-abnormal"
OUTPUT_NAMES = ("logits", "probabilities", "attention")


class _Exported(nn.Module):
    """Inference wrapper: the model's logits and weights plus the softmax probabilities."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ecg):
        logits, attention = self.model(ecg, need_weights=True)
        return logits, torch.softmax(logits, dim=1), attention


def _to_onnx(wrapper: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write the graph with the TorchScript-based exporter (dynamic batch axis), atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model.", suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # The legacy exporter is deprecated in favour of dynamo; it handles MultiheadAttention's
            # weights output without a custom translation and gives one self-contained file.
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (example,), tmp, dynamo=False, input_names=["ecg"],
                              output_names=list(OUTPUT_NAMES), opset_version=17,
                              dynamic_axes={"ecg": {0: "batch"}, **{n: {0: "batch"} for n in OUTPUT_NAMES}})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(run_dir, out_dir=None, *, dataset_dir=None, check_windows: int = 8, name: str = BUNDLED_NAME,
           atol: float = 1e-4, command: str | None = None,
           note: str | None = None) -> tuple[Path, ModelCard, float]:
    """Export ``run_dir``'s best weights to ``out_dir/model.onnx`` + ``model.json`` (default ``out_dir = run_dir``).

    The parity check runs ``check_windows`` real test-split windows through PyTorch and onnxruntime and
    fails (``AssertionError``) when any output differs by more than ``atol`` (+ 1e-4 relative).
    ``command`` overrides the training command line recorded in the card (default: the run's own);
    ``note`` is stored as ``training.note`` (e.g. how far a capped training got and why).

    Returns
    -------
    (onnx path, card, largest absolute difference over the three outputs)
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model, saved = load_run(run_dir, "cpu")
    config = model.config
    dataset_dir = Path(dataset_dir or saved["dataset_dir"])
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}

    splits = protocol_splits(dataset_dir, config.protocol, seed=config.seed, test_size=config.test_size,
                             val_size=config.val_size, val_records=config.val_records)
    test = splits["test"]
    if check_windows < 2:
        raise ValueError("check_windows must be at least 2 (a batch > 1 proves the dynamic axis)")
    # Windows spread over the test split, both classes when present: real inputs, not noise.
    pick = np.unique(np.r_[np.flatnonzero(test.y == 1)[:check_windows // 2],
                           np.linspace(0, len(test) - 1, check_windows).astype(int)])[:check_windows]
    x = np.ascontiguousarray(test.x[pick])
    wrapper = _Exported(model).eval()
    onnx_path = out_dir / "model.onnx"
    _to_onnx(wrapper, torch.from_numpy(x[:2]), onnx_path)
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(torch.from_numpy(x))]
    worst = onnx_parity(onnx_path, {"ecg": x}, expected, atol=atol)

    training = dict(metrics.get("training", {}))
    history = training.pop("history", [])
    card = ModelCard(
        name=name, task="classification", framework="pytorch",
        inputs=[{"name": "ecg", "shape": [None, 1, config.input_length], "dtype": "float32"}],
        outputs=[{"name": "logits", "shape": [None, config.num_classes], "dtype": "float32"},
                 {"name": "probabilities", "shape": [None, config.num_classes], "dtype": "float32"},
                 {"name": "attention", "shape": [None, config.seq_len, config.seq_len], "dtype": "float32"}],
        fs=360.0, preprocessing=preprocessing_of(dataset_dir), classes=list(config.classes),
        metrics={"protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
                 **{split: {k: v for k, v in metrics[split].items() if k != "records"}
                    for split in ("test", "val") if split in metrics},
                 "onnx_parity_max_abs_diff": worst, "onnx_parity_windows": int(len(x))},
        training={**training, "dataset": "MIT-BIH Arrhythmia Database (48 records, 360 Hz), `ecgcore preprocess segments`",
                  "splits": metrics.get("splits", saved.get("splits", {})),
                  "validation_history": history,
                  "command": command or saved.get("command") or "ecgcore train attention DATASET_DIR RUN_DIR "
                                                     f"--protocol {config.protocol}",
                  **({"note": note} if note else {}),
                  "exported_with": f"torch {torch.__version__}, python {platform.python_version()}, {sys.platform}"},
        config=config.to_dict(),
        description=("CNN + 8-head self-attention Normal/Abnormal classifier of 10 s MIT-BIH lead-0 windows "
                     "(seed: Al-Khlewee/attention-based-ecg-classifier, SPEC §3). Abnormal = more abnormal beat "
                     "symbols than normal ones in the window. Input: one standardised 3600-sample window "
                     "(0.5-50 Hz order-5 zero-phase band-pass, per-window z-score). Outputs: logits, softmax "
                     "probabilities [Normal, Abnormal], head-averaged attention (900 x 900, rows = query steps, "
                     "one step = 4 samples)."),
    )
    write_card(card, out_dir / "model.json")
    for p in (onnx_path, out_dir / "model.json"):
        os.chmod(p, 0o644)  # mkstemp makes 0600 files; a shipped model must be readable by everyone
    return onnx_path, card, worst
