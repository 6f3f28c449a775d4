"""``ecgcore export hubert RUN_DIR``: the fine-tuned classifier as ONNX (dynamic batch) + a model card."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..._fs import atomic_write
from ...export.onnx_check import strip_trace_metadata
from ...export import ModelCard, onnx_parity, write_card
from . import inputs as I
from ._finetune import load_classifier
from .model import ProbabilityModel

__all__ = ["export", "export_run", "to_onnx"]


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """Fold weight-norm parametrizations into plain weights (the exported graph then has one Conv weight)."""
    for mod in model.modules():
        if hasattr(mod, "parametrizations"):
            for name in list(mod.parametrizations.keys()):
                torch.nn.utils.parametrize.remove_parametrizations(mod, name, leave_parametrized=True)
    return model


def to_onnx(model: torch.nn.Module, n_samples: int, path: Path) -> Path:
    """Export ``model`` (B, n_samples) -> (B, C) with a dynamic batch axis, as one self-contained file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode=0o644) as tmp:  # a bundled model must be readable by every user
        _export_graph(model, n_samples, str(tmp))
    return path


def _export_graph(model: torch.nn.Module, n_samples: int, tmp: str) -> None:
    x = torch.zeros(2, n_samples)
    with warnings.catch_warnings():
        # torch's own exporters warn about their internals (pytree / TorchScript deprecations); nothing to act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            batch = torch.export.Dim("batch", min=1, max=65536)
            torch.onnx.export(model, (x,), tmp, input_names=["ecg"], output_names=["probabilities"],
                              dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
        except Exception:  # noqa: BLE001 - fall back to the TorchScript exporter, which handles this graph too
            torch.onnx.export(model, (x,), tmp, input_names=["ecg"], output_names=["probabilities"],
                              dynamic_axes={"ecg": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    strip_trace_metadata(tmp)  # the dynamo exporter's stack traces hold this machine's paths


def _run_summary(run_dir: Path) -> dict:
    """A run's summary: ``run.json`` (``summary.json`` in runs made before the shared run folder)."""
    for name in ("run.json", "summary.json"):
        if (run_dir / name).is_file():
            return json.loads((run_dir / name).read_text())
    return {}


def export(run_dir, out_dir=None, *, name: str = "hubert-ptbxl-super", atol: float = 1e-4) -> dict:
    """Write ``OUT_DIR/model.onnx`` + ``model.json`` from a fine-tuning run and check onnxruntime parity.

    Parity inputs: the run's cached real model inputs (first 16) when present, plus random batches of 1 and 7 rows
    (the dynamic axis). Returns ``{"onnx", "card", "max_abs_diff", "batches"}``.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "export"
    model, ck = load_classifier(run_dir)
    cfg = model.hubert_ecg.config
    pm = _plain(ProbabilityModel(model, multi_class=ck["task_type"] == "multi_class")).eval()
    onnx_path = to_onnx(pm, cfg.input_samples, out_dir / "model.onnx")

    cached = sorted(run_dir.glob("inputs-*.npy"))
    real = None
    for f in cached:
        a = np.load(f, mmap_mode="r")
        if a.ndim == 2 and a.shape[1] == cfg.input_samples:
            real = np.array(a[:16], dtype=np.float32)
            break
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, (1, cfg.input_samples)).astype(np.float32),
               rng.uniform(-1, 1, (7, cfg.input_samples)).astype(np.float32)]
    if real is not None:
        batches.insert(0, real)
    worst = 0.0
    with torch.no_grad():
        for b in batches:
            worst = max(worst, onnx_parity(onnx_path, {"ecg": b}, pm(torch.from_numpy(b)).numpy(), atol=atol,
                                           rtol=0.0))

    metrics = {}
    if (run_dir / "metrics.json").is_file():
        rep = json.loads((run_dir / "metrics.json").read_text())
        metrics = {"split": rep.get("split"), "n": rep.get("n"), "macro": rep.get("macro"),
                   "per_label": rep.get("per_label"), "positives": rep.get("positives"),
                   "bootstrap": rep.get("bootstrap")}
    for extra in sorted(run_dir.glob("metrics_tta*.json")):
        metrics[extra.stem] = json.loads(extra.read_text()).get("macro")
    training = _run_summary(run_dir)
    pre = {}
    init = training.get("init")
    if init and init != "None" and Path(init).is_file():
        s = Path(init).parent / ("run.json" if (Path(init).parent / "run.json").is_file() else "summary.json")
        if s.is_file():
            pre = json.loads(s.read_text())
    training = {**training, "pretraining": pre, "onnx_parity_max_abs_diff": worst}
    n_cls = len(ck["classes"])
    card = ModelCard(
        name=name, task="multilabel" if ck["task_type"] == "multi_label" else "classification", framework="pytorch",
        inputs=[{"name": "ecg", "shape": [None, cfg.input_samples], "dtype": "float32"}],
        outputs=[{"name": "probabilities", "shape": [None, n_cls], "dtype": "float32"}],
        fs=float(cfg.input_fs), preprocessing={**I.PREPROCESSING, "n_leads": cfg.n_leads, "model_fs": cfg.input_fs},
        classes=list(ck["classes"]), metrics=metrics, training=training, config=cfg.to_dict(),
        description=(f"HuBERT-ECG {cfg.size.upper()} encoder ({cfg.num_layers} layers, hidden {cfg.hidden_size}) with a "
                     f"mean-pooled {'linear' if ck['args']['head'] == 'linear' else 'MLP'} head; input = 5 s of "
                     f"{cfg.n_leads} leads, band-passed, min-max scaled, flattened lead-major and decimated to "
                     f"{cfg.input_fs} Hz ({cfg.input_samples} samples); output = "
                     f"{'sigmoid' if ck['task_type'] == 'multi_label' else 'softmax'} probabilities, threshold 0.5. "
                     "Build inputs with ecgcore.models.hubert.inputs.input_from_record."),
    )
    card_path = write_card(card, out_dir)

    return {"onnx": str(onnx_path), "card": str(card_path), "max_abs_diff": worst,
            "batches": [int(len(b)) for b in batches], "bytes": onnx_path.stat().st_size}


export_run = export  # the name earlier versions used
