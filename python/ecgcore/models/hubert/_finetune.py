"""Fine-tuning (SPEC 5.6) and the test protocol (SPEC 5.7).

Run folder (the shared one of :mod:`ecgcore.models._run`): ``config.json``, ``checkpoint/last.pt`` (resume point),
``history.csv``, ``learning_curve.png``, ``run.json`` (status and summary); plus ``best.pt`` (best validation
macro-AUROC); ``evaluate`` adds ``metrics.json``, ``performance.csv`` (rows = metrics, columns = labels, as the
seed) and ``probs.npy``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import inputs as I
from . import metrics as M
from .._run import Run
from ._common import RUN_STOP, after_validation, optimiser_step, atomic_torch_save, make_optimizer, merge_json
from .config import HubertConfig, HubertTrainConfig
from .model import HubertClassifier, count_parameters, load_pretrained, seed_everything

RESUMABLE = ("max_steps", "time_limit_s", "patience", "val_every", "threads")

__all__ = ["load_task", "finetune", "predict", "class_weights", "load_classifier"]


def load_task(data_dir, task: str = "auto", labels_csv=None):
    """-> items, Y (N, C), split (N,) of train/val/test, classes, task_type ("multi_label" | "multi_class").

    ``task``: ``ptbxl-super`` (PTB-XL superclasses from ``ptbxl_database.csv``, folds 1-8/9/10), ``csv`` (a
    ``--labels`` CSV, multi-label), ``csv-multiclass`` (one-hot CSV, softmax + CE), or ``auto`` (CSV when given, else
    PTB-XL).
    """
    if task == "auto":
        task = "csv" if labels_csv else "ptbxl-super"
    if task == "ptbxl-super":
        items, Y, folds, classes = I.ptbxl_table(data_dir)
        return items, Y, I.split_of(items, folds=folds), classes, "multi_label"
    if task in ("csv", "csv-multiclass"):
        if not labels_csv:
            raise ValueError(f"task {task!r} needs --labels CSV")
        items, Y, splits, classes = I.labels_table(labels_csv)
        missing = [i for i in items if not ((Path(data_dir) / i).with_suffix(".hea").is_file()
                                            or (Path(data_dir) / i).is_file())]
        if missing:
            raise FileNotFoundError(f"{labels_csv}: {len(missing)} record(s) not under {data_dir}, e.g. {missing[0]}")
        if task == "csv-multiclass" and not np.all(Y.sum(1) == 1):
            raise ValueError(f"{labels_csv}: multi-class labels must be one-hot (exactly one 1 per row)")
        return items, Y, I.split_of(items, splits=splits), classes, \
            ("multi_class" if task == "csv-multiclass" else "multi_label")
    raise ValueError(f"unknown task {task!r}; expected auto, ptbxl-super, csv or csv-multiclass")


def class_weights(Y: np.ndarray, task_type: str) -> np.ndarray:
    """Loss weights from the training targets, in **class-index order**.

    multi_label: BCE ``pos_weight`` = (N - count) / count per label (count floored at 1).
    multi_class: CE weight = n_classes / count per class. The seed took ``value_counts()`` (sorted by frequency,
    not class index), so its weights landed on the wrong classes; here ``counts[c]`` belongs to class ``c``.
    """
    Y = np.asarray(Y)
    counts = np.maximum(Y.sum(0), 1.0)
    if task_type == "multi_label":
        return ((len(Y) - counts) / counts).astype(np.float32)
    return (Y.shape[1] / counts).astype(np.float32)


def _freeze(model: HubertClassifier, *, unfreeze_conv: bool, blocks: int, freeze_all: bool = False) -> None:
    enc = model.hubert_ecg
    n = enc.config.num_layers
    blocks = n if blocks < 0 else min(blocks, n)
    for p in enc.parameters():
        p.requires_grad = not freeze_all
    if freeze_all:
        return
    for p in enc.feature_extractor.parameters():
        p.requires_grad = unfreeze_conv
    if blocks < n:
        # The seed freezes the whole transformer encoder except its last `blocks` layers; the feature projection
        # stays trainable.
        for p in enc.encoder.parameters():
            p.requires_grad = False
        enc.masked_spec_embed.requires_grad = False
        for layer in enc.encoder.layers[n - blocks:]:
            for p in layer.parameters():
                p.requires_grad = True


def _loss(z, y, task_type, weights):
    if task_type == "multi_label":
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=weights)
    return F.cross_entropy(z, y.argmax(1), weight=weights)


def _probs(z, task_type):
    return torch.sigmoid(z) if task_type == "multi_label" else torch.softmax(z, -1)


@torch.no_grad()
def predict(model, X, task_type: str, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = [_probs(model(torch.from_numpy(X[s:s + batch_size])), task_type).numpy()
           for s in range(0, len(X), batch_size)]
    return np.concatenate(out)


def _val_loss(P, Y, task_type, use_weights) -> float:
    """Validation loss from probabilities; weighted with the validation set's own class weights (as the seed)."""
    p = torch.from_numpy(P).double().clamp(1e-7, 1 - 1e-7)
    y = torch.from_numpy(Y).double()
    w = torch.from_numpy(class_weights(Y, task_type)).double() if use_weights else None
    if task_type == "multi_label":
        return float(F.binary_cross_entropy_with_logits(torch.logit(p), y, pos_weight=w))
    return float(F.nll_loss(torch.log(p), y.argmax(1), weight=w))


