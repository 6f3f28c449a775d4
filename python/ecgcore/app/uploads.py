"""Turning the files of one browser upload into ECG records.

Accepted, in any mix, several per upload (every ECG of an upload is analysed):

* ``.npy``: ``(n,)`` one lead; ``(n, ch)`` or ``(ch, n)`` one ECG; ``(k, ch, n)`` or ``(k, n, ch)`` a batch of
  ``k`` ECGs. The lead axis of a 2-D array (and of each item of a 3-D one) is the shorter axis, and it must
  hold at most :data:`MAX_LEADS` leads: an ECG always has far more samples than leads, so the shorter
  axis is unambiguous for anything longer than ``MAX_LEADS`` samples (shorter arrays are rejected; they
  are not an ECG at any sampling rate ``detect_r_peaks`` accepts). The first axis of a 3-D array is
  always the batch axis, as the seed app's ``batch_ecg.npy`` (5, 12, 5000).
* ``.csv``: one column per lead, optional header row of lead names (``ecgcore.io.read_record``).
* WFDB: ``<name>.hea`` with the signal file(s) it names (``.dat``) and optionally ``<name>.atr``; several
  records may be uploaded together.

``.npy`` and ``.csv`` carry no sampling rate: the caller passes ``fs`` (the form's field).
Problems are collected per file as :class:`UploadError` so that one bad file does not hide the others.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..infer.limits import MAX_FS, MIN_FS, SignalTooLong, check_signal_size, npy_header
from ..io import Record, read_header, read_record

__all__ = ["MAX_DURATION_S", "MAX_LEADS", "MAX_ECGS", "UploadError", "UploadedFile", "parse_uploads", "split_npy"]

MAX_LEADS = 16
MAX_ECGS = 64
MAX_DURATION_S = 3600.0  # longest ECG analysed (default of `ecgcore app --max-duration`)
_WFDB_SUFFIXES = {".hea", ".dat", ".atr"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass
class UploadedFile:
    """One file of a multipart upload: the browser's file name and its bytes."""

    name: str
    data: bytes


@dataclass
class UploadError:
    """A file that could not be read, with the reason in words (``too_long``: over the duration limit)."""

    name: str
    message: str
    too_long: bool = False

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def _safe_name(name: str) -> str:
    # Browsers send base names, but a crafted request could send "../x": keep the last component only.
    base = Path(name.replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base)
    if base in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a usable file name")
    return base


def _parse_fs(fs) -> float | None:
    if fs is None or (isinstance(fs, str) and not fs.strip()):
        return None
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise ValueError(f"sampling rate must be a number in Hz, got {fs!r}") from None
    if not np.isfinite(value) or not MIN_FS <= value <= MAX_FS:
        raise ValueError(f"sampling rate must be between {MIN_FS:g} and {MAX_FS:g} Hz, got {value:g}")
    return value


def _as_samples_by_leads(name: str, arr: np.ndarray) -> np.ndarray:
    """(n,), (n, ch) or (ch, n) -> (n, ch) by the rule in the module docstring."""
    if arr.ndim == 1:
        return arr[:, None]
    a, b = arr.shape
    if min(a, b) > MAX_LEADS:
        raise ValueError(f"shape {arr.shape}: neither axis looks like leads (an ECG has at most {MAX_LEADS} "
                         "leads); expected (n_samples,), (n_samples, n_leads), (n_leads, n_samples) or "
                         "(k, n_leads, n_samples)")
    if max(a, b) <= MAX_LEADS:
        raise ValueError(f"shape {arr.shape}: too few samples for an ECG")
    return arr if a > b else arr.T


