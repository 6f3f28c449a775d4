"""What every model family's config dataclass shares: building it back from a saved ``dict``."""
from __future__ import annotations

import dataclasses


def config_kwargs(cls, d: dict, *, strict: bool = True) -> dict:
    """Keyword arguments of dataclass ``cls`` taken from ``d`` (a config saved in a run or a model card).

    ``strict`` refuses unknown keys with a ``ValueError`` naming them (a run made by a different version, or
    a typo in a hand-written config); otherwise they are dropped, so older checkpoints with retired fields load.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown and strict:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return {k: v for k, v in d.items() if k in known}