def _macro_auroc(Y, P) -> float:
    vals = [M.auroc(Y[:, c], P[:, c]) for c in range(Y.shape[1])]
    return float(M.nanmean(vals))


def finetune(data_dir, run_dir, config: HubertTrainConfig | None = None, *, resume: bool = True,
             progress: bool = True, log=print) -> dict:
    """Fine-tune a (pretrained or randomly initialised) HuBERT-ECG encoder with a mean-pooled head.

    ``config`` (:class:`HubertTrainConfig`, ``stage="finetune"``): ``init`` (pretraining checkpoint / HF folder;
    None trains from scratch at ``size``), ``task`` / ``labels_csv``, ``head``, ``head_hidden``, ``activation``,
    ``blocks`` (transformer layers left trainable, from the top; -1 = all, the seed's default is 0),
    ``linear_probe`` (freeze the whole encoder: random-init + linear probe is a strong baseline),
    ``freezing_steps`` (train only the head for this many steps, then unfreeze and rebuild optimizer/scheduler),
    ``random_crop`` (time-aligned random 5-s crops of the 10-s records, the seed's ``--random_crop``),
    ``unfreeze_conv``, ``dropout``, ``use_loss_weights``, ``max_steps``, ``batch_size``, ``lr``, ``weight_decay``,
    ``warmup``, ``val_every``, ``patience`` (validations without a macro-AUROC gain >= 1e-3), ``time_limit_s``,
    ``seed``, ``threads``. An interrupted run resumes from ``checkpoint/last.pt`` (``resume=False``: start over).
    """
    c = config or HubertTrainConfig(stage="finetune")
    if c.stage != "finetune":
        raise ValueError(f"finetune needs a config with stage='finetune', got {c.stage!r}")
    init, size, task, labels_csv, head, head_hidden, activation = c.init, c.size, c.task, c.labels_csv, c.head, \
        c.head_hidden, c.activation
    steps, batch_size, lr, weight_decay, warmup = c.max_steps, c.batch_size, c.lr, c.weight_decay, c.warmup
    use_loss_weights, unfreeze_conv, blocks, linear_probe = c.use_loss_weights, c.unfreeze_conv, c.blocks, \
        c.linear_probe
    freezing_steps, random_crop, dropout, val_interval, patience, seed = c.freezing_steps, c.random_crop, c.dropout, \
        c.val_every, c.patience, c.seed
    if c.threads:
        torch.set_num_threads(int(c.threads))
    data_dir, run_dir = Path(data_dir), Path(run_dir)
    run = Run(run_dir, c, family="hubert", data_dir=data_dir, resume=resume, time_limit_s=c.time_limit_s,
              resumable=RESUMABLE)
    seed_everything(seed)
    items, Y, split, classes, task_type = load_task(data_dir, task, labels_csv)
    ck = None
    if run.resuming:
        ck = torch.load(run.checkpoint_dir / "last.pt", map_location="cpu", weights_only=False)
        args = ck["args"]
        head, head_hidden, activation = args["head"], args["head_hidden"], args["activation"]
        cfg = HubertConfig.from_dict(ck["model_config"])
    elif init:
        cfg = load_pretrained(init).hubert_ecg.config
    else:
        cfg = HubertConfig.from_size(size)
    if dropout is not None:
        cfg.dropout = float(dropout)
    cfg.mask_prob = 0.0
    model = HubertClassifier(cfg, len(classes), head=head, head_hidden=head_hidden, activation=activation)
    if ck is not None:
        model.load_state_dict(ck["model_state_dict"])
    elif init:
        pre = load_pretrained(init)
        model.hubert_ecg.load_state_dict(pre.hubert_ecg.state_dict())
    _freeze(model, unfreeze_conv=unfreeze_conv, blocks=blocks, freeze_all=linear_probe)

    tr, va = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(f"need train and validation records; got {len(tr)} / {len(va)}")
    X5 = I.load_inputs(data_dir, items, cache=run_dir, progress=progress)
    X10 = I.load_inputs(data_dir, [items[i] for i in tr], seconds=10.0, cache=run_dir, progress=progress) \
        if random_crop else None
    weights = torch.from_numpy(class_weights(Y[tr], task_type)) if use_loss_weights else None

    def build_opt(total):
        return make_optimizer(model.parameters(), lr=lr, weight_decay=weight_decay, total_steps=total, warmup=warmup)

    frozen_phase = freezing_steps > 0 and (ck is None or ck["global_step"] < freezing_steps)
    if frozen_phase:
        _freeze(model, unfreeze_conv=False, blocks=0, freeze_all=True)
        opt, sched = build_opt(freezing_steps)
    else:
        opt, sched = build_opt(steps - freezing_steps if freezing_steps else steps)
    step, best, patience_count = 0, -1.0, 0
    if ck is not None:
        opt.load_state_dict(ck["optimizer_state_dict"])
        sched.load_state_dict(ck["lr_scheduler_state_dict"])
        step, best, patience_count = ck["global_step"], ck["best_val_auroc"], ck["patience_count"]
        torch.set_rng_state(ck["torch_rng"])
    n_train = count_parameters(model)
    log(f"fine-tuning {task_type} ({', '.join(classes)}) from {'scratch' if not init else init}: {n_train:,} parameters "
        f"({sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable), {len(tr)} train / "
        f"{len(va)} val, steps {step}->{steps}")
    args = {"head": head, "head_hidden": head_hidden, "activation": activation, "task": task, "init": str(init),
            "labels_csv": str(labels_csv) if labels_csv else None, "linear_probe": linear_probe, "blocks": blocks,
            "unfreeze_conv": unfreeze_conv, "random_crop": random_crop, "lr": lr, "batch_size": batch_size}

    def state():
        return {"global_step": step, "patience_count": patience_count, "model_config": cfg.to_dict(),
                "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "lr_scheduler_state_dict": sched.state_dict(), "best_val_auroc": best, "classes": classes,
                "task_type": task_type, "args": args, "elapsed_s": run.seconds,
                "torch_rng": torch.get_rng_state(), "np_rng": rng.bit_generator.state, "linear": head == "linear",
                "finetuning_vocab_size": len(classes), "target_val_auroc": best}

    def checkpoint():
        run.state.step, run.state.bad_epochs = step, patience_count
        run.save(lambda folder: torch.save(state(), folder / "last.pt"))

    rng = np.random.default_rng(seed)
    if ck is not None and ck.get("np_rng") is not None:  # the batch sampler goes on where it stopped
        rng.bit_generator.state = ck["np_rng"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=step, desc="finetune", unit="step", leave=False)
    tr_pos = {int(i): k for k, i in enumerate(tr)}
    run_loss, n_run, stop = 0.0, 0, "steps"
    model.train()
    while step < steps:
        if frozen_phase and step >= freezing_steps:
            frozen_phase = False
            _freeze(model, unfreeze_conv=unfreeze_conv, blocks=blocks, freeze_all=linear_probe)
            opt, sched = build_opt(steps - freezing_steps)
        idx = rng.choice(tr, size=min(batch_size, len(tr)), replace=False)
        if X10 is not None:
            crops = I.random_crops(X10[[tr_pos[int(i)] for i in idx]], 1, n_leads=cfg.n_leads,
                                   crop=5 * cfg.input_fs, rng=rng)[0]
            x = torch.from_numpy(crops)
        else:
            x = torch.from_numpy(X5[idx])
        loss = _loss(model(x), torch.from_numpy(Y[idx]), task_type, weights)
        optimiser_step(loss, model, opt, sched, clip=1.0)
        step += 1
        run_loss, n_run = run_loss + float(loss.detach()), n_run + 1
        if bar is not None:
            bar.update(1)
        if step % val_interval == 0 or step == steps or run.out_of_time():
            P = predict(model, X5[va], task_type)
            model.train()
            vloss = _val_loss(P, Y[va], task_type, use_loss_weights)
            vauc = _macro_auroc(Y[va], P)
            improved = vauc >= best + 1e-3
            if improved:
                best, patience_count = vauc, 0
                run.state.best_score, run.state.best_step = -vauc, step
                atomic_torch_save(state(), run_dir / "best.pt")
            else:
                patience_count += 1
            run.state.step = step
            run.log(train_loss=run_loss / n_run, val_loss=vloss, val_macro_auroc=vauc, lr=sched.get_last_lr()[0])
            log(f"step {step}: train {run_loss / n_run:.4f} val loss {vloss:.4f} macro-AUROC {vauc:.4f}"
                f"{' *' if improved else ''}")
            run_loss, n_run = 0.0, 0
            stop = after_validation(run, patience, patience_count)
            if stop != "steps":
                break
            checkpoint()
    if bar is not None:
        bar.close()
    run.stop(RUN_STOP[stop])
    checkpoint()
    summary = {"task_type": task_type, "classes": classes, "size": cfg.size, "parameters": n_train, "steps": step,
               "stopped_by": stop, "best_val_macro_auroc": best, "train_records": int(len(tr)),
               "val_records": int(len(va)), "test_records": int((split == "test").sum()), "init": str(init),
               "elapsed_s": round(run.seconds, 1), **args,
               "command": " ".join(sys.argv), "torch_threads": torch.get_num_threads()}
    merge_json(run_dir / "run.json", summary)
    return {**summary, **run.summary()}


def load_classifier(run_dir, which: str = "best.pt"):
    """-> (model in eval mode, checkpoint dict)."""
    path = Path(run_dir) / which
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected a fine-tuning run folder)")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if "classes" not in ck:
        raise ValueError(f"{path}: not a fine-tuning checkpoint (no classes)")
    cfg = HubertConfig.from_dict(ck["model_config"])
    a = ck["args"]
    model = HubertClassifier(cfg, len(ck["classes"]), head=a["head"], head_hidden=a["head_hidden"],
                             activation=a["activation"])
    model.load_state_dict(ck["model_state_dict"])
    model.eval()
    return model, ck
