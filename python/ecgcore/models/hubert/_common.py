"""What HuBERT-ECG's two training stages share: the optimiser with its warm-up schedule, atomic saves."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..._fs import atomic_write, write_json

__all__ = ["make_optimizer", "atomic_torch_save", "atomic_json", "merge_json", "after_validation", "optimiser_step", "RUN_STOP"]

# the stages' own stop words -> the run folder's stop reasons
RUN_STOP = {"steps": "steps", "early stop": "early_stopping", "wall clock": "time_limit"}


def make_optimizer(params, *, lr: float, weight_decay: float, total_steps: int, warmup: float = 0.08):
    """AdamW (betas 0.9/0.98, eps 1e-9, as the seed) + linear warm-up over ``warmup`` of the steps, then linear decay."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), eps=1e-9, weight_decay=weight_decay)
    n_warm = max(1, int(round(warmup * total_steps)))

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        return max(0.0, (total_steps - step) / max(1, total_steps - n_warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def atomic_json(obj, path: Path) -> None:
    """JSON to ``path`` atomically (NumPy values as lists/numbers)."""
    write_json(path, obj)


def merge_json(path: Path, obj: dict) -> None:
    """Update a JSON object file (``run.json``: the run folder's status keys stay) with ``obj``."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**old, **obj})


def after_validation(run, patience: int, bad: int) -> str:
    """What a stage does after a validation: ``"steps"`` (go on), ``"early stop"`` (``patience`` validations
    without improvement) or ``"wall clock"`` (this session's time budget is spent)."""
    if patience and bad >= patience:
        return "early stop"
    if run.out_of_time():
        return "wall clock"
    return "steps"


def optimiser_step(loss, model, opt, sched, clip: float) -> None:
    """Backward pass, gradient-norm clip at ``clip``, one optimiser and one scheduler step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
