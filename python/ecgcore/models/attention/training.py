"""Training and evaluation of :class:`AttentionECGModel` (SPEC §3.3), resumable and deterministic.

A run folder holds ``config.json`` (config + dataset), ``checkpoint.pt`` (everything needed to resume:
model, optimiser, scheduler, RNG, position inside the epoch), ``best.pt`` (weights at the lowest
validation loss, the seed's ``best_model.pth``), ``metrics.json`` and the plots.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import AttentionConfig
from .data import SegmentSplit, protocol_splits, read_dataset_info
from .metrics import classification_metrics, classification_report, roc_curve
from .model import AttentionECGModel
from . import plots

PROTOCOL_LABELS = {
    "leaky": "leaky: the seed's random window split (overlapping windows of one patient on both sides)",
    "inter-patient": "inter-patient: train/validate on DS1 records, test on DS2 (de Chazal), patient-disjoint",
}
# Settings a resumed run may change; anything else must match the checkpoint's.
_RESUMABLE_CHANGES = {"epochs", "max_steps", "wall_cap_s", "num_threads", "extra"}


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _device(device: str | None) -> torch.device:
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
    """Softmax probabilities (n, num_classes) of windows ``x`` (n, 1, 3600), without attention weights."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for sl in tqdm(list(_batches(len(x), batch_size)), desc=desc, disable=not progress, leave=False):
        logits, _ = model(torch.from_numpy(np.ascontiguousarray(x[sl])).to(device), need_weights=False)
        out.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_classes), np.float32)


def _loss_acc(model, split: SegmentSplit, device, batch_size: int, progress: bool) -> tuple[float, float]:
    prob = predict(model, split.x, batch_size=batch_size, device=device, progress=progress, desc="validate")
    p = np.clip(prob[np.arange(len(split)), split.y], 1e-12, None)
    return float(-np.log(p).mean()), float((prob.argmax(1) == split.y).mean())


def _check_resume(run_dir: Path, config: AttentionConfig, dataset_dir: Path) -> None:
    saved = json.loads((run_dir / "config.json").read_text())
    old = saved["config"]
    new = config.to_dict()
    diff = [k for k in new if k not in _RESUMABLE_CHANGES and old.get(k) != new[k]]
    if diff:
        raise ValueError(f"{run_dir} holds a run with different settings ({', '.join(diff)}); "
                         f"use a new RUN_DIR or --no-resume to start over")
    if Path(saved["dataset_dir"]).resolve() != dataset_dir.resolve():
        raise ValueError(f"{run_dir} was trained on {saved['dataset_dir']}, not {dataset_dir}")


