"""WFDB header (``.hea``) parsing: the fields ecgcore needs, with errors that name the file.

Format: PhysioNet's "header(5)" man page. Multi-segment records and signals with several samples per
frame or skew are recognised and handed to wfdb-python.
"""
from __future__ import annotations

import math
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
# Every signal format WFDB defines (signal(5)); anything else is a damaged or foreign header.
WFDB_FORMATS = frozenset({0, 8, 16, 24, 32, 61, 80, 160, 212, 310, 311, 508, 516, 524})
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_FS_RE = re.compile(r"^([0-9.eE+-]+)")
_INT_FIELDS = ("adc_res", "adc_zero", "init_value", "checksum", "block_size")
_GAIN_RE = re.compile(r"^([-+0-9.eE]+)(?:\(([-+]?\d+)\))?(?:/(.*))?$")


def _err(path: Path, msg: str) -> ValueError:
    return ValueError(f"{path}: invalid WFDB header: {msg}")


def _show(text: str, limit: int = 40) -> str:
    """repr of a header field for an error message, shortened when a damaged file holds a huge one."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def _int(path: Path, text: str, what: str, sig: int | None = None, lo: int = _INT64_MIN,
         hi: int = _INT64_MAX) -> int:
    """An integer field in [lo, hi] (of signal line `sig`, counted from 0), or a ValueError naming the file and
    the field. The message is only composed on error: this runs for every field of every header read."""
    try:
        v = int(text)
    except ValueError:  # also digit strings beyond Python's int-conversion limit
        v = None
    if v is None or v < lo or v > hi:
        where = "" if sig is None else f"signal {sig + 1}: "
        if v is None:
            raise _err(path, f"{where}{what} {_show(text)} is not an integer")
        if v < lo:
            raise _err(path, f"{where}{what} {_show(text)} is out of range: it must be at least {lo}")
        limit = "2**63 - 1" if hi == _INT64_MAX else str(hi)
        raise _err(path, f"{where}{what} {_show(text)} is out of range: it must be at most {limit}")
    return v


def _float(path: Path, text: str, what: str, sig: int | None = None) -> float:
    """A finite floating-point field, or a ValueError naming the file and the field."""
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is None or not math.isfinite(v):
        where = "" if sig is None else f"signal {sig + 1}: "
        reason = "is not a number" if v is None else "is not a finite number"
        raise _err(path, f"{where}{what} {_show(text)} {reason}")
    return v


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
    # Counts must be non-negative; a sample count beyond int64 is no file anyone can hold.
    n_sig = _int(path, rec[1], "number of signals", lo=0) if len(rec) > 1 else 0
    fs = 250.0
    if len(rec) > 2:
        m = _FS_RE.match(rec[2])
        if not m:
            raise _err(path, f"sampling frequency {_show(rec[2])} is not a number")
        fs = _float(path, m.group(1), "sampling frequency")
        if not fs > 0:
            raise _err(path, f"sampling frequency must be positive, got {fs}")
    sig_len = None
    if len(rec) > 3:
        sig_len = _int(path, rec[3], "number of samples", lo=0)
    hdr = Header(path=path, record_name=name, n_sig=n_sig, fs=fs, sig_len=sig_len,
                 base_time=rec[4] if len(rec) > 4 else None, base_date=rec[5] if len(rec) > 5 else None,
                 comments=comments, multi_segment=multi)
    if multi:
        return hdr
    sig_lines = lines[1:1 + n_sig]
    if len(sig_lines) < n_sig:
        raise _err(path, f"the record line announces {n_sig} signals but only {len(sig_lines)} signal lines follow")
    # The common fields are checked inline (the helpers only compose the message): this loop runs for every
    # signal of every header read, and the readers are benchmarked.
    for i, line in enumerate(sig_lines):
        parts = line.split(maxsplit=8)
        if len(parts) < 2:
            raise _err(path, f"signal line {i + 1} has no format field: {_show(line, 80)}")
        if "\0" in parts[0]:
            raise _err(path, f"signal {i + 1}: the signal file name {_show(parts[0])} contains a NUL byte")
        m = _FMT_RE.match(parts[1])
        if not m:
            raise _err(path, f"signal {i + 1}: cannot read format {_show(parts[1])}")
        fmt_s, spf, skew, offset = m.groups()
        fmt = int(fmt_s) if len(fmt_s) < 8 else -1  # digits only (the regex); a longer one is no format
        if fmt not in WFDB_FORMATS:
            raise _err(path, f"signal {i + 1}: unknown signal format {_show(fmt_s)} (WFDB formats are "
                             f"{', '.join(map(str, sorted(WFDB_FORMATS)))})")
        spec = SignalSpec(parts[0], fmt, _int(path, spf, "samples per frame", i, lo=1) if spf else 1,
                          _int(path, skew, "skew", i, lo=0) if skew else 0,
                          _int(path, offset, "byte offset", i, lo=0) if offset else 0)
        n_parts = len(parts)
        base_given = None
        if n_parts > 2:
            g = _GAIN_RE.match(parts[2])
            if not g:
                raise _err(path, f"signal {i + 1}: cannot read ADC gain {_show(parts[2])}")
            gain_s, base_given, units = g.groups()
            try:
                gain = float(gain_s)
            except ValueError:
                gain = math.nan
            if gain - gain != 0.0:  # not a number, or infinite
                _float(path, gain_s, "ADC gain", i)  # raises, saying why
            spec.adc_gain = gain if gain != 0 else _DEFAULT_GAIN
            spec.units = units or "mV"
        if n_parts > 3:
            ints = {}
            for j, key in enumerate(_INT_FIELDS[:n_parts - 3]):
                try:
                    ints[key] = int(parts[3 + j])
                except ValueError:
                    _int(path, parts[3 + j], f"field {key}", i)  # raises, saying why
            spec.__dict__.update(ints)
        # The baseline defaults to the ADC zero when it is not given in parentheses. It is the one of these
        # integers the readers compute with (as a float): it must fit in int64.
        if base_given is not None:
            spec.baseline = int(base_given) if len(base_given) < 19 else _int(path, base_given, "baseline", i)
        else:
            b = spec.baseline = spec.adc_zero
            if not _INT64_MIN <= b <= _INT64_MAX:
                _int(path, parts[4], "field adc_zero (the baseline)", i)  # raises, saying why
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
