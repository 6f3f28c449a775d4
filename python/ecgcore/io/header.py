"""WFDB header (``.hea``) parsing: the fields ecgcore needs, with errors that name the file.

Format: PhysioNet's "header(5)" man page. Multi-segment records and signals with several samples per
frame or skew are recognised and handed to wfdb-python.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SignalSpec", "Header", "parse_header", "read_header"]

_DEFAULT_GAIN = 200.0  # WFDB's DEFGAIN when the header gives 0 or nothing


@dataclass
class SignalSpec:
    file_name: str
    fmt: int
    samples_per_frame: int = 1
    skew: int = 0
    byte_offset: int = 0
    adc_gain: float = _DEFAULT_GAIN
    baseline: int = 0
    units: str = "mV"
    adc_res: int = 0
    adc_zero: int = 0
    init_value: int | None = None
    checksum: int | None = None
    block_size: int = 0
    description: str = ""


@dataclass
class Header:
    path: Path
    record_name: str
    n_sig: int
    fs: float
    sig_len: int | None
    base_time: str | None = None
    base_date: str | None = None
    signals: list[SignalSpec] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    multi_segment: bool = False

    @property
    def natively_readable(self) -> bool:
        """True when every signal can go through the C++ decoder (no segments, spf 1, no skew)."""
        from .._native import core

        return (not self.multi_segment and self.n_sig > 0 and all(
            core.wfdb_format_supported(s.fmt) and s.samples_per_frame == 1 and s.skew == 0
            for s in self.signals))


_FMT_RE = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_FS_RE = re.compile(r"^([0-9.eE+-]+)")
_INT_FIELDS = ("adc_res", "adc_zero", "init_value", "checksum", "block_size")
_GAIN_RE = re.compile(r"^([-+0-9.eE]+)(?:\(([-+]?\d+)\))?(?:/(.*))?$")


def _err(path: Path, msg: str) -> ValueError:
    return ValueError(f"{path}: invalid WFDB header: {msg}")


def parse_header(text: str, path: Path) -> Header:
    lines = []
    comments = []
    for raw in text.splitlines():
        s = raw.strip()
        if not s:
            continue
        if s.startswith("#"):
            comments.append(s[1:].strip())
            continue
        lines.append(s)
    if not lines:
        raise _err(path, "the file is empty (no record line)")
    rec = lines[0].split()
    name = rec[0]
    multi = "/" in name
    if multi:
        name = name.split("/")[0]
    try:
        n_sig = int(rec[1]) if len(rec) > 1 else 0
    except ValueError:
        raise _err(path, f"number of signals {rec[1]!r} is not an integer") from None
    fs = 250.0
    if len(rec) > 2:
        m = _FS_RE.match(rec[2])
        if not m:
            raise _err(path, f"sampling frequency {rec[2]!r} is not a number")
        fs = float(m.group(1))
        if not fs > 0:
            raise _err(path, f"sampling frequency must be positive, got {fs}")
    sig_len = None
    if len(rec) > 3:
        try:
            sig_len = int(rec[3])
        except ValueError:
            raise _err(path, f"number of samples {rec[3]!r} is not an integer") from None
    hdr = Header(path=path, record_name=name, n_sig=n_sig, fs=fs, sig_len=sig_len,
                 base_time=rec[4] if len(rec) > 4 else None, base_date=rec[5] if len(rec) > 5 else None,
                 comments=comments, multi_segment=multi)
    if multi:
        return hdr
    sig_lines = lines[1:1 + n_sig]
    if len(sig_lines) < n_sig:
        raise _err(path, f"the record line announces {n_sig} signals but only {len(sig_lines)} signal lines follow")
    for i, line in enumerate(sig_lines):
        parts = line.split(maxsplit=8)
        if len(parts) < 2:
            raise _err(path, f"signal line {i + 1} has no format field: {line!r}")
        m = _FMT_RE.match(parts[1])
        if not m:
            raise _err(path, f"signal {i + 1}: cannot read format {parts[1]!r}")
        fmt, spf, skew, offset = m.groups()
        spec = SignalSpec(parts[0], int(fmt), int(spf) if spf else 1, int(skew) if skew else 0,
                          int(offset) if offset else 0)
        n_parts = len(parts)
        base_given = None
        if n_parts > 2:
            g = _GAIN_RE.match(parts[2])
            if not g:
                raise _err(path, f"signal {i + 1}: cannot read ADC gain {parts[2]!r}")
            gain_s, base_given, units = g.groups()
            gain = float(gain_s)
            spec.adc_gain = gain if gain != 0 else _DEFAULT_GAIN
            spec.units = units or "mV"
        if n_parts > 3:
            ints = {}
            for j, key in enumerate(_INT_FIELDS[:n_parts - 3]):
                try:
                    ints[key] = int(parts[3 + j])
                except ValueError:
                    raise _err(path, f"signal {i + 1}: field {key} {parts[3 + j]!r} is not an integer") from None
            spec.__dict__.update(ints)
        # The baseline defaults to the ADC zero when it is not given in parentheses.
        spec.baseline = int(base_given) if base_given is not None else spec.adc_zero
        spec.description = parts[8] if n_parts > 8 else f"signal {i}"
        hdr.signals.append(spec)
    return hdr


def read_header(path: str | os.PathLike) -> Header:
    """Read and parse ``<record>.hea``; ``path`` may name the record with or without extension."""
    p = os.fspath(path)
    root, ext = os.path.splitext(p)
    hea = p if ext == ".hea" else p + ".hea" if ext == "" or os.sep in ext else root + ".hea"
    try:
        with open(hea, "rb") as fh:
            text = fh.read().decode("latin-1")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(f"WFDB header not found: {hea} (a WFDB record needs its .hea file)") from None
    except OSError as exc:
        raise OSError(f"{hea}: cannot read header: {exc}") from exc
    return parse_header(text, Path(hea))
