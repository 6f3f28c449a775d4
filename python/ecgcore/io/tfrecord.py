"""TFRecord files of ``tf.train.Example`` protos, written and read without TensorFlow.

Framing (TFRecord): ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``,
little-endian, CRC-32C computed in the C++ core. ``data`` is a serialised ``tf.train.Example``: a map from
feature name to a ``BytesList``, ``FloatList`` or ``Int64List``, encoded here with the protobuf wire format
(field numbers from tensorflow/core/example/{example,feature}.proto).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .._native import core

__all__ = ["encode_example", "decode_example", "write_tfrecord", "read_tfrecord"]


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 values are encoded as unsigned 64-bit two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


def _feature(value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _field(1, _field(1, bytes(value)))  # bytes_list { value: ... }
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind in "iub":
        return _field(3, _field(1, b"".join(_varint(int(v)) for v in arr)))  # int64_list, packed
    if arr.dtype.kind == "f":
        return _field(2, _field(1, arr.astype("<f4").tobytes()))  # float_list, packed
    if arr.dtype.kind in "SU":
        return _field(1, b"".join(_field(1, v.encode() if isinstance(v, str) else bytes(v)) for v in arr.tolist()))
    raise ValueError(f"cannot encode a feature of dtype {arr.dtype}")


def encode_example(features: dict) -> bytes:
    """Serialise ``{name: bytes | int(s) | float(s)}`` as a ``tf.train.Example``."""
    entries = b"".join(_field(1, _field(1, name.encode()) + _field(2, _feature(v)))
                       for name, v in features.items())
    return _field(1, entries)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    i = 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 2:
            n, i = _read_varint(buf, i)
            yield num, wire, buf[i:i + n]
            i += n
        elif wire == 0:
            v, i = _read_varint(buf, i)
            yield num, wire, v
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def decode_example(data: bytes) -> dict:
    """Parse a serialised ``tf.train.Example`` -> ``{name: list of bytes | int64 array | float32 array}``."""
    out = {}
    for num, _, features in _fields(data):
        if num != 1:
            continue
        for _, _, entry in _fields(features):
            name, value = None, None
            for n, _, part in _fields(entry):
                if n == 1:
                    name = bytes(part).decode()
                elif n == 2:
                    value = part
            for kind, _, lst in _fields(value or b""):
                if kind == 1:
                    out[name] = [bytes(v) for _, _, v in _fields(lst)]
                elif kind == 2:
                    out[name] = np.concatenate([np.frombuffer(v, "<f4") for _, _, v in _fields(lst)] or [[]])
                elif kind == 3:
                    vals = []
                    for _, wire, v in _fields(lst):
                        if wire == 2:
                            j = 0
                            while j < len(v):
                                x, j = _read_varint(v, j)
                                vals.append(x - (1 << 64) if x >= 1 << 63 else x)
                        else:
                            vals.append(v - (1 << 64) if v >= 1 << 63 else v)
                    out[name] = np.array(vals, dtype=np.int64)
    return out


def write_tfrecord(path, examples: Iterable[bytes]) -> int:
    """Write serialised examples as a TFRecord file; returns the number of records."""
    n = 0
    with open(path, "wb") as fh:
        for data in examples:
            length = struct.pack("<Q", len(data))
            fh.write(length)
            fh.write(struct.pack("<I", core.crc32c(length, True)))
            fh.write(data)
            fh.write(struct.pack("<I", core.crc32c(data, True)))
            n += 1
    return n


def read_tfrecord(path: str | os.PathLike, *, verify: bool = True) -> Iterator[bytes]:
    """Yield the serialised records of a TFRecord file, checking both CRCs (errors name the file)."""
    path = Path(path)
    with open(path, "rb") as fh:
        k = 0
        while True:
            head = fh.read(12)
            if not head:
                return
            if len(head) < 12:
                raise ValueError(f"{path}: truncated TFRecord header at record {k}")
            length = head[:8]
            (n,) = struct.unpack("<Q", length)
            if verify and struct.unpack("<I", head[8:])[0] != core.crc32c(length, True):
                raise ValueError(f"{path}: corrupt length CRC at record {k}")
            data = fh.read(n)
            tail = fh.read(4)
            if len(data) < n or len(tail) < 4:
                raise ValueError(f"{path}: truncated TFRecord data at record {k}")
            if verify and struct.unpack("<I", tail)[0] != core.crc32c(data, True):
                raise ValueError(f"{path}: corrupt data CRC at record {k}")
            yield data
            k += 1