def split_npy(name: str, arr: np.ndarray, fs: float) -> list[Record]:
    """The ECG record(s) held by one uploaded ``.npy`` array.

    Parameters
    ----------
    name : file name (for record names and messages)
    arr : (n,), (n, ch), (ch, n) or (k, ch, n) / (k, n, ch)
    fs : sampling rate in Hz

    Returns
    -------
    One :class:`ecgcore.io.Record` per ECG, ``signal`` (n_samples, n_leads) float64; a batch yields
    ``<stem>[0]``, ``<stem>[1]``, ...
    """
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"expected numeric samples, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2, 3) or arr.size == 0:
        raise ValueError(f"expected an array of shape (n,), (n, ch), (ch, n) or (k, ch, n), got {arr.shape}")
    stem = Path(name).stem
    items = [arr] if arr.ndim < 3 else list(arr)
    if len(items) > MAX_ECGS:
        raise ValueError(f"batch of {len(items)} ECGs; at most {MAX_ECGS} per upload")
    out = []
    for i, item in enumerate(items):
        sig = np.ascontiguousarray(_as_samples_by_leads(name, item), dtype=np.float64)
        if np.isnan(sig).all():
            raise ValueError("every sample is NaN")
        n_leads = sig.shape[1]
        leads = list(_TWELVE) if n_leads == 12 else [f"lead{j}" for j in range(n_leads)]
        rec_name = stem if arr.ndim < 3 else f"{stem}[{i}]"
        out.append(Record(signal=sig, fs=fs, leads=leads, units=["mV"] * n_leads, name=rec_name))
    return out


_TWELVE = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _npy_size(name: str, data: bytes, fs: float, max_duration_s: float) -> None:
    """Check a ``.npy`` upload's declared shape (rate, leads, duration) before its samples are loaded."""
    shape, dtype = npy_header(data, name)
    if dtype.kind not in "biuf":
        raise ValueError(f"expected numeric samples, got dtype {dtype}")
    if len(shape) not in (1, 2, 3) or 0 in shape:
        raise ValueError(f"expected an array of shape (n,), (n, ch), (ch, n) or (k, ch, n), got {shape}")
    item = shape if len(shape) < 3 else shape[1:]
    leads = 1 if len(item) == 1 else min(item)
    check_signal_size(name, max(item), fs, min(leads, MAX_LEADS), max_duration_s=max_duration_s)


