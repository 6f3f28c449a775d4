"""Option parsing shared by the verbs: the one ``--set KEY=VALUE`` parser."""
from __future__ import annotations

import json

__all__ = ["parse_set"]


def parse_set(values) -> dict:
    """``--set KEY=VALUE`` options as a dict (``-`` in KEY read as ``_``); VALUE is read as JSON when it parses
    (numbers, true/false, null, lists), else kept as a string. ``ValueError`` names a malformed item."""
    out = {}
    for item in values or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
