"""Run a per-record task over an archive: resumable, failure-tolerant, atomic outputs, progress bar."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["ArchiveSummary", "atomic_write", "remove_stale_parts", "run_archive"]


@dataclass
class ArchiveSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_parts(folder: Path) -> int:
    """Delete temp files left by a killed run (``.<name>.<random>.part<ext>``); returns how many."""
    n = 0
    for p in Path(folder).rglob(".*.part*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n


@contextmanager
def atomic_write(target: Path):
    """Yield a temporary path next to ``target``; rename it onto ``target`` only if the block succeeds.

    A crash or error never leaves a half-written ``target`` behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; finished files get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def run_archive(items: Iterable, task: Callable, is_done: Callable, *, name: Callable = str,
                progress: bool = True, desc: str = "records") -> ArchiveSummary:
    """Apply ``task(item)`` to every item whose output is not complete yet (``is_done(item)``).

    Failures (OSError/ValueError) are collected with the item's name and the run goes on.
    """
    from tqdm.auto import tqdm

    items = list(items)
    summary = ArchiveSummary()
    bar = tqdm(items, desc=desc, unit="rec", disable=not progress)
    for item in bar:
        if is_done(item):
            summary.skipped += 1
            continue
        try:
            task(item)
            summary.done += 1
        except (OSError, ValueError) as exc:
            summary.failed.append((name(item), str(exc)))
    return summary
