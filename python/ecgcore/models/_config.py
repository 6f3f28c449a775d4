"""What every model family's config dataclass shares: one vocabulary and ``to_dict`` / ``from_dict`` / ``replace``.

The vocabulary (the same name for the same thing in every family): ``lr``, ``batch_size``, ``epochs``,
``n_classes``, ``classes``, ``patience`` (early stopping, in validations without improvement), ``max_steps``,
``time_limit_s`` (wall-clock budget of one session), ``threads``, ``seed``, ``val_fraction`` / ``test_fraction``
(shares held out), ``plateau_patience`` / ``plateau_factor`` (ReduceLROnPlateau). Older names found in saved runs and
model cards (``num_classes``, ``early_stopping_patience``, ``wall_cap_s``, ``num_threads``, ...) are read as these.
"""
from __future__ import annotations

import dataclasses

__all__ = ["LEGACY_NAMES", "ConfigMixin", "config_kwargs"]

LEGACY_NAMES = {
    "num_classes": "n_classes",
    "early_stopping_patience": "patience",
    "wall_cap_s": "time_limit_s",
    "num_threads": "threads",
    "learning_rate": "lr",
    "val_size": "val_fraction",
    "test_size": "test_fraction",
    "reduce_lr_patience": "plateau_patience",
    "reduce_lr_factor": "plateau_factor",
}


def config_kwargs(cls, d: dict, *, strict: bool = True) -> dict:
    """Keyword arguments of dataclass ``cls`` taken from ``d`` (a config saved in a run or a model card).

    Legacy names (:data:`LEGACY_NAMES`) are renamed first. ``strict`` refuses unknown keys with a ``ValueError``
    naming them (a run made by a different version, or a typo in a hand-written config); otherwise they are
    dropped, so older checkpoints with retired fields load.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    d = {(LEGACY_NAMES[k] if k in LEGACY_NAMES and LEGACY_NAMES[k] in known and k not in known else k): v
         for k, v in d.items()}
    unknown = sorted(set(d) - known)
    if unknown and strict:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return {k: v for k, v in d.items() if k in known}


class ConfigMixin:
    """``to_dict`` (JSON-ready: tuples as lists), ``from_dict`` (legacy names understood, unknown keys refused)
    and ``replace`` for a family's config dataclass."""

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, list):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = True):
        return cls(**config_kwargs(cls, d, strict=strict))

    def replace(self, **changes):
        return dataclasses.replace(self, **config_kwargs(type(self), changes))
