"""Cancelable-biometrics keys: the seed's unit-norm binary vector, drawn from :mod:`secrets`.

A key is ``key_size`` uniform random bits {0, 1} divided by their L2 norm (SPEC §1.3). Key files hold the bits
as hex in a small JSON object, written atomically with mode 0600 and kept apart from the template store;
nothing here prints or logs a key.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import numpy as np

KEY_FORMAT = "ecgcore-heartid-key"


def bits_to_key(bits: np.ndarray) -> np.ndarray:
    """(key_size,) bits -> (1, key_size) float32 unit-norm key; all-zero bits are refused (no direction)."""
    b = np.asarray(bits, dtype=np.float64).reshape(-1)
    n = np.linalg.norm(b)
    if n == 0:
        raise ValueError("a key needs at least one set bit")
    return (b / n).astype(np.float32)[None, :]


def random_bits(key_size: int = 100) -> np.ndarray:
    """``key_size`` bits from the OS CSPRNG (never all zero)."""
    while True:
        v = secrets.randbits(key_size)
        if v:
            return np.array([(v >> i) & 1 for i in range(key_size)], dtype=np.uint8)


def generate_key(key_size: int = 100, rng: np.random.Generator | None = None) -> np.ndarray:
    """(1, key_size) unit-norm binary key. ``rng`` (training only) gives reproducible keys; otherwise ``secrets``."""
    if rng is None:
        return bits_to_key(random_bits(key_size))
    while True:
        b = rng.integers(0, 2, size=key_size)
        if b.any():
            return bits_to_key(b)


def write_key_file(path: str | os.PathLike, bits: np.ndarray) -> Path:
    """Write ``bits`` to ``path`` atomically (temp file + rename), readable by the owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    b = np.asarray(bits, dtype=np.uint8).reshape(-1)
    payload = {"format": KEY_FORMAT, "version": 1, "key_size": int(b.size),
               "bits": np.packbits(b, bitorder="little").tobytes().hex()}
    from ..._fs import write_text

    return write_text(path, json.dumps(payload) + "\n", mode=0o600)


def read_key_file(path: str | os.PathLike, key_size: int | None = None) -> np.ndarray:
    """Bits of a key file; ``ValueError`` (naming the file, never its content) when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"key file {path} not found")
    try:
        d = json.loads(path.read_text())
        if d.get("format") != KEY_FORMAT:
            raise KeyError("format")
        n = int(d["key_size"])
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(d["bits"]), np.uint8), bitorder="little")[:n]
        if bits.size != n:
            raise KeyError("bits")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is not an ecgcore HeartID key file") from None
    if key_size is not None and n != key_size:
        raise ValueError(f"key file {path} holds a {n}-bit key; the model expects {key_size} bits")
    if not bits.any():
        raise ValueError(f"key file {path} holds an all-zero key")
    return bits


def load_or_create_key(path: str | os.PathLike, key_size: int = 100) -> tuple[np.ndarray, bool]:
    """The key bits (key_size,) from ``path``, creating the file with fresh bits when missing; returns (bits,
    created). ``bits_to_key`` turns them into the seed scheme's network input; the IoM scheme seeds its
    projections with them."""
    path = Path(path)
    if path.exists():
        return read_key_file(path, key_size), False
    bits = random_bits(key_size)
    write_key_file(path, bits)
    return bits, True