def train(dataset_dir, run_dir, config: AttentionConfig | None = None, *, device: str = "cpu",
          resume: bool = True, progress: bool = True, evaluate_after: bool = True) -> dict:
    """Train on a ``segments`` dataset under ``config.protocol``; evaluate the best weights on the test split.

    Stops at ``config.epochs``, on early stopping (validation loss, patience 10), at ``max_steps``
    optimiser steps, or when ``wall_cap_s`` seconds of this call have passed; in the last two cases the
    run validates, checkpoints and can be resumed (same command) from the same batch of the same epoch.

    Returns the ``metrics.json`` content.
    """
    from tqdm.auto import tqdm

    config = config or AttentionConfig()
    dataset_dir, run_dir = Path(dataset_dir), Path(run_dir)
    read_dataset_info(dataset_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    dev = _device(device)
    ckpt_path = run_dir / "checkpoint.pt"
    resuming = resume and ckpt_path.is_file()
    if resuming:
        _check_resume(run_dir, config, dataset_dir)
    splits = protocol_splits(dataset_dir, config.protocol, seed=config.seed, test_size=config.test_size,
                             val_size=config.val_size, val_records=config.val_records)
    train_set, val_set = splits["train"], splits["val"]
    if val_set is None or len(val_set) == 0:
        raise ValueError("the validation split is empty (early stopping needs one); raise val_records")
    if not resuming:
        _atomic_json(run_dir / "config.json", {
            "config": config.to_dict(), "dataset_dir": str(dataset_dir.resolve()), "protocol": config.protocol,
            "command": " ".join(["ecgcore"] + sys.argv[1:]) if Path(sys.argv[0]).stem in ("ecgcore", "cli", "__main__")
            else None,
            "splits": {k: v.summary() for k, v in splits.items() if v is not None}})

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = AttentionECGModel(config).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=config.plateau_patience,
                                                       factor=config.plateau_factor)
    loss_fn = nn.CrossEntropyLoss()
    st = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_val_loss": math.inf, "best_step": None,
          "best_epoch": None, "bad_epochs": 0, "improved_this_epoch": False, "history": [], "seconds": 0.0,
          "stop_reason": None, "finished": False}
    if resuming:
        ck = torch.load(ckpt_path, map_location=dev, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        st.update(ck["state"])
        if st["finished"] and st["epoch"] < config.epochs and st["stop_reason"] == "epochs":
            st["finished"] = False  # more epochs were asked for
    n_train = len(train_set)
    n_batches = math.ceil(n_train / config.batch_size)
    t_start = time.monotonic()
    seconds0 = st["seconds"]
    stop = None
    if config.max_steps is not None and st["global_step"] >= config.max_steps:
        stop = "max_steps"  # a resumed run that already reached its step budget: evaluate only
    while stop is None and not st["finished"] and st["epoch"] < config.epochs:
        # One permutation per epoch from (seed, epoch): a resumed run sees the same batches.
        perm = np.random.default_rng([config.seed, st["epoch"]]).permutation(n_train)
        model.train()
        loss_sum, loss_n = 0.0, 0
        bar = tqdm(total=n_batches, initial=st["step_in_epoch"], disable=not progress,
                   desc=f"epoch {st['epoch'] + 1}/{config.epochs} [{config.protocol}]", dynamic_ncols=True)
        for b in range(st["step_in_epoch"], n_batches):
            idx = np.sort(perm[b * config.batch_size:(b + 1) * config.batch_size])
            xb = torch.from_numpy(train_set.x[idx]).to(dev)
            yb = torch.from_numpy(train_set.y[idx]).to(dev)
            logits, _ = model(xb, need_weights=False)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().item() * len(idx)
            loss_n += len(idx)
            st["step_in_epoch"] = b + 1
            st["global_step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}")
            if config.max_steps is not None and st["global_step"] >= config.max_steps:
                stop = "max_steps"
                break
            if config.wall_cap_s is not None and time.monotonic() - t_start >= config.wall_cap_s:
                stop = "wall_cap"
                break
        bar.close()
        full_epoch = st["step_in_epoch"] >= n_batches
        val_loss, val_acc = _loss_acc(model, val_set, dev, 2 * config.batch_size, progress)
        st["history"].append({
            "epoch": st["epoch"] + 1, "step": st["global_step"], "partial_epoch": not full_epoch,
            "batches_in_epoch": st["step_in_epoch"], "train_loss": loss_sum / max(loss_n, 1), "val_loss": val_loss,
            "val_accuracy": val_acc, "lr": opt.param_groups[0]["lr"],
            "seconds": seconds0 + time.monotonic() - t_start})
        if val_loss < st["best_val_loss"]:
            st.update(best_val_loss=val_loss, best_step=st["global_step"], best_epoch=st["epoch"] + 1,
                      improved_this_epoch=True)
            _atomic_torch_save({"model": model.state_dict(), "config": config.to_dict(),
                                "step": st["global_step"], "epoch": st["epoch"] + 1, "val_loss": val_loss}, run_dir / "best.pt")
        if full_epoch:
            sched.step(val_loss)
            st["bad_epochs"] = 0 if st["improved_this_epoch"] else st["bad_epochs"] + 1
            st.update(epoch=st["epoch"] + 1, step_in_epoch=0, improved_this_epoch=False)
            if st["bad_epochs"] >= config.early_stopping_patience:
                stop = "early_stopping"
            elif st["epoch"] >= config.epochs:
                stop = "epochs"
        if progress:
            h = st["history"][-1]
            print(f"epoch {h['epoch']}{' (partial)' if h['partial_epoch'] else ''} step {h['step']}: "
                  f"train loss {h['train_loss']:.4f}  val loss {val_loss:.4f}  val acc {val_acc:.4f}", file=sys.stderr)
        st["seconds"] = seconds0 + time.monotonic() - t_start
        st["stop_reason"] = stop
        st["finished"] = stop in ("early_stopping", "epochs")
        _atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                            "rng": torch.get_rng_state(), "state": st}, ckpt_path)
        if stop is not None:
            break
    if len(st["history"]) == 0:
        raise ValueError(f"{run_dir}: nothing to train (already finished at epoch {st['epoch']}); raise --epochs")
    if len(st["history"]) > 0:
        plots.plot_history(st["history"], run_dir / "history.png")
    training = {
        "protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
        "epochs_completed": st["epoch"], "steps": st["global_step"], "steps_per_epoch": n_batches,
        "stop_reason": st["stop_reason"], "finished": st["finished"], "best_epoch": st["best_epoch"],
        "best_step": st["best_step"], "best_val_loss": st["best_val_loss"], "seconds": st["seconds"],
        "history": st["history"], "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "python": platform.python_version(),
    }
    metrics = _read_metrics(run_dir)
    metrics.update({"protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
                    "dataset_dir": str(dataset_dir.resolve()),
                    "splits": {k: v.summary() for k, v in splits.items() if v is not None}, "training": training})
    _atomic_json(run_dir / "metrics.json", metrics)
    if evaluate_after:
        return evaluate(run_dir, dataset_dir, device=device, progress=progress, _splits=splits)
    return metrics


