"""Training of :class:`AttentionECGModel` (SPEC §3.3) in the shared run folder (:mod:`ecgcore.models._run`).

The run folder holds ``config.json``, ``checkpoint/`` (model, optimiser, scheduler and RNG states, the position
inside the epoch: an interrupted run resumes from the same batch), ``history.csv``, ``learning_curve.png``,
``run.json``, ``best.pt`` (weights at the lowest validation loss, the seed's ``best_model.pth``) and, after the
test-split evaluation, ``metrics.json`` and the plots.
"""
from __future__ import annotations

import copy
import math
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..._fs import atomic_write, write_json
from .._run import Run, torch_state
from ._evaluate import PROTOCOL_LABELS, _read_metrics, device_of, evaluate, predict
from .config import AttentionConfig
from .data import SegmentSplit, config_splits, read_dataset_info, train_noise_bank
from .model import FS, WIDTH_OPTIONS, AttentionECGModel, fit_width_prior

# Settings a resumed run may change; anything else must match the saved config.
RESUMABLE = ("epochs", "max_steps", "time_limit_s", "threads", "patience", "extra")


def _save_torch(obj, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def _val_loss_acc(model, split, device, batch_size: int, progress: bool) -> tuple[float, float]:
    prob = predict(model, split.x, batch_size=batch_size, device=device, progress=progress, desc="validate")
    p = np.clip(prob[np.arange(len(split)), split.y], 1e-12, None)
    return float(-np.log(p).mean()), float((prob.argmax(1) == split.y).mean())


def augment_batch(x: np.ndarray, rng: np.random.Generator, config: AttentionConfig, fs: float = 360.0,
                  bank=None) -> np.ndarray:
    """Random amplitude, offset, baseline wander and noise per window (see :class:`AttentionConfig`); (b, 1, n).

    With ``bank`` (:func:`.data.train_noise_bank`) and ``config.aug_nstdb`` > 0, real NSTDB noise first, each noisy
    window z-scored again."""
    b, _, n = x.shape
    if bank is not None and config.aug_nstdb > 0:
        from ..denoiser.data import mix_online

        pick = rng.random(b) < config.aug_nstdb
        if pick.any():
            noisy, _ = mix_online(x[pick, 0], bank, rng, snr_range=config.aug_nstdb_snr, p_clean=0.0,
                                  p_mixture=1.0 / 3.0)
            sd = noisy.std(axis=1, keepdims=True)
            x = x.copy()
            x[pick, 0] = (noisy - noisy.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    lo, hi = np.log(1.0 / (1.0 + config.aug_scale)), np.log(1.0 + config.aug_scale)
    scale = np.exp(rng.uniform(lo, hi, (b, 1, 1)))
    t = np.arange(n) / fs
    freq = rng.uniform(0.05, 0.5, (b, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, (b, 1, 1))
    wander = rng.uniform(0, config.aug_wander, (b, 1, 1)) * np.sin(2 * np.pi * freq * t + phase)
    offset = rng.uniform(-config.aug_wander, config.aug_wander, (b, 1, 1))
    noise = rng.standard_normal(x.shape) * rng.uniform(0, config.aug_noise, (b, 1, 1))
    return (x * scale + offset + wander + noise).astype(np.float32)


class WeightAverage:
    """The exponential moving average of a model's weights (``config.ema``): ``update`` after each optimiser step
    with the decay ``min(ema, (1 + step) / (10 + step))``; ``model`` is the averaged copy that validates, is kept
    as ``best.pt`` and exported. Only parameters are averaged: the model's one possible buffer (the qrs-width prior's
    fixed coefficients) is copied with it, and there is no batch norm."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1.0 - d)


def _with_average(save, read, avg: WeightAverage | None):
    """Checkpoint callbacks that also save / restore the weight average (``checkpoint/ema.pt``)."""
    if avg is None:
        return save, read

    def save_all(folder: Path) -> None:
        save(folder)
        torch.save(avg.model.state_dict(), folder / "ema.pt")

    def read_all(folder: Path) -> None:
        read(folder)
        path = folder / "ema.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the checkpoint of a run with ema > 0 holds its weight average")
        avg.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    return save_all, read_all


def _extra_summary(extra: SegmentSplit, config: AttentionConfig) -> dict:
    """What the extra training windows were, per epoch (each copy counted), without listing every ECG."""
    return {"ecgs": len(set(extra.record.tolist())), "windows_per_epoch": len(extra),
            "abnormal_per_epoch": int(extra.y.sum()), "repeat": list(config.extra_repeat)}


def train(data_dir, run_dir, config: AttentionConfig | None = None, *, device: str = "cpu", resume: bool = True,
          progress: bool = True, evaluate_after: bool = True, checkpoint_every_s: float = 300.0) -> dict:
    """Train on a ``segments`` dataset under ``config.protocol``; evaluate the best weights on the test split.

    Stops at ``config.epochs``, on early stopping (validation loss, ``config.patience`` epochs), at
    ``max_steps`` optimiser steps, or when ``time_limit_s`` seconds of this call have passed; in the last two
    cases the run validates, checkpoints and resumes (same call) from the same batch of the same epoch.
    A checkpoint is also written every ``checkpoint_every_s`` seconds.

    Returns the ``metrics.json`` content.
    """
    from tqdm.auto import tqdm

    config = config or AttentionConfig()
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    read_dataset_info(data_dir)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    dev = device_of(device)
    if config.extra_train:
        config.extra_train = str(Path(config.extra_train).resolve())
    splits = config_splits(data_dir, config, extra=True)
    train_set, val_set = splits["train"], splits["val"]
    if splits.get("extra") is not None:
        extra = splits["extra"]
        if extra.x.shape[1:] != train_set.x.shape[1:]:
            raise ValueError(f"extra_train windows are {extra.x.shape[-1]} samples, the training windows "
                             f"{train_set.x.shape[-1]}: build them at the same rate and window length")
        train_set = SegmentSplit(np.concatenate([train_set.x, extra.x]), np.concatenate([train_set.y, extra.y]),
                                 np.concatenate([train_set.record, extra.record]),
                                 np.concatenate([train_set.start, extra.start]))
    # val_records=0 (inter-patient): a refit on every DS1 record for a fixed number of epochs at a fixed learning
    # rate -- the epoch count a validated run chose; no early stopping, and the last epoch's weights are kept.
    refit = config.protocol == "inter-patient" and config.val_records == 0
    if not refit and (val_set is None or len(val_set) == 0):
        raise ValueError("the validation split is empty (early stopping needs one); raise val_records, or set "
                         "val_records=0 for a refit of a fixed number of epochs on every training record")
    bank = train_noise_bank(config, data_dir) if config.augment and config.aug_nstdb > 0 else None
    run = Run(run_dir, config, family="attention", data_dir=data_dir, resume=resume,
              checkpoint_every_s=checkpoint_every_s, time_limit_s=config.time_limit_s, resumable=RESUMABLE,
              sigterm=True)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = AttentionECGModel(config).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=config.plateau_patience,
                                                       factor=config.plateau_factor)
    weight = None
    if config.class_weight == "balanced":
        counts = np.bincount(train_set.y, minlength=config.n_classes).astype(np.float64)
        weight = torch.tensor(counts.sum() / (config.n_classes * np.maximum(counts, 1)), dtype=torch.float32).to(dev)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    prior = None
    if config.prior == "qrs-width":
        if config.prior_combine != "add":
            raise ValueError("a qrs-width prior trains with prior_combine='add'; 'max' is attached to a trained "
                             "network (attach_width_prior, tools/segments_width_prior.py)")
        # Fitted on the un-augmented training windows (MIT-BIH and extra_train), weighted as the loss; a resumed
        # run keeps its checkpoint's values (the card reads them from the model below).
        from ...dsp.qrs import qrs_width

        widths = qrs_width(train_set.x[:, 0], fs=FS, **WIDTH_OPTIONS)
        prior = {"kind": "qrs-width", "combine": "add", "windows": int(np.isfinite(widths).sum()),
                 "windows_without_width": int((~np.isfinite(widths)).sum())}
        if not run.resuming:
            coef = fit_width_prior(widths, train_set.y, None if weight is None else weight.cpu().numpy())
            with torch.no_grad():
                model.prior_coef.copy_(torch.tensor(coef, dtype=torch.float32))
    st = run.state
    st.extra.setdefault("improved_this_epoch", False)

    avg = WeightAverage(model, config.ema) if config.ema > 0 else None
    kept = model if avg is None else avg.model  # the weights that validate and become best.pt
    save, read = _with_average(*torch_state(model, opt, sched, dev), avg)
    if run.resuming:
        run.load(read)
    n_train = len(train_set)
    n_batches = math.ceil(n_train / config.batch_size)
    trained_now = 0
    if config.max_steps is not None and st.step >= config.max_steps:
        run.stop("max_steps")  # a resumed run that already reached its step budget: evaluate only
    try:
        while st.stop_reason is None and st.epoch < config.epochs:
            # One permutation per epoch from (seed, epoch): a resumed run sees the same batches.
            perm = np.random.default_rng([config.seed, st.epoch]).permutation(n_train)
            model.train()
            loss_sum, loss_n = 0.0, 0
            bar = tqdm(total=n_batches, initial=st.step_in_epoch, disable=not progress,
                       desc=f"epoch {st.epoch + 1}/{config.epochs} [{config.protocol}]", dynamic_ncols=True)
            budget = None
            for b in range(st.step_in_epoch, n_batches):
                idx = np.sort(perm[b * config.batch_size:(b + 1) * config.batch_size])
                xnp = train_set.x[idx]
                if config.augment:
                    xnp = augment_batch(xnp, np.random.default_rng([config.seed, st.epoch, b]), config, bank=bank)
                xb = torch.from_numpy(xnp).to(dev)
                yb = torch.from_numpy(train_set.y[idx]).to(dev)
                logits, _ = model(xb, need_weights=False)
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if avg is not None:
                    avg.update(model, st.step)
                loss_sum += loss.detach().item() * len(idx)
                loss_n += len(idx)
                st.step_in_epoch = b + 1
                st.step += 1
                trained_now += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}")
                if config.max_steps is not None and st.step >= config.max_steps:
                    budget = "max_steps"
                    break
                if run.out_of_time():
                    budget = "time_limit"
                    break
                if run.due():
                    run.save(save)
            bar.close()
            if run.terminated:  # SIGTERM: checkpoint before the partial epoch's validation (a SIGKILL may follow)
                run.save(save)
            full_epoch = st.step_in_epoch >= n_batches
            if refit:
                val_loss = val_acc = None
                _save_torch({"model": kept.state_dict(), "config": config.to_dict(), "step": st.step,
                             "epoch": st.epoch + int(full_epoch), "val_loss": None}, run_dir / "best.pt")
            else:
                val_loss, val_acc = _val_loss_acc(kept, val_set, dev, 2 * config.batch_size, progress)
            if not refit and run.improved(val_loss):
                st.extra["improved_this_epoch"] = True
                _save_torch({"model": kept.state_dict(), "config": config.to_dict(), "step": st.step,
                             "epoch": st.epoch + 1, "val_loss": val_loss}, run_dir / "best.pt")
            row = run.log(partial_epoch=int(not full_epoch), train_loss=loss_sum / max(loss_n, 1),
                          **({} if refit else {"val_loss": val_loss, "val_accuracy": val_acc}), lr=opt.param_groups[0]["lr"])
            if full_epoch:
                if not refit:
                    sched.step(val_loss)
                st.bad_epochs = 0 if st.extra["improved_this_epoch"] else st.bad_epochs + 1
                st.epoch, st.step_in_epoch = st.epoch + 1, 0
                st.extra["improved_this_epoch"] = False
                if not refit and st.bad_epochs >= config.patience:
                    run.stop("early_stopping")
                elif st.epoch >= config.epochs:
                    run.stop("epochs")
            if budget is not None:
                run.stop(budget)
            if progress:
                val = "" if refit else f"  val loss {val_loss:.4f}  val acc {val_acc:.4f}"
                print(f"epoch {row['epoch']}{' (partial)' if not full_epoch else ''} step {row['step']}: "
                      f"train loss {row['train_loss']:.4f}{val}", file=sys.stderr)
            run.save(save)
    finally:
        run.release_sigterm()
    if trained_now == 0 and not (run_dir / "best.pt").is_file():
        raise ValueError(f"{run_dir}: nothing to train (already finished at epoch {st.epoch}); raise --epochs")
    if st.stop_reason is None:
        run.stop("epochs")
        run.save(save)
    summary = run.summary()
    training = {
        "protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
        **summary, "best_val_loss": summary["best_score"], "steps_per_epoch": n_batches, "device": str(dev),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "python": platform.python_version(),
    }
    metrics = _read_metrics(run_dir)
    metrics.update({"protocol": config.protocol, "protocol_label": PROTOCOL_LABELS[config.protocol],
                    "data_dir": str(data_dir.resolve()),
                    "splits": {k: v.summary() for k, v in splits.items() if v is not None and k != "extra"},
                    **({"extra_train": _extra_summary(splits["extra"], config)} if "extra" in splits else {}),
                    **({"prior": {**prior, **dict(zip(("intercept", "slope", "mean_ms", "sd_ms"),
                                                      (float(v) for v in model.prior_coef)))}} if prior else {}),
                    "training": training})
    write_json(run_dir / "metrics.json", metrics)
    if evaluate_after and not run.terminated:  # a SIGTERM'd session ends here; the test evaluation waits for the end
        return evaluate(run_dir, data_dir, device=device, progress=progress, _splits=splits)
    return metrics
