"""Training of the Attention U-Net on a ``denoise-pairs`` dataset (SPEC §2.3), resumable and deterministic.

Run folder layout (the shared one of :mod:`ecgcore.models._run`, plus the family's weights)::

    RUN_DIR/config.json           family, DenoiserConfig, dataset, command
    RUN_DIR/checkpoint/           model + optimiser + scheduler + position (resume point), every 5 min
    RUN_DIR/history.csv           one row per validation; RUN_DIR/learning_curve.png its curves
    RUN_DIR/run.json              stop reason, steps, best step, seconds
    RUN_DIR/best.pt               weights with the lowest validation loss so far
    RUN_DIR/best_attention_unet.pth  the same weights as a bare state_dict (the seed's file; not written for
                                     ``residual`` runs, whose bare weights would load as the seed form)
    RUN_DIR/metrics.json          {"training": {...}, "evaluation": {...}}

Determinism: the epoch's pair order comes from ``default_rng([seed, epoch])`` and each step's augmentation
from ``default_rng([seed, epoch, step])``, so a resumed run draws exactly what an uninterrupted one would.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..._fs import atomic_write, write_json
from .._run import Run, torch_state
from .config import DenoiserConfig
from .data import (PairSet, load_extra_clean, load_split, mix_online, noise_bank, normalize_pairs, prefilter_rows,
                   read_dataset_meta, split_windows)
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
    write_json(path, obj)


def _save_atomic(obj, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def load_model(run_or_checkpoint, device: str = "cpu") -> tuple[AttentionUNet, dict]:
    """``best.pt`` of a run folder (or any checkpoint / bare state_dict file) → (eval-mode model, checkpoint)."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        p = p / "best.pt"
    if not p.is_file():
        raise FileNotFoundError(f"denoiser checkpoint {p} not found (train a run first: ecgcore train denoiser)")
    try:
        ckpt = torch.load(p, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError/EOFError for foreign or damaged files
        raise ValueError(f"{p}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "model" in ckpt:
        state, cfg = ckpt["model"], ckpt.get("config", {})
    elif isinstance(ckpt, dict):
        state, cfg, ckpt = ckpt, {}, {"model": ckpt}
    else:
        raise ValueError(f"{p}: not a denoiser checkpoint (expected a state_dict or a dict with 'model')")
    context = cfg.get("context") or ("attention" if any(str(k).startswith("context.") for k in state) else "")
    model = AttentionUNet(base_channels=int(cfg.get("base_channels", 32)), residual=bool(cfg.get("residual", False)),
                          context=context)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{p}: weights do not fit the Attention U-Net: {exc}") from None
    return model.to(device).eval(), ckpt


def _validate(model, pairs: PairSet, index: np.ndarray, loss_fn, device, batch: int = 64,
              prefilter_hz: float = 0.0) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, index.size, batch):
            noisy, clean = pairs.pairs(index[i: i + batch])
            x, y, _, _ = normalize_pairs(prefilter_rows(noisy, prefilter_hz, pairs.fs), clean)
            xt, yt = torch.from_numpy(x[:, None]).to(device), torch.from_numpy(y[:, None]).to(device)
            total += float(loss_fn(model(xt), yt)) * x.shape[0]
            n += x.shape[0]
    model.train()
    return total / max(n, 1)


def _read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else {}


RESUMABLE = ("epochs", "max_steps", "time_limit_s", "val_every", "patience", "threads")


def train(data_dir, run_dir, config: DenoiserConfig | None = None, *, device: str = "cpu",
          records: list[str] | None = None, progress: bool = True, threads: int | None = None,
          resume: bool = True, command: str | None = None, checkpoint_every_s: float = 300.0) -> dict:
    """Train (or resume) an Attention U-Net denoiser run.

    Parameters
    ----------
    data_dir : output of ``ecgcore preprocess denoise-pairs`` (its ``train`` split is used)
    run_dir : run folder; if it holds a ``checkpoint/`` the run resumes from there (only the budgets
        ``epochs``, ``max_steps``, ``time_limit_s``, ``val_every``, ``patience`` may change)
    config : hyper-parameters (default: the seed's)
    device : ``"cpu"`` or ``"cuda"``
    records : only these train records (tests / quick runs)
    threads : torch intra-op threads (default: leave torch's setting)
    resume : False starts over even when ``run_dir`` holds a checkpoint
    command : the command line that started this session (recorded in metrics.json and the card)
    checkpoint_every_s : seconds between checkpoints (also at every validation and at the end)

    Returns
    -------
    The ``training`` section of ``metrics.json`` (history, best validation loss, steps, timing).
    """
    from tqdm.auto import tqdm

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
    threads = threads or (config.threads if config is not None else None)
    if threads:
        torch.set_num_threads(int(threads))
    run_dir = Path(run_dir)
    cfg = config or DenoiserConfig()
    torch.manual_seed(cfg.seed)
    data = load_split(data_dir, "train", records=records)
    tr_w, va_w = split_windows(data.record, cfg.val_fraction, cfg.seed)
    per_w = data.noisy.shape[1] * data.noisy.shape[2]
    tr_pairs = (tr_w[:, None] * per_w + np.arange(per_w)).reshape(-1)
    va_pairs = (va_w[:, None] * per_w + np.arange(per_w)).reshape(-1)
    if cfg.val_pairs and va_pairs.size > cfg.val_pairs:
        va_pairs = np.sort(np.random.default_rng([cfg.seed, 1]).choice(va_pairs, cfg.val_pairs, replace=False))
    if tr_pairs.size == 0 or va_pairs.size == 0:
        raise ValueError(f"{data_dir}: too few windows to hold out {cfg.val_fraction:.0%} for validation")
    if cfg.mixing not in ("fixed", "online"):
        raise ValueError(f"mixing must be 'fixed' or 'online', got {cfg.mixing!r}")
    bank = noise_bank(data_dir, part="train") if cfg.mixing == "online" else None
    pool, extra_info = data.clean, None
    if cfg.extra_clean:  # clean windows of other people: training only, noise mixed online like the DS1 windows'
        extra, extra_info = load_extra_clean(cfg.extra_clean, data.fs, data.clean.shape[1],
                                             band=read_dataset_meta(data_dir)[1]["options"].get("band"))
        first = data.clean.shape[0]
        pool = np.concatenate([data.clean, extra])
        tr_pairs = np.concatenate([tr_pairs, ((first + np.arange(extra.shape[0]))[:, None] * per_w
                                              + np.arange(per_w)).reshape(-1)])
    steps_per_epoch = -(-tr_pairs.size // cfg.batch_size)
    val_every = cfg.val_every or steps_per_epoch
    init_onnx = init_cost = init_state = None
    if cfg.init_from:  # checked before the run folder is touched
        from .weights import export_context, export_graph, init_training, state_from_onnx

        init_onnx = export_graph(cfg.init_from, cfg.base_channels)
        init_cost = init_training(cfg.init_from)
        init_context = export_context(cfg.init_from)
        if init_context and not cfg.context:
            raise ValueError(f"init_from {cfg.init_from}: its graph has a global-context block; set context={init_context}")
        init_state = state_from_onnx(init_onnx, cfg.base_channels, context=init_context)
    run = Run(run_dir, cfg, family="denoiser", data_dir=data_dir, resume=resume,
              checkpoint_every_s=checkpoint_every_s, time_limit_s=cfg.time_limit_s or None, resumable=RESUMABLE,
              sigterm=True)
    st = run.state
    st.extra.setdefault("sessions", [])
    if init_cost is not None:  # the starting weights' own training, as their card said when this run began
        st.extra.setdefault("init_training", init_cost)

    model = AttentionUNet(cfg.base_channels, residual=cfg.residual, context=cfg.context).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    loss_fn = HybridLoss(cfg.loss_weights)

    frozen_bn = bool(cfg.init_from)
    if init_state is not None and not run.resuming:  # an exported model's weights (BatchNorm folded: frozen)
        if cfg.context and not any(k.startswith("context.") for k in init_state):  # the block starts at zero: the
            init_state |= {k: v for k, v in model.state_dict().items() if k.startswith("context.")}  # model's output
        model.load_state_dict(init_state)
    save, read = torch_state(model, opt, sched, device)
    if run.resuming:
        run.load(read)

    def train_mode():
        model.train()
        if frozen_bn:
            from .weights import freeze_batchnorm

            freeze_batchnorm(model)

    def best_weights():
        _save_atomic({"model": model.state_dict(), "config": cfg.to_dict(), "step": st.step}, run_dir / "best.pt")
        if not cfg.residual:  # a bare state_dict carries no config: it would load as the seed form
            _save_atomic(model.state_dict(), run_dir / "best_attention_unet.pth")

    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    t0 = time.monotonic()
    session = {"start_step": st.step, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "device": device, "threads": torch.get_num_threads(), "command": command or ""}
    bar = tqdm(total=total_steps, initial=st.step, desc="train denoiser", unit="step", disable=not progress)
    running, n_running = 0.0, 0
    stopped = None
    train_mode()
    try:
        while st.step < total_steps:
            if run.out_of_time():
                stopped = "time_limit"
                break
            epoch, pos = divmod(st.step, steps_per_epoch)
            order = tr_pairs[np.random.default_rng([cfg.seed, epoch]).permutation(tr_pairs.size)]
            idx = order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size]
            if bank is not None:  # fresh noise for these windows (the pair index only picks the window)
                clean = pool[idx // per_w]
                noisy, _ = mix_online(clean, bank, np.random.default_rng([cfg.seed, epoch, pos, 7]),
                                      snr_range=cfg.snr_range, p_clean=cfg.p_clean, p_mixture=cfg.p_mixture)
            else:
                noisy, clean = data.pairs(idx)
            x, y, _, _ = normalize_pairs(prefilter_rows(noisy, cfg.prefilter_hz, data.fs), clean)
            x, y = augment(x, y, np.random.default_rng([cfg.seed, epoch, pos]), cfg.flip_p, cfg.scale_range)
            xt, yt = torch.from_numpy(x[:, None]).to(device), torch.from_numpy(y[:, None]).to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt), yt)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            st.step += 1
            st.epoch, st.step_in_epoch = divmod(st.step, steps_per_epoch)
            running += loss.item()
            n_running += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running / n_running:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
            if st.step % val_every == 0 or st.step == total_steps:
                val = _validate(model, data, va_pairs, loss_fn, device, prefilter_hz=cfg.prefilter_hz)
                train_mode()
                sched.step(val)
                if run.improved(val):
                    st.bad_epochs = 0
                    best_weights()
                else:
                    st.bad_epochs += 1
                run.log(train_loss=running / n_running, val_loss=val, lr=opt.param_groups[0]["lr"])
                running, n_running = 0.0, 0
                if cfg.patience and st.bad_epochs >= cfg.patience:
                    stopped = "early_stopping"
                    break
                run.save(save)
            elif run.due():
                run.save(save)
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()
        run.release_sigterm()
    if stopped is None:
        stopped = "max_steps" if cfg.max_steps and st.step >= cfg.max_steps and st.step < cfg.epochs * steps_per_epoch \
            else "epochs"
    if stopped != "interrupted":
        run.stop(stopped)
    session.update(end_step=st.step, stopped="sigterm" if stopped == "time_limit" and run.terminated else stopped,
                   wall_s=round(time.monotonic() - t0, 1))
    st.extra["sessions"].append(session)
    run.save(save)
    if not (run_dir / "best.pt").is_file():
        best_weights()
    history = run.history()
    summary = {
        "dataset": str(Path(data_dir).resolve()), "train_records": sorted(set(data.record.tolist())),
        "train_pairs": int(tr_pairs.size), "val_pairs": int(va_pairs.size), "batch_size": cfg.batch_size,
        "extra_clean": extra_info, "init_from": cfg.init_from or None, "batchnorm_frozen": frozen_bn,
        "steps": st.step, "steps_per_epoch": steps_per_epoch, "epochs_done": st.step / steps_per_epoch,
        "pairs_seen": st.step * cfg.batch_size, "best_val_loss": st.best_score,
        "best_step": st.best_step if st.best_step is not None else -1, "elapsed_s": round(run.seconds, 1),
        "init_training": st.extra.get("init_training"),
        "total_elapsed_s": round(run.seconds + float((st.extra.get("init_training") or {}).get("total_elapsed_s")
                                                     or 0.0), 1),
        "stopped": stopped, "finished": st.finished, "parameters": count_parameters(model), "device": device,
        "torch": torch.__version__, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "sessions": st.extra["sessions"], "history": history,
        "command": next((x.get("command") for x in st.extra["sessions"][::-1] if x.get("command")), ""),
    }
    metrics = _read_metrics(run_dir)
    metrics["training"] = summary
    write_json(run_dir / "metrics.json", metrics)
    return summary
