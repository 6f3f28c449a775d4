"""Training of the Attention U-Net on a ``denoise-pairs`` dataset (SPEC §2.3), resumable and deterministic.

Run folder layout::

    RUN_DIR/config.json           the DenoiserConfig of the run
    RUN_DIR/last.pt               model + optimiser + scheduler + position (resume point)
    RUN_DIR/best.pt               weights with the lowest validation loss so far
    RUN_DIR/best_attention_unet.pth  the same weights as a bare state_dict (the seed's file)
    RUN_DIR/metrics.json          {"training": {...history...}, "evaluation": {...}}
    RUN_DIR/loss.png              training / validation loss curves
    RUN_DIR/train.log             one line per validation

Determinism: the epoch's pair order comes from ``default_rng([seed, epoch])`` and each step's augmentation
from ``default_rng([seed, epoch, step])``, so a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import DenoiserConfig
from .data import PairSet, load_split, normalize_pairs, split_windows
from .model import AttentionUNet, count_parameters

__all__ = ["HybridLoss", "train", "load_model", "augment", "write_json_atomic"]


class HybridLoss(nn.Module):
    """``w1·L1 + w2·MSE + w3·L1(Δpred, Δtarget)`` with Δ the first difference along time (seed: 0.5 each)."""

    def __init__(self, weights=(0.5, 0.5, 0.5)):
        super().__init__()
        self.w = tuple(float(v) for v in weights)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l1 = torch.mean(torch.abs(pred - target))
        mse = torch.mean((pred - target) ** 2)
        grad = torch.mean(torch.abs(torch.diff(pred, dim=-1) - torch.diff(target, dim=-1)))
        return self.w[0] * l1 + self.w[1] * mse + self.w[2] * grad


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, flip_p: float, scale_range) -> tuple:
    """The seed's train-only augmentation: negate both with p=flip_p, multiply both by U(scale_range)."""
    n = x.shape[0]
    sign = np.where(rng.random(n) < flip_p, -1.0, 1.0)
    scale = rng.uniform(scale_range[0], scale_range[1], size=n)
    g = (sign * scale).astype(np.float32)[:, None]
    return x * g, y * g


