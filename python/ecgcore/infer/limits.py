"""What a server accepts before doing any work on an upload: sampling rate, duration and leads, read from a
``.npy`` header or a WFDB ``.hea`` without touching the samples.

``ecgcore serve`` (``/predict``) and ``ecgcore app`` (``/analyze``) call :func:`check_signal_size` on the
declared shape, so an upload that claims 10^11 samples, or a day of ECG at 10 kHz, is answered with a 4xx
before a byte of it is decoded.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

__all__ = ["MAX_FS", "MIN_FS", "MAX_LEADS", "SignalTooLong", "check_signal_size", "npy_header"]

MIN_FS, MAX_FS = 50.0, 2000.0
MAX_LEADS = 16


class SignalTooLong(ValueError):
    """The signal is longer than the server's limit (answered 413, not 400)."""


def check_signal_size(name: str, n_samples: int, fs: float, n_leads: int = 1, *, max_duration_s: float) -> None:
    """Raise ``ValueError`` (rate or leads out of range) or :class:`SignalTooLong` for a declared signal.

    Parameters
    ----------
    name : file name, for the message.
    n_samples, fs, n_leads : as declared by the header.
    max_duration_s : the server's limit.
    """
    if not np.isfinite(fs) or not MIN_FS <= fs <= MAX_FS:
        raise ValueError(f"{name}: sampling rate {fs:g} Hz is outside the accepted {MIN_FS:g}-{MAX_FS:g} Hz")
    if not 1 <= n_leads <= MAX_LEADS:
        raise ValueError(f"{name}: {n_leads} leads; between 1 and {MAX_LEADS} are accepted")
    duration = n_samples / fs
    if duration > max_duration_s:
        raise SignalTooLong(f"{name}: {n_samples} samples at {fs:g} Hz is {duration / 60:.1f} min of ECG; "
                            f"this server accepts at most {max_duration_s / 60:.0f} min per record "
                            f"(split the record, or ask the operator to raise --max-duration)")


def npy_header(source: bytes | str | os.PathLike, name: str | None = None) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file or buffer from its header alone (:func:`ecgcore.io.record.npy_header`);
    ``ValueError`` when the header is malformed or declares more data than the file holds."""
    from ..io.record import npy_header as read_header

    label = name or (Path(source).name if not isinstance(source, (bytes, bytearray)) else "upload")
    if isinstance(source, (bytes, bytearray)):
        shape, _, dtype = read_header(io.BytesIO(source), label)
    else:
        with open(source, "rb") as fh:
            shape, _, dtype = read_header(fh, label)
    return shape, dtype
