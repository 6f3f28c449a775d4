"""Atomic file writes: one mechanism for the whole package.

Every writer goes through :func:`atomic_write`: the content lands in a temporary file next to the target
(``.<name>.<random>.part<ext>``) and is renamed onto it only when the block succeeds, so a crash, an error or a
``kill -9`` never leaves a half-written file behind (a run that finds ``.part`` files may delete them:
:func:`remove_stale_parts`). Finished files get the usual permissions (``0666 & ~umask``) unless ``mode`` says
otherwise (``0o600`` for secrets).
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_parts", "write_bytes", "write_json", "write_npz", "write_text"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(target, mode: int | None = None):
    """Yield a temporary path next to ``target``; rename it onto ``target`` only if the block succeeds.

    Parameters
    ----------
    target : the file to (re)write; its folder is created.
    mode : permissions of the finished file (default ``0o666 & ~umask``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` atomically; returns the target."""
    with atomic_write(target, mode) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; returns the target."""
    return write_bytes(target, text.encode("utf-8"), mode)


def _jsonable(o):
    try:
        import numpy as np

        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_json(target, obj, indent: int | None = 2, mode: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``target`` atomically (NumPy values and paths converted); returns the target."""
    return write_text(target, json.dumps(obj, indent=indent, default=_jsonable) + "\n", mode)


def write_npz(target, compressed: bool = False, **arrays) -> Path:
    """Write ``arrays`` as an ``.npz`` archive to ``target`` atomically; returns the target."""
    import numpy as np

    with atomic_write(target) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return Path(target)


def remove_stale_parts(folder) -> int:
    """Delete temp files left by a killed writer (``.<name>.<random>.part<ext>``) under ``folder``; returns how many."""
    n = 0
    for p in Path(folder).rglob(".*.part*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n
