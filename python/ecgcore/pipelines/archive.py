"""Run a per-record task over an archive: resumable, failure-tolerant, atomic outputs, progress bar."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from .._fs import atomic_write, remove_stale_parts

__all__ = ["ArchiveSummary", "atomic_write", "remove_stale_parts", "run_archive"]


@dataclass
class ArchiveSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


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
