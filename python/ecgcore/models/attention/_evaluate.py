"""Evaluation of a trained attention run: the best weights on a split of its protocol, metrics and plots.

``evaluate(run_dir, data_dir=None)`` writes into the run folder ``metrics.json`` (key = split),
``classification_report_<split>.txt``, ``confusion_matrix_<split>.png``, ``roc_<split>.png``,
``predictions_<split>.npz`` and the seed's ``attention_<split>_<k>.png``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..._fs import write_json, write_npz, write_text
from . import plots
from .config import AttentionConfig
from .data import SegmentSplit, config_splits
from .metrics import classification_metrics, classification_report, roc_curve
from .model import AttentionECGModel

PROTOCOL_LABELS = {
    "leaky": "leaky: the seed's random window split (overlapping windows of one patient on both sides)",
    "inter-patient": "inter-patient: train/validate on DS1 records, test on DS2 (de Chazal), patient-disjoint",
}


def device_of(device: str | None) -> torch.device:
    device = device or "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(device)


def _batches(n: int, size: int):
    for b in range(0, n, size):
        yield slice(b, min(b + size, n))


@torch.no_grad()
def predict(model: AttentionECGModel, x: np.ndarray, *, batch_size: int = 64, device="cpu",
            progress: bool = False, desc: str = "predict") -> np.ndarray:
    """Softmax probabilities (n, n_classes) of windows ``x`` (n, 1, 3600), without attention weights."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for sl in tqdm(list(_batches(len(x), batch_size)), desc=desc, disable=not progress, leave=False):
        logits, _ = model(torch.from_numpy(np.ascontiguousarray(x[sl])).to(device), need_weights=False)
        out.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.n_classes), np.float32)


def _loss_acc(model, split: SegmentSplit, device, batch_size: int, progress: bool) -> tuple[float, float]:
    prob = predict(model, split.x, batch_size=batch_size, device=device, progress=progress, desc="validate")
    p = np.clip(prob[np.arange(len(split)), split.y], 1e-12, None)
    return float(-np.log(p).mean()), float((prob.argmax(1) == split.y).mean())


def _read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def load_run(run_dir, device: str = "cpu") -> tuple[AttentionECGModel, dict]:
    """The best weights of a run (``best.pt``) and its ``config.json`` (``data_dir``: the dataset it used)."""
    run_dir = Path(run_dir)
    cfg_path, best = run_dir / "config.json", run_dir / "best.pt"
    for p in (cfg_path, best):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: {run_dir} is not a trained attention run (ecgcore train attention)")
    saved = json.loads(cfg_path.read_text())
    saved.setdefault("data_dir", saved.get("dataset_dir"))  # runs made before the shared run folder
    config = AttentionConfig.from_dict(saved["config"])
    model = AttentionECGModel(config)
    model.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["model"])
    return model.to(device_of(device)).eval(), saved


def evaluate(run_dir, data_dir=None, *, split: str = "test", device: str = "cpu", progress: bool = True,
             n_attention: int = 3, _splits=None) -> dict:
    """Score the run's best weights on ``split`` of its protocol; write metrics, report and plots.

    Writes into ``run_dir``: ``metrics.json`` (key ``split``), ``classification_report_<split>.txt``,
    ``confusion_matrix_<split>.png``, ``roc_<split>.png``, ``predictions_<split>.npz`` and, like the seed,
    ``attention_<split>_<k>.png`` for the first window of each of the first ``n_attention`` batches.
    """
    run_dir = Path(run_dir)
    model, saved = load_run(run_dir, device)
    config = model.config
    if config.threads:
        torch.set_num_threads(int(config.threads))
    data_dir = Path(data_dir or saved["data_dir"])
    splits = _splits or config_splits(data_dir, config)
    if split not in splits or splits[split] is None:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(k for k in splits if splits[k] is not None)})")
    data = splits[split]
    dev = device_of(device)
    t0 = time.monotonic()
    prob = predict(model, data.x, batch_size=2 * config.batch_size, device=dev, progress=progress, desc=f"evaluate {split}")
    m = classification_metrics(data.y, prob[:, 1], config.classes)
    m["seconds"] = time.monotonic() - t0
    m["records"] = sorted(set(data.record.tolist()))
    write_npz(run_dir / f"predictions_{split}.npz", prob=prob, y=data.y, record=data.record, start=data.start)
    write_text(run_dir / f"classification_report_{split}.txt",
               f"{PROTOCOL_LABELS[config.protocol]}\nsplit {split}: {len(data)} windows\n\n" + classification_report(m))
    label = f"{config.protocol} · {split}"
    plots.plot_confusion_matrix(m["confusion_matrix"], config.classes, run_dir / f"confusion_matrix_{split}.png", title=label)
    fpr, tpr, _ = roc_curve(data.y, prob[:, 1])
    plots.plot_roc(fpr, tpr, m["roc_auc"], run_dir / f"roc_{split}.png", title=label)
    for k in range(min(n_attention, math.ceil(len(data) / config.batch_size))):
        i = k * config.batch_size
        with torch.no_grad():
            logits, w = model(torch.from_numpy(data.x[i:i + 1]).to(dev), need_weights=True)
        p = torch.softmax(logits, 1)[0, 1].item()
        plots.plot_attention_panels(data.x[i, 0], w[0].cpu().numpy(), 360.0, run_dir / f"attention_{split}_{k}.png",
                                    title=f"record {data.record[i]} @ {data.start[i] / 360:.0f} s, true "
                                          f"{config.classes[data.y[i]]}, P(Abnormal) = {p:.3f}")
    metrics = _read_metrics(run_dir)
    metrics.setdefault("protocol", config.protocol)
    metrics.setdefault("protocol_label", PROTOCOL_LABELS[config.protocol])
    metrics[split] = m
    write_json(run_dir / "metrics.json", metrics)
    if progress:
        print(f"[{config.protocol}] {split}: " + ", ".join(
            f"{k} {m[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc")), file=sys.stderr)
    return metrics