def _read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def load_run(run_dir, device: str = "cpu") -> tuple[AttentionECGModel, dict]:
    """The best weights of a run (``best.pt``) and its ``config.json``."""
    run_dir = Path(run_dir)
    cfg_path, best = run_dir / "config.json", run_dir / "best.pt"
    for p in (cfg_path, best):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: {run_dir} is not a trained attention run (ecgcore train attention)")
    saved = json.loads(cfg_path.read_text())
    config = AttentionConfig.from_dict(saved["config"])
    model = AttentionECGModel(config)
    model.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["model"])
    return model.to(_device(device)).eval(), saved


def evaluate(run_dir, dataset_dir=None, *, split: str = "test", device: str = "cpu", progress: bool = True,
             n_attention: int = 3, _splits=None) -> dict:
    """Score the run's best weights on ``split`` of its protocol; write metrics, report and plots.

    Writes into ``run_dir``: ``metrics.json`` (key ``split``), ``classification_report_<split>.txt``,
    ``confusion_matrix_<split>.png``, ``roc_<split>.png``, ``predictions_<split>.npz`` and, like the seed,
    ``attention_<split>_<k>.png`` for the first window of each of the first ``n_attention`` batches.
    """
    run_dir = Path(run_dir)
    model, saved = load_run(run_dir, device)
    config = model.config
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    dataset_dir = Path(dataset_dir or saved["dataset_dir"])
    splits = _splits or protocol_splits(dataset_dir, config.protocol, seed=config.seed, test_size=config.test_size,
                                        val_size=config.val_size, val_records=config.val_records)
    if split not in splits or splits[split] is None:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(k for k in splits if splits[k] is not None)})")
    data = splits[split]
    dev = _device(device)
    t0 = time.monotonic()
    prob = predict(model, data.x, batch_size=2 * config.batch_size, device=dev, progress=progress, desc=f"evaluate {split}")
    m = classification_metrics(data.y, prob[:, 1], config.classes)
    m["seconds"] = time.monotonic() - t0
    m["records"] = sorted(set(data.record.tolist()))
    np.savez(run_dir / f"predictions_{split}.npz", prob=prob, y=data.y, record=data.record, start=data.start)
    (run_dir / f"classification_report_{split}.txt").write_text(
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
    _atomic_json(run_dir / "metrics.json", metrics)
    if progress:
        print(f"[{config.protocol}] {split}: " + ", ".join(
            f"{k} {m[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "roc_auc")), file=sys.stderr)
    return metrics
