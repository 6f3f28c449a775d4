"""Shared training machinery: optimiser + warm-up schedule, atomic checkpoints, history CSV, curve plots."""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["make_optimizer", "atomic_torch_save", "atomic_json", "History", "plot_curves", "WallClock"]


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_json(obj, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        fh.write("\n")
    os.replace(tmp, path)


class History:
    """Rows of metrics, rewritten atomically to ``history.csv`` (a resumed run keeps its earlier rows)."""

    def __init__(self, path: Path, rows: list[dict] | None = None):
        self.path, self.rows = Path(path), list(rows or [])

    def add(self, **row) -> None:
        self.rows.append(row)
        keys = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".history.", suffix=".tmp")
        with os.fdopen(fd, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in self.rows:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        os.replace(tmp, self.path)


def plot_curves(rows: list[dict], path: Path, panels: list[tuple[str, list[str]]], title: str = "") -> Path | None:
    """One PNG, a panel per (ylabel, [columns]) against ``step``; columns absent from every row are skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (ylabel, cols) in zip(axes[0], panels):
        for c in cols:
            pts = [(r["step"], r[c]) for r in rows if r.get(c) not in (None, "")]
            if pts:
                s, v = zip(*pts)
                ax.plot(s, np.asarray(v, float), label=c, marker="o" if len(pts) < 30 else None, ms=3)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return Path(path)


class WallClock:
    """Elapsed seconds across resumes (``offset`` = what earlier sessions used) and a cap in minutes."""

    def __init__(self, max_minutes: float | None, offset: float = 0.0):
        self.t0, self.offset, self.cap = time.monotonic(), offset, (max_minutes * 60 if max_minutes else None)
        self.session_t0 = self.t0

    @property
    def elapsed(self) -> float:
        return self.offset + time.monotonic() - self.t0

    def over(self) -> bool:
        return self.cap is not None and time.monotonic() - self.session_t0 > self.cap


def read_history(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        rows = []
        for r in csv.DictReader(fh):
            rows.append({k: (_num(v)) for k, v in r.items()})
        return rows


def _num(v):
    if v in (None, ""):
        return None
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    except ValueError:
        return v