def write_json_atomic(path: Path, obj) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _save_atomic(obj, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_model(run_or_checkpoint, device: str = "cpu") -> tuple[AttentionUNet, dict]:
    """``best.pt`` of a run folder (or any checkpoint / bare state_dict file) → (eval-mode model, checkpoint)."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        p = p / "best.pt"
    if not p.is_file():
        raise FileNotFoundError(f"denoiser checkpoint {p} not found (train a run first: ecgcore train denoiser)")
    ckpt = torch.load(p, map_location=device, weights_only=False)
    if isinstance(ckpt, dict) and "model" in ckpt:
        state, cfg = ckpt["model"], ckpt.get("config", {})
    elif isinstance(ckpt, dict):
        state, cfg, ckpt = ckpt, {}, {"model": ckpt}
    else:
        raise ValueError(f"{p}: not a denoiser checkpoint (expected a state_dict or a dict with 'model')")
    model = AttentionUNet(base_channels=int(cfg.get("base_channels", 32)))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{p}: weights do not fit the Attention U-Net: {exc}") from None
    return model.to(device).eval(), ckpt


def _validate(model, pairs: PairSet, index: np.ndarray, loss_fn, device, batch: int = 64) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, index.size, batch):
            noisy, clean = pairs.pairs(index[i: i + batch])
            x, y, _, _ = normalize_pairs(noisy, clean)
            xt, yt = torch.from_numpy(x[:, None]).to(device), torch.from_numpy(y[:, None]).to(device)
            total += float(loss_fn(model(xt), yt)) * x.shape[0]
            n += x.shape[0]
    model.train()
    return total / max(n, 1)


def _plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [h["train_loss"] for h in history], label="train (mean since last validation)")
    ax.plot(steps, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("hybrid loss (z-score units)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def train(dataset_dir, run_dir, config: DenoiserConfig | None = None, *, device: str = "cpu",
          records: list[str] | None = None, progress: bool = True, threads: int | None = None,
          command: str | None = None) -> dict:
    """Train (or resume) an Attention U-Net denoiser run.

    Parameters
    ----------
    dataset_dir : output of ``ecgcore preprocess denoise-pairs`` (its ``train`` split is used)
    run_dir : run folder; if it holds ``last.pt`` the run resumes from there (the saved config wins,
        except the stopping fields ``epochs``, ``max_steps``, ``time_limit_s``, ``val_every``)
    config : hyper-parameters (default: the seed's)
    device : ``"cpu"`` or ``"cuda"``
    records : only these train records (tests / quick runs)
    threads : torch intra-op threads (default: leave torch's setting)
    command : the command line that started this session (recorded in metrics.json and the card)

    Returns
    -------
    The ``training`` section of ``metrics.json`` (history, best validation loss, steps, timing).
    """
    from tqdm.auto import tqdm

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
    if threads:
        torch.set_num_threads(int(threads))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = config or DenoiserConfig()
    last = run_dir / "last.pt"
    ckpt = torch.load(last, map_location=device, weights_only=False) if last.is_file() else None
    if ckpt is not None:
        saved = DenoiserConfig.from_dict(ckpt["config"])
        for k in ("epochs", "max_steps", "time_limit_s", "val_every"):
            setattr(saved, k, getattr(cfg, k))
        cfg = saved
    write_json_atomic(run_dir / "config.json", cfg.to_dict())

    torch.manual_seed(cfg.seed)
    data = load_split(dataset_dir, "train", records=records)
    tr_w, va_w = split_windows(data.record, cfg.val_fraction, cfg.seed)
    per_w = data.noisy.shape[1] * data.noisy.shape[2]
    tr_pairs = (tr_w[:, None] * per_w + np.arange(per_w)).reshape(-1)
    va_pairs = (va_w[:, None] * per_w + np.arange(per_w)).reshape(-1)
    if cfg.val_pairs and va_pairs.size > cfg.val_pairs:
        va_pairs = np.sort(np.random.default_rng([cfg.seed, 1]).choice(va_pairs, cfg.val_pairs, replace=False))
    if tr_pairs.size == 0 or va_pairs.size == 0:
        raise ValueError(f"{dataset_dir}: too few windows to hold out {cfg.val_fraction:.0%} for validation")
    steps_per_epoch = -(-tr_pairs.size // cfg.batch_size)
    val_every = cfg.val_every or steps_per_epoch

    model = AttentionUNet(cfg.base_channels).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    loss_fn = HybridLoss(cfg.loss_weights)
    state = {"step": 0, "best_val": float("inf"), "best_step": -1, "history": [], "elapsed_s": 0.0,
             "sessions": []}
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state.update(ckpt["state"])

    def checkpoint(path: Path, full: bool):
        obj = {"model": model.state_dict(), "config": cfg.to_dict(), "step": state["step"]}
        if full:
            obj.update(optimizer=opt.state_dict(), scheduler=sched.state_dict(), state=state)
        _save_atomic(obj, path)

    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    t0 = time.monotonic()
    elapsed0 = state["elapsed_s"]
    session = {"start_step": state["step"], "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "device": device, "threads": torch.get_num_threads(),
               "command": command or ""}
    bar = tqdm(total=total_steps, initial=state["step"], desc="train denoiser", unit="step", disable=not progress)
    running, n_running = 0.0, 0
    stopped = "completed"
    model.train()
    log = open(run_dir / "train.log", "a")
    try:
        while state["step"] < total_steps:
            if cfg.time_limit_s and time.monotonic() - t0 >= cfg.time_limit_s:
                stopped = "time_limit"
                break
            epoch, pos = divmod(state["step"], steps_per_epoch)
            order = tr_pairs[np.random.default_rng([cfg.seed, epoch]).permutation(tr_pairs.size)]
            idx = order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size]
            noisy, clean = data.pairs(idx)
            x, y, _, _ = normalize_pairs(noisy, clean)
            x, y = augment(x, y, np.random.default_rng([cfg.seed, epoch, pos]), cfg.flip_p, cfg.scale_range)
            xt, yt = torch.from_numpy(x[:, None]).to(device), torch.from_numpy(y[:, None]).to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt), yt)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            state["step"] += 1
            running += loss.item()
            n_running += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running / n_running:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
            if state["step"] % val_every == 0 or state["step"] == total_steps:
                val = _validate(model, data, va_pairs, loss_fn, device)
                sched.step(val)
                state["elapsed_s"] = elapsed0 + time.monotonic() - t0
                rec = {"step": state["step"], "epoch": state["step"] / steps_per_epoch,
                       "train_loss": running / n_running, "val_loss": val, "lr": opt.param_groups[0]["lr"],
                       "elapsed_s": round(state["elapsed_s"], 1)}
                state["history"].append(rec)
                running, n_running = 0.0, 0
                log.write(json.dumps(rec) + "\n")
                log.flush()
                if val < state["best_val"]:
                    state["best_val"], state["best_step"] = val, state["step"]
                    checkpoint(run_dir / "best.pt", full=False)
                    _save_atomic(model.state_dict(), run_dir / "best_attention_unet.pth")
                checkpoint(last, full=True)
                _plot_losses(state["history"], run_dir / "loss.png")
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()
        log.close()
    state["elapsed_s"] = elapsed0 + time.monotonic() - t0
    session.update(end_step=state["step"], stopped=stopped, wall_s=round(time.monotonic() - t0, 1))
    state["sessions"].append(session)
    checkpoint(last, full=True)
    if not (run_dir / "best.pt").is_file():
        checkpoint(run_dir / "best.pt", full=False)
        _save_atomic(model.state_dict(), run_dir / "best_attention_unet.pth")
    summary = {
        "dataset": str(Path(dataset_dir).resolve()), "train_records": sorted(set(data.record.tolist())),
        "train_pairs": int(tr_pairs.size), "val_pairs": int(va_pairs.size), "batch_size": cfg.batch_size,
        "steps": state["step"], "steps_per_epoch": steps_per_epoch, "epochs_done": state["step"] / steps_per_epoch,
        "pairs_seen": state["step"] * cfg.batch_size, "best_val_loss": state["best_val"],
        "best_step": state["best_step"], "elapsed_s": round(state["elapsed_s"], 1), "stopped": stopped,
        "parameters": count_parameters(model), "device": device, "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "sessions": state["sessions"],
        "history": state["history"],
        "command": next((x.get("command") for x in state["sessions"][::-1] if x.get("command")), ""),
    }
    metrics = _read_metrics(run_dir)
    metrics["training"] = summary
    write_json_atomic(run_dir / "metrics.json", metrics)
    _plot_losses(state["history"], run_dir / "loss.png")
    return summary
