"""The run folder every model family trains into: config snapshot, checkpoints, history, learning curve, budget.

A run folder holds:

* ``config.json``  — the family, its config dataclass as a dict, the data folder, the command line, the
  ecgcore version; written when the run starts, checked when it resumes (only the fields a family lists as
  resumable — budgets such as ``epochs``, ``max_steps``, ``time_limit_s`` — may change between sessions);
* ``checkpoint/``  — everything needed to resume: the framework's files (model, optimiser, scheduler, written by
  the family's ``save`` callback) plus ``state.json`` (step, epoch, position inside the epoch, best score,
  early-stopping counter, seconds trained) and the NumPy RNG state. It is replaced atomically (written to
  ``checkpoint.tmp/`` and renamed), every ``checkpoint_every_s`` seconds and at the end, so a ``kill -9``
  loses at most that much work and never leaves a half-written checkpoint;
* ``history.csv``  — one row per validation (step, epoch, train loss, validation loss/metrics, lr, seconds),
  rewritten atomically at every validation;
* ``learning_curve.png`` — the curves of ``history.csv``, redrawn at every validation;
* ``run.json``     — how the run stands: stop reason (``epochs`` / ``steps``: the planned length was trained;
  ``early_stopping``; ``max_steps`` / ``time_limit``: a budget cut it short), finished or not, steps, best step,
  seconds.

Data order is a function of (seed, epoch) and the position inside the epoch is saved, so a resumed run sees
the same batches an uninterrupted one would have.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from .._fs import write_json, write_text

__all__ = ["Run", "RunState", "RUN_FILES", "STOP_REASONS", "torch_state"]

RUN_FILES = ("config.json", "history.csv", "learning_curve.png", "run.json", "checkpoint")
STOP_REASONS = ("epochs", "steps", "early_stopping", "max_steps", "time_limit")
BUDGET_FIELDS = ("epochs", "max_steps", "time_limit_s", "patience", "num_threads", "threads")


@dataclasses.dataclass
class RunState:
    """Where a run is; saved in ``checkpoint/state.json``."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_score: float = math.inf       # lower is better (a validation loss, or minus a metric)
    best_step: int | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    seconds: float = 0.0
    stop_reason: str | None = None
    finished: bool = False
    extra: dict = dataclasses.field(default_factory=dict)


def _config_dict(config) -> dict:
    if config is None:
        return {}
    if hasattr(config, "to_dict"):
        return config.to_dict()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def _config_defaults(config) -> dict:
    """The default settings of ``config``'s class (``{}`` for a plain dict): what a field added after a run started
    held for that run, so the run still resumes."""
    if config is None or isinstance(config, dict) or not dataclasses.is_dataclass(config):
        return {}
    try:
        return _config_dict(type(config)())
    except (TypeError, ValueError):
        return {}