def parse_uploads(files: list[UploadedFile], fs=None, workdir: str | Path | None = None,
                  max_duration_s: float = MAX_DURATION_S) -> tuple[list[Record], list[UploadError]]:
    """Read every ECG in an upload.

    Parameters
    ----------
    files : the uploaded files
    fs : sampling rate (Hz) for ``.npy``/``.csv`` files; a number, a numeric string, or None/"" when the
        upload holds only WFDB records
    workdir : folder where WFDB and CSV files are written to be read (required when there are any)
    max_duration_s : longest ECG accepted; longer ones (and rates outside 50-2000 Hz) are refused from their
        header, before their samples are read

    Returns
    -------
    (records in upload order, errors). Raises ``ValueError`` only when nothing was uploaded.
    """
    if not files:
        raise ValueError("no files were uploaded; choose .npy, .csv or WFDB (.hea + .dat) files")
    errors: list[UploadError] = []
    records: list[Record] = []
    try:
        fs_value = _parse_fs(fs)
        fs_error = None
    except ValueError as exc:
        fs_value, fs_error = None, str(exc)

    named: dict[str, UploadedFile] = {}
    for f in files:
        try:
            safe = _safe_name(f.name)
        except ValueError as exc:
            errors.append(UploadError(f.name or "?", str(exc)))
            continue
        if safe in named:
            errors.append(UploadError(f.name, "uploaded twice; the second copy is ignored"))
            continue
        named[safe] = f

    used: set[str] = set()
    for safe, f in named.items():
        suffix = Path(safe).suffix.lower()
        if suffix not in (".npy", ".csv"):
            continue
        used.add(safe)
        if not f.data:
            errors.append(UploadError(f.name, "the file is empty"))
            continue
        if fs_value is None:
            errors.append(UploadError(f.name, fs_error or ".npy/.csv files carry no sampling rate; "
                                      "enter it in the fs field (Hz)"))
            continue
        try:
            if suffix == ".npy":
                _npy_size(safe, f.data, fs_value, max_duration_s)
                try:
                    arr = np.load(io.BytesIO(f.data), allow_pickle=False)
                except Exception as exc:  # numpy raises ValueError/EOFError/UnpicklingError for junk
                    raise ValueError(f"not a valid .npy array ({exc})") from None
                records.extend(split_npy(safe, arr, fs_value))
            else:
                path = _write(workdir, safe, f.data)
                rec = read_record(path, fs=fs_value)
                rec.name = Path(safe).stem
                check_signal_size(safe, rec.n_samples, fs_value, min(rec.n_leads, MAX_LEADS),
                                  max_duration_s=max_duration_s)
                records.append(rec)
        except SignalTooLong as exc:
            errors.append(UploadError(f.name, _strip_path(str(exc), workdir, safe), too_long=True))
        except (ValueError, OSError, OverflowError) as exc:
            errors.append(UploadError(f.name, _strip_path(str(exc), workdir, safe)))

    headers = [s for s in named if Path(s).suffix.lower() == ".hea"]
    for hea in headers:
        used.add(hea)
        stem = Path(hea).stem
        try:
            hea_path = _write(workdir, hea, named[hea].data)
            hdr = read_header(hea_path)
            if hdr.multi_segment:
                raise ValueError("multi-segment WFDB records are not accepted; upload a single-segment record")
            if hdr.sig_len:
                check_signal_size(hea, hdr.sig_len, hdr.fs, hdr.n_sig, max_duration_s=max_duration_s)
            needed = sorted({s.file_name for s in hdr.signals})
            missing = [n for n in needed if n not in named]
            if missing:
                raise ValueError(f"the header names signal file(s) {', '.join(missing)}, which were not "
                                 f"uploaded; select {hea} together with {', '.join(needed)}")
            for n in needed:
                used.add(n)
                _write(workdir, n, named[n].data)
            atr = f"{stem}.atr"
            if atr in named:
                used.add(atr)
                _write(workdir, atr, named[atr].data)
            rec = read_record(hea_path.with_suffix(""))
            check_signal_size(hea, rec.n_samples, rec.fs, min(rec.n_leads, MAX_LEADS), max_duration_s=max_duration_s)
            records.append(rec)
        except SignalTooLong as exc:
            errors.append(UploadError(named[hea].name, _strip_path(str(exc), workdir, hea), too_long=True))
        except (ValueError, OSError, IndexError, OverflowError, TypeError) as exc:
            errors.append(UploadError(named[hea].name, _strip_path(str(exc), workdir, hea)))

    for safe, f in named.items():
        if safe in used:
            continue
        suffix = Path(safe).suffix.lower()
        if suffix in _WFDB_SUFFIXES:
            errors.append(UploadError(f.name, f"a WFDB {suffix} file needs its header: upload "
                                      f"{Path(safe).stem}.hea with it"))
        else:
            errors.append(UploadError(f.name, f"unsupported file type {suffix or '(none)'!r}; expected "
                                      ".npy, .csv or WFDB .hea + .dat (+ .atr)"))
    sane = []
    for rec in records:  # values near the float limit make every filter overflow: refuse them by name
        finite = np.abs(rec.signal[np.isfinite(rec.signal)])
        if finite.size and finite.max() > 1e12:
            errors.append(UploadError(rec.name, "samples must lie within ±1e12 (values near the float limit are "
                                                "not ECG in any unit)"))
        else:
            sane.append(rec)
    records = sane
    if len(records) > MAX_ECGS:
        errors.append(UploadError("upload", f"{len(records)} ECGs; only the first {MAX_ECGS} are analysed"))
        records = records[:MAX_ECGS]
    return records, errors


def _write(workdir, name: str, data: bytes) -> Path:
    if workdir is None:
        raise ValueError("internal: a work folder is needed to read WFDB/CSV uploads")
    path = Path(workdir) / name
    path.write_bytes(data)
    return path


def _strip_path(message: str, workdir, name: str | None = None) -> str:
    # Messages from ecgcore.io name the server's temp folder; the user only knows the file names. The error is
    # shown as "<file>: <message>", so a message that starts with the file's name loses that prefix.
    if workdir is not None:
        message = message.replace(str(Path(workdir)) + "/", "")
    if name and message.startswith(f"{name}: "):
        message = message[len(name) + 2:]
    return message