class Run:
    """One training run's folder (see the module docstring).

    Parameters
    ----------
    run_dir : the folder (created).
    config : the family's config dataclass (``to_dict()``) or a dict.
    family : ``"attention"``, ``"denoiser"``, ... (stored and checked on resume).
    data_dir : the dataset folder (stored and checked on resume).
    resume : continue from ``checkpoint/`` when there is one (default); False starts over (the folder is emptied
        of run files).
    checkpoint_every_s : seconds between periodic checkpoints (:meth:`due`).
    time_limit_s : wall-clock budget of this session (:meth:`out_of_time`); None: none.
    resumable : config fields that may differ from the saved config when resuming (default: the budgets).
    sigterm : make SIGTERM (``kill``, a batch scheduler's pre-emption) end this session as its time limit would:
        :meth:`out_of_time` turns True, so the trainer stops at its next step, records the session and checkpoints,
        and the run resumes later. Only for trainers that poll :meth:`out_of_time` every step, and only from the
        main thread, and only where SIGTERM has a Python-visible handler that is not ``SIG_IGN``. A second SIGTERM,
        or one after :meth:`stop` / :meth:`release_sigterm` or once the run object is gone, gets the previous handler
        (by default the process ends).
    """

    def __init__(self, run_dir, config, *, family: str, data_dir=None, resume: bool = True,
                 checkpoint_every_s: float = 300.0, time_limit_s: float | None = None,
                 resumable: tuple[str, ...] = BUDGET_FIELDS, sigterm: bool = False):
        self.dir = Path(run_dir)
        self.family = family
        self.config = _config_dict(config)
        self._defaults = _config_defaults(config)
        self.data_dir = None if data_dir is None else str(Path(data_dir).resolve())
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.time_limit_s = None if time_limit_s is None else float(time_limit_s)
        self.resumable = set(resumable)
        self.state = RunState()
        self._t0 = time.monotonic()
        self._last_checkpoint = self._t0
        self._seconds0 = 0.0
        self.terminated = False  # a SIGTERM asked this session to end (see ``sigterm``)
        self._prev_sigterm = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resuming = bool(resume) and (self.dir / "checkpoint" / "state.json").is_file()
        if self.resuming:
            self._check_compatible()
            self.state = RunState(**json.loads((self.dir / "checkpoint" / "state.json").read_text()))
            self._seconds0 = self.state.seconds
            if self.state.stop_reason != "early_stopping":  # a budget ended it: the new budgets decide again
                self.state.stop_reason, self.state.finished = None, False
        else:
            for name in RUN_FILES:
                p = self.dir / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            write_json(self.dir / "config.json", {
                "family": family, "config": self.config, "data_dir": self.data_dir, "command": _command_line(),
                "ecgcore_version": _version(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

        if sigterm:
            self._catch_sigterm()

    # -- SIGTERM --------------------------------------------------------------------------------------------
    def _catch_sigterm(self) -> None:
        import signal
        import threading
        import weakref

        if threading.current_thread() is not threading.main_thread():
            return
        prev = signal.getsignal(signal.SIGTERM)
        if prev is None or prev is signal.SIG_IGN:  # a handler Python cannot give back, or SIGTERM ignored: leave it
            return
        ref = weakref.ref(self)

        def handler(signum, frame):
            run = ref()
            if run is not None and not run.terminated and run.state.stop_reason is None:
                run.terminated = True  # polled by out_of_time(): the trainer ends the session cleanly
                return
            signal.signal(signal.SIGTERM, prev)
            signal.raise_signal(signal.SIGTERM)  # a second one, or no live run: as before

        signal.signal(signal.SIGTERM, handler)
        self._prev_sigterm = (prev, handler)

    def release_sigterm(self) -> None:
        """Give SIGTERM back to the handler it had before (``stop()`` does it; trainers also call it on the way out, so
        an exception or Ctrl-C does not leave it caught)."""
        if self._prev_sigterm is None:
            return
        import signal

        prev, ours = self._prev_sigterm
        self._prev_sigterm = None
        if signal.getsignal(signal.SIGTERM) is ours:
            signal.signal(signal.SIGTERM, prev)

    # -- resume ---------------------------------------------------------------------------------------------
    def _check_compatible(self) -> None:
        saved = json.loads((self.dir / "config.json").read_text())
        if saved.get("family") != self.family:
            raise ValueError(f"{self.dir} holds a {saved.get('family')} run, not {self.family}; use another RUN_DIR")
        # A setting added to the config class after the run started is the default for that run.
        old = {**{k: v for k, v in self._defaults.items() if k not in self.resumable}, **saved.get("config", {})}
        diff = sorted(k for k in set(old) | set(self.config)
                      if k not in self.resumable and old.get(k) != self.config.get(k))
        if diff:
            raise ValueError(f"{self.dir} holds a run with different settings ({', '.join(diff)}); resume with the "
                             "same settings, or start over (a new RUN_DIR, or resume=False / --no-resume)")
        if self.data_dir and saved.get("data_dir") and saved["data_dir"] != self.data_dir:
            raise ValueError(f"{self.dir} was trained on {saved['data_dir']}, not {self.data_dir}")

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoint"

    def load(self, read: Callable[[Path], None]) -> None:
        """Restore the framework's state: ``read(checkpoint_dir)``; also the NumPy global RNG."""
        import numpy as np

        rng = self.checkpoint_dir / "numpy_rng.json"
        if rng.is_file():
            st = json.loads(rng.read_text())
            np.random.set_state((st[0], np.array(st[1], dtype=np.uint32), st[2], st[3], st[4]))
        read(self.checkpoint_dir)

    # -- during training ------------------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        """Seconds trained, over every session of the run."""
        return self._seconds0 + time.monotonic() - self._t0

    def out_of_time(self) -> bool:
        """True once this session's ``time_limit_s`` is spent, or a SIGTERM asked it to end (``sigterm``)."""
        return self.terminated or (self.time_limit_s is not None and time.monotonic() - self._t0 >= self.time_limit_s)

    def due(self) -> bool:
        """True when the last checkpoint is ``checkpoint_every_s`` old."""
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s

    def save(self, write: Callable[[Path], None]) -> None:
        """Checkpoint atomically: ``write(folder)`` puts the framework's files in a fresh folder, then the state
        and the NumPy RNG are added and the folder replaces ``checkpoint/``."""
        import numpy as np

        self.state.seconds = self.seconds
        tmp, old = self.dir / "checkpoint.tmp", self.dir / "checkpoint.old"
        for p in (tmp, old):
            if p.exists():
                shutil.rmtree(p)
        tmp.mkdir()
        write(tmp)
        st = np.random.get_state()
        write_json(tmp / "numpy_rng.json", [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])], indent=None)
        write_json(tmp / "state.json", dataclasses.asdict(self.state))
        if self.checkpoint_dir.exists():
            os.replace(self.checkpoint_dir, old)
        os.replace(tmp, self.checkpoint_dir)
        if old.exists():
            shutil.rmtree(old)
        self._last_checkpoint = time.monotonic()
        self._write_status()

    def log(self, **row) -> dict:
        """Append one validation row to ``history.csv`` (``step``, ``epoch`` and ``seconds`` are added) and
        redraw ``learning_curve.png``."""
        row = {"step": self.state.step, "epoch": self.state.epoch, **row, "seconds": round(self.seconds, 3)}
        path = self.dir / "history.csv"
        rows = self.history()
        fields = list(rows[0]) if rows else []
        fields += [k for k in row if k not in fields]
        rows.append({k: row.get(k, "") for k in fields})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(path, buf.getvalue())
        self.plot()
        return row

    def history(self) -> list[dict]:
        """The rows of ``history.csv`` (numbers as ints or floats)."""
        path = self.dir / "history.csv"
        if not path.is_file():
            return []
        out = []
        for r in csv.DictReader(io.StringIO(path.read_text())):
            out.append({k: _number(v) for k, v in r.items()})
        return out

    def improved(self, score: float) -> bool:
        """Record a validation score (lower is better); True when it is the best so far."""
        if score < self.state.best_score:
            self.state.best_score = float(score)
            self.state.best_step, self.state.best_epoch = self.state.step, self.state.epoch
            return True
        return False

    def stop(self, reason: str) -> None:
        """Mark the run stopped for ``reason`` (one of :data:`STOP_REASONS`); finished unless it was a budget."""
        if reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {reason!r}")
        self.state.stop_reason = reason
        self.state.finished = reason in ("epochs", "steps", "early_stopping")
        self.release_sigterm()

    # -- reporting ------------------------------------------------------------------------------------------
    def plot(self) -> Path | None:
        """Draw ``learning_curve.png``: every loss column on the left axis, every other metric on the right."""
        rows = self.history()
        if not rows:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in rows]
        skip = {"step", "epoch", "seconds", "lr"}
        cols = [k for k in rows[0] if k not in skip
                and all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool) for r in rows)]
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax2 = None
        for k in cols:
            ys = [r[k] for r in rows]
            if "loss" in k:
                ax.plot(steps, ys, marker="o", ms=3, label=k)
            else:
                ax2 = ax2 or ax.twinx()
                ax2.plot(steps, ys, marker="s", ms=3, ls="--", label=k)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        if ax2 is not None:
            ax2.set_ylabel("metric")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if handles:
            ax.legend(handles, labels, loc="best", fontsize=8)
        if self.state.best_step is not None:
            ax.axvline(self.state.best_step, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{self.family}: {self.dir.name}", fontsize=9)
        fig.tight_layout()
        from .._fs import atomic_write

        with atomic_write(self.dir / "learning_curve.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return self.dir / "learning_curve.png"

    def _write_status(self) -> None:
        """Update ``run.json``'s status keys (a family may keep its own keys there too)."""
        s = self.state
        path = self.dir / "run.json"
        try:
            old = json.loads(path.read_text()) if path.is_file() else {}
        except json.JSONDecodeError:
            old = {}
        write_json(path, {**old,
            "family": self.family, "stop_reason": s.stop_reason, "finished": s.finished, "steps": s.step,
            "epochs": s.epoch, "best_step": s.best_step, "best_epoch": s.best_epoch,
            "best_score": None if not math.isfinite(s.best_score) else s.best_score, "seconds": round(s.seconds, 3)})

    def summary(self) -> dict:
        """What a model card's ``training`` section takes from the run."""
        s = self.state
        return {"steps": s.step, "epochs_completed": s.epoch, "stop_reason": s.stop_reason, "finished": s.finished,
                "best_step": s.best_step, "best_epoch": s.best_epoch,
                "best_score": None if not math.isfinite(s.best_score) else s.best_score,
                "seconds": round(self.seconds, 3), "history": self.history()}


def _number(v: str):
    for kind in (int, float):
        try:
            return kind(v)
        except (TypeError, ValueError):
            pass
    return v


def _command_line() -> str | None:
    if Path(sys.argv[0]).stem in ("ecgcore", "cli", "__main__"):
        return " ".join(["ecgcore"] + sys.argv[1:])
    return None


def _version() -> str:
    from .._version import __version__

    return __version__


def torch_state(model, optimizer, scheduler=None, device="cpu"):
    """``(save, read)`` callbacks for :meth:`Run.save` / :meth:`Run.load` of a PyTorch training: model, optimiser,
    scheduler and torch's RNG state in ``checkpoint/state.pt``."""
    import torch

    def save(folder: Path) -> None:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": None if scheduler is None else scheduler.state_dict(),
                    "rng": torch.get_rng_state()}, folder / "state.pt")

    def read(folder: Path) -> None:
        ck = torch.load(folder / "state.pt", map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and ck.get("scheduler") is not None:
            scheduler.load_state_dict(ck["scheduler"])
        if ck.get("rng") is not None:
            torch.set_rng_state(ck["rng"])

    return save, read
