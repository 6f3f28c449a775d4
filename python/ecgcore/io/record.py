"""ECG records: WFDB (native 212/16/61/80 decoder, wfdb-python for everything else), ``.npy`` and ``.csv``."""
from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.lib.format as npformat

from .._native import core, threads
from .annotations import parse_annotation_bytes, wfdb_rdann_would_hang
from .header import Header, read_header

__all__ = ["Annotations", "Record", "read_record", "read_annotations", "write_annotations", "record_paths"]

# Beat annotation symbols as WFDB's bxb counts them (ecgcodes.h: NORMAL..PACESP, LEARN excluded).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


@dataclass
class Annotations:
    """Annotation samples and symbols, in the vocabulary of ``wfdb.Annotation``."""

    sample: np.ndarray  # int64 sample indices
    symbol: np.ndarray  # str symbols, same length
    aux_note: list[str] = field(default_factory=list)
    chan: np.ndarray | None = None
    subtype: np.ndarray | None = None
    extension: str = "atr"
    fs: float | None = None

    def __len__(self) -> int:
        return int(self.sample.size)

    def beats(self) -> "Annotations":
        """Only the beat annotations (``N``, ``V``, ``A``, ...; rhythm and noise marks dropped)."""
        keep = np.fromiter((s in BEAT_SYMBOLS for s in self.symbol), dtype=bool, count=len(self.symbol))
        return Annotations(self.sample[keep], self.symbol[keep],
                           [a for a, k in zip(self.aux_note, keep) if k] if self.aux_note else [],
                           None if self.chan is None else self.chan[keep],
                           None if self.subtype is None else self.subtype[keep], self.extension, self.fs)

    def counts(self) -> dict[str, int]:
        sym, cnt = np.unique(self.symbol, return_counts=True)
        return {str(s): int(c) for s, c in zip(sym, cnt)}


@dataclass
class Record:
    """One ECG recording.

    Attributes
    ----------
    signal : (n_samples, n_leads) float array in physical units (NaN where the ADC marked a gap)
    fs : sampling rate in Hz
    leads : lead names (``MLII``, ``V1``, ``I``, ...)
    units : physical unit of each lead
    annotations : reference annotations when an annotation file was found, else None
    """

    signal: np.ndarray
    fs: float
    leads: list[str]
    units: list[str]
    name: str = ""
    path: Path | None = None
    annotations: Annotations | None = None
    adc_gain: np.ndarray | None = None
    baseline: np.ndarray | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs

    def lead(self, name_or_index: str | int) -> np.ndarray:
        """One lead as a 1-D array, by name (``"MLII"``) or index."""
        if isinstance(name_or_index, str):
            if name_or_index not in self.leads:
                raise KeyError(f"{self.name}: no lead {name_or_index!r}; leads are {self.leads}")
            return self.signal[:, self.leads.index(name_or_index)]
        return self.signal[:, name_or_index]

    @classmethod
    def from_wfdb(cls, rec, annotation=None) -> "Record":
        """Wrap a ``wfdb.Record`` (and optionally a ``wfdb.Annotation``) without copying the signal."""
        sig = rec.p_signal if rec.p_signal is not None else rec.dac()
        ann = None
        if annotation is not None:
            ann = Annotations(np.asarray(annotation.sample, dtype=np.int64), np.asarray(annotation.symbol),
                              list(annotation.aux_note or []), extension=annotation.extension, fs=rec.fs)
        return cls(signal=np.asarray(sig), fs=float(rec.fs), leads=list(rec.sig_name), units=list(rec.units),
                   name=rec.record_name, annotations=ann,
                   adc_gain=np.asarray(rec.adc_gain, dtype=np.float64) if rec.adc_gain else None,
                   baseline=np.asarray(rec.baseline, dtype=np.float64) if rec.baseline else None,
                   comments=list(rec.comments or []))


_RECORD_SUFFIXES = (".hea", ".dat", ".atr")
_INT64_MAX = (1 << 63) - 1


def _record_base(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in _RECORD_SUFFIXES else path


def _read_wfdb_native(hdr: Header, sampfrom: int, sampto: int | None, channels, physical: bool,
                      dtype, workers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode the record's signal files with the C++ decoder. Returns (signal, gain, baseline).

    Each signal file is read by one C++ call (GIL released) that maps only the bytes of the requested
    frames and decodes them straight into their columns of the output array.
    """
    n_sig = hdr.n_sig
    chans = list(range(n_sig)) if channels is None else [int(c) for c in channels]
    for c in chans:
        if not 0 <= c < n_sig:
            raise IndexError(f"{hdr.path}: channel {c} does not exist (the record has {n_sig} signals)")
    # Signals stored in the same file (and with the same format) are multiplexed together.
    signals = hdr.signals
    groups: dict[tuple[str, int, int], list[int]] = {}
    for i, s in enumerate(signals):
        groups.setdefault((s.file_name, s.fmt, s.byte_offset), []).append(i)
    sig_len = hdr.sig_len
    base_dir = os.path.dirname(os.fspath(hdr.path))
    files = {}
    for key, members in groups.items():
        fname, fmt, offset = key
        fpath = os.path.join(base_dir, fname)
        try:
            st = os.stat(fpath)
        except FileNotFoundError:
            raise FileNotFoundError(f"{hdr.path}: signal file {fpath} named in the header does not exist") from None
        except (OSError, ValueError) as exc:  # a name too long for the file system, ...
            shown = repr(fname) if len(fname) <= 80 else repr(fname[:80]) + f"... ({len(fname)} characters)"
            raise OSError(f"{hdr.path}: cannot open signal file {shown} named in the header: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"{hdr.path}: signal file {fpath} named in the header is not a file")
        size = st.st_size - offset
        if size <= 0:
            raise ValueError(f"{fpath}: signal file is empty (the header {hdr.path.name} expects samples)")
        available = core.wfdb_samples_available(fmt, size) // len(members)
        files[key] = fpath
        if sig_len is None:
            sig_len = available
        elif available < sig_len:
            need = _bytes_needed(fmt, sig_len * len(members)) + offset  # Python ints: any declared count
            raise ValueError(
                f"{fpath}: signal file is truncated: header {hdr.path.name} declares {sig_len} samples x "
                f"{len(members)} signals in format {fmt} ({need} bytes), the file holds {size + offset} bytes "
                f"({available} complete samples per signal)")
    stop = sig_len if sampto is None else min(int(sampto), sig_len)
    start = int(sampfrom)
    if start < 0 or start >= stop:
        raise ValueError(f"{hdr.path}: empty sample range [{sampfrom}, {sampto}) for a record of {sig_len} samples")
    n = stop - start
    gain = [signals[c].adc_gain for c in chans]
    baseline = [float(signals[c].baseline) for c in chans]
    out = np.empty((n, len(chans)), dtype=dtype)
    w = threads(workers)
    single = len(groups) == 1
    for key, members in groups.items():
        if single:  # every selected channel lives in this file, in output order
            sel, cols = chans, None
        else:
            wanted = [(k, members.index(c)) for k, c in enumerate(chans) if c in members]
            if not wanted:
                continue
            sel, cols = [j for _, j in wanted], [k for k, _ in wanted]
        try:
            if physical:
                g = gain if cols is None else [gain[k] for k in cols]
                b = baseline if cols is None else [baseline[k] for k in cols]
                core.wfdb_read(files[key], key[2], key[1], len(members), start, n, sel, out, w, cols, g, b)
            else:
                core.wfdb_read(files[key], key[2], key[1], len(members), start, n, sel, out, w, cols)
        except ValueError as exc:  # the C++ checks (std::invalid_argument)
            raise ValueError(f"{hdr.path}: {exc}") from None
        except RuntimeError as exc:  # the C++ reader's I/O errors (open, short read): name the record
            raise OSError(f"{hdr.path}: {exc}") from None
    return out, np.array(gain, dtype=np.float64), np.array(baseline, dtype=np.float64)


def _bytes_needed(fmt: int, n: int) -> int:
    """Bytes that n multiplexed samples take in a natively decoded format (core.wfdb_bytes_needed in Python
    ints, for error messages about declared counts beyond int64)."""
    if fmt == 212:
        return (n // 2) * 3 + (2 if n % 2 else 0)
    return n if fmt == 80 else 2 * n


def _check_signal(sig: np.ndarray, path) -> None:
    if sig.size == 0:
        raise ValueError(f"{path}: the record holds no samples")
    if sig.dtype.kind == "f":
        # Stop at the first block holding a real sample (normally the first): no full pass, no big temporary.
        flat = sig.reshape(-1)
        step = 256
        i = 0
        while i < flat.size:
            if not np.isnan(flat[i:i + step]).all():
                return
            i += step
            step = min(step * 4, 1 << 16)
        raise ValueError(f"{path}: every sample is NaN (no valid signal in this record)")


def read_record(path: str | os.PathLike, *, fs: float | None = None, channels: Sequence[int] | None = None,
                sampfrom: int = 0, sampto: int | None = None, annotator: str | None = "atr",
                physical: bool = True, dtype=None, workers: int | None = None) -> Record:
    """Read one ECG record.

    Parameters
    ----------
    path : WFDB record (``dir/100``, ``dir/100.hea`` or ``.dat``), ``.npy`` (``[n]`` or ``[n, ch]``) or ``.csv``
        (one column per lead, an optional header row of lead names).
    fs : sampling rate for ``.npy``/``.csv`` (required there); for WFDB it must match the header if given.
    channels : subset of lead indices (WFDB only).
    sampfrom, sampto : sample range (WFDB only).
    annotator : annotation file extension to attach if present (``"atr"``), or None.
    physical : physical units (default) or raw ADC integers.
    dtype : physical signal: float64 (default) or float32. Digital (``physical=False``): int64 (default, the
        dtype ``wfdb.rdrecord(physical=False)`` returns), int32 or int16 (every natively decoded format fits).

    Returns
    -------
    Record with ``signal`` of shape ``(n_samples, n_leads)``.

    Formats 212, 16, 61 and 80 are decoded in C++ (bit-identical to ``wfdb.rdrecord(physical=False)``;
    physical values identical to wfdb's float64 ``p_signal``); others fall back to wfdb-python.
    """
    path_s = os.fspath(path)
    root, ext = os.path.splitext(path_s)
    suffix = ext.lower()
    if suffix in (".npy", ".csv"):  # plain arrays: float samples whatever `physical` says
        dtype = _signal_dtype(True, dtype if physical else None)
        path = Path(path_s)
        return _read_npy(path, fs, dtype) if suffix == ".npy" else _read_csv(path, fs, dtype)
    dtype = _signal_dtype(physical, dtype)
    base_s = root if ext in _RECORD_SUFFIXES else path_s  # as _record_base, without pathlib round trips
    hdr = read_header(base_s)
    base = Path(base_s)
    if fs is not None and abs(float(fs) - hdr.fs) > 1e-9:
        raise ValueError(f"{hdr.path}: sampling rate is {hdr.fs} Hz, but {fs} Hz was expected")
    if hdr.n_sig == 0:
        raise ValueError(f"{hdr.path}: the record has no signals")
    if hdr.natively_readable:
        sig, gain, baseline = _read_wfdb_native(hdr, sampfrom, sampto, channels, physical, dtype, workers)
        leads = [s.description for s in hdr.signals]
        units = [s.units for s in hdr.signals]
        if channels is not None:
            leads = [leads[c] for c in channels]
            units = [units[c] for c in channels]
        rec = Record(signal=sig, fs=hdr.fs, leads=leads, units=units, name=hdr.record_name, path=base,
                     adc_gain=gain, baseline=baseline, comments=hdr.comments)
    else:
        rec = _read_wfdb_fallback(base, hdr, sampfrom, sampto, channels, physical, dtype)
    if physical:
        _check_signal(rec.signal, hdr.path)
    if annotator:
        ann_path = base.with_name(base.name + "." + annotator)
        if ann_path.is_file():
            ann = read_annotations(base, annotator)
            if sampfrom or sampto is not None:
                stop = sampto if sampto is not None else np.iinfo(np.int64).max
                keep = (ann.sample >= sampfrom) & (ann.sample < stop)
                ann = Annotations(ann.sample[keep] - sampfrom, ann.symbol[keep],
                                  [a for a, k in zip(ann.aux_note, keep) if k] if ann.aux_note else [],
                                  extension=ann.extension, fs=ann.fs)
            rec.annotations = ann
    return rec


_PHYSICAL_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
_DIGITAL_DTYPES = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int16))


def _signal_dtype(physical: bool, dtype) -> np.dtype:
    allowed = _PHYSICAL_DTYPES if physical else _DIGITAL_DTYPES
    if dtype is None:
        return allowed[0]
    dt = np.dtype(dtype)
    if dt not in allowed:
        kind = "physical" if physical else "digital (physical=False)"
        raise ValueError(f"dtype for a {kind} signal must be one of {', '.join(map(str, allowed))}, got {dt}")
    return dt


# Bytes per sample (numerator, denominator) of the uncompressed formats wfdb-python reads (signal(5)).
_FALLBACK_BYTES = {8: (1, 1), 16: (2, 1), 24: (3, 1), 32: (4, 1), 61: (2, 1), 80: (1, 1), 160: (2, 1),
                   212: (3, 2), 310: (4, 3), 311: (4, 3)}


def _check_fallback_sizes(hdr: Header) -> None:
    """Before wfdb-python allocates what a header declares: each signal file must hold the declared frames.

    wfdb sizes its arrays from the header, so a damaged header declaring 10**12 samples would otherwise cost
    a MemoryError (or, just below what the machine can map, the memory itself) before the short file is noticed.
    """
    if hdr.multi_segment or hdr.sig_len is None:
        return
    files: dict[str, list] = {}
    for spec in hdr.signals:
        files.setdefault(spec.file_name, []).append(spec)
    base_dir = os.path.dirname(os.fspath(hdr.path))
    for fname, specs in files.items():
        if any(sp.fmt not in _FALLBACK_BYTES for sp in specs):
            continue  # format 0 (no file) and the compressed formats have no fixed size
        frame = sum(Fraction(_FALLBACK_BYTES[sp.fmt][0], _FALLBACK_BYTES[sp.fmt][1]) * sp.samples_per_frame
                    for sp in specs)
        need = specs[0].byte_offset + math.floor(hdr.sig_len * frame)
        fpath = os.path.join(base_dir, fname)
        try:
            size = os.stat(fpath).st_size
        except (OSError, ValueError):
            continue  # wfdb says what is wrong with the file
        if size < need:
            raise ValueError(
                f"{fpath}: signal file is truncated: header {hdr.path.name} declares {hdr.sig_len} frames of "
                f"{len(specs)} signals ({need} bytes), the file holds {size} bytes")


def _read_wfdb_fallback(base: Path, hdr: Header, sampfrom, sampto, channels, physical, dtype) -> Record:
    import wfdb

    _check_fallback_sizes(hdr)
    try:
        r = wfdb.rdrecord(str(base), sampfrom=sampfrom, sampto=sampto,
                          channels=list(channels) if channels is not None else None, physical=physical)
    except Exception as exc:  # wfdb raises many types; say which file failed
        raise ValueError(f"{hdr.path}: wfdb could not read this record: {exc}") from exc
    sig = r.p_signal if physical else r.d_signal
    if not physical and dtype != sig.dtype and sig.size:
        info = np.iinfo(dtype)
        if sig.min() < info.min or sig.max() > info.max:
            raise ValueError(f"{hdr.path}: digital samples span [{sig.min()}, {sig.max()}], beyond {dtype}")
    sig = np.asarray(sig, dtype=dtype)
    return Record(signal=sig, fs=float(r.fs), leads=list(r.sig_name), units=list(r.units), name=r.record_name,
                  path=base, adc_gain=np.asarray(r.adc_gain, dtype=np.float64),
                  baseline=np.asarray(r.baseline, dtype=np.float64), comments=list(r.comments or []))


def _need_fs(path: Path, fs) -> float:
    if fs is None:
        raise ValueError(f"{path}: .npy/.csv files carry no sampling rate; pass fs= (e.g. fs=360)")
    fs = float(fs)
    if not fs > 0:
        raise ValueError(f"{path}: fs must be positive, got {fs}")
    return fs


def _finish_array(path: Path, arr: np.ndarray, fs: float, dtype, leads=None) -> Record:
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a [n_samples] or [n_samples, n_leads] array, got shape {arr.shape}")
    if arr.shape[0] < arr.shape[1]:
        raise ValueError(f"{path}: shape {arr.shape} looks like [n_leads, n_samples]; store [n_samples, n_leads]")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected numeric samples, got dtype {arr.dtype}")
    # Beyond float32's range a sample becomes +-inf, as in astype; a signalling NaN in the file stays a NaN.
    with np.errstate(over="ignore", invalid="ignore"):
        sig = np.ascontiguousarray(arr, dtype=dtype)
    _check_signal(sig, path)
    n_leads = sig.shape[1]
    leads = leads or [f"lead{i}" for i in range(n_leads)]
    return Record(signal=sig, fs=fs, leads=list(leads), units=["mV"] * n_leads, name=path.stem, path=path)


def npy_header(fh, label) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the ``.npy`` file or buffer ``fh`` (at its start), left positioned at the
    data; ``ValueError`` naming ``label`` when it is not a ``.npy`` array or its header declares more data than the
    file holds (a 1 KB file claiming 10^11 samples), before anything of that size is allocated."""
    import io as _io

    size = len(fh.getbuffer()) if isinstance(fh, _io.BytesIO) else os.fstat(fh.fileno()).st_size
    if size == 0:
        raise ValueError(f"{label}: the file is empty")
    magic = fh.read(len(npformat.MAGIC_PREFIX))
    if magic != npformat.MAGIC_PREFIX:
        what = " (this is a zip archive such as .npz)" if magic.startswith(b"PK") else ""
        raise ValueError(f"{label}: not a valid .npy array: the file does not start with the .npy magic string{what}")
    fh.seek(0)
    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dt = npformat.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dt = npformat.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except Exception as exc:  # numpy's header parser raises ValueError, TokenError, EOFError, ...
        raise ValueError(f"{label}: not a valid .npy array: {exc}") from None
    if dt.hasobject:
        raise ValueError(f"{label}: object arrays are not accepted")
    if not all(0 <= n <= _INT64_MAX for n in shape):
        raise ValueError(f"{label}: not a valid .npy array: the header declares shape {shape}")
    need = math.prod(shape) * dt.itemsize
    have = size - fh.tell()
    if need > have:
        raise ValueError(f"{label}: the header declares shape {shape} of {dt} ({need} bytes) but the file "
                         f"holds only {have} bytes of data")
    return tuple(int(n) for n in shape), bool(fortran), dt


def _read_npy(path: Path, fs, dtype) -> Record:
    fs = _need_fs(path, fs)
    try:
        fh = open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as exc:
        raise OSError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with fh:
        shape, fortran, dt = npy_header(fh, path)
        if dt.kind not in "biuf":
            raise ValueError(f"{path}: expected numeric samples, got dtype {dt}")
        if len(shape) not in (1, 2):
            raise ValueError(f"{path}: expected a [n_samples] or [n_samples, n_leads] array, got shape {shape}")
        count = math.prod(shape)
        # What numpy.lib.format.read_array does for a file, without parsing the header a second time.
        arr = np.fromfile(fh, dtype=dt, count=count)
        arr = arr.reshape(shape[::-1]).transpose() if fortran else arr.reshape(shape)
    return _finish_array(path, arr, fs, dtype)


def _read_csv(path: Path, fs, dtype) -> Record:
    fs = _need_fs(path, fs)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.start} is {raw[exc.start]:#04x}); "
                         f"expected comma-separated numbers") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: the file is empty")
    first = [c.strip() for c in lines[0].split(",")]
    leads = None
    try:
        [float(c) for c in first]
        body = lines
    except ValueError:
        leads = first
        body = lines[1:]
    if not body:
        raise ValueError(f"{path}: no sample rows after the header")
    rows = [ln.split(",") for ln in body]
    n_cols = len(rows[0])
    if any(len(r) != n_cols for r in rows):
        k = next(i for i, r in enumerate(rows) if len(r) != n_cols)
        raise ValueError(f"{path}: rows have different numbers of columns: sample row {k + 1} has "
                         f"{len(rows[k])}, the first has {n_cols}")
    if leads is not None and len(leads) != n_cols:
        raise ValueError(f"{path}: the header row gives {len(leads)} lead names for {n_cols} columns")
    try:
        arr = np.array([[float(c) for c in r] for r in rows])
    except ValueError as exc:
        raise ValueError(f"{path}: non-numeric sample: {str(exc)[:200]}") from None
    return _finish_array(path, arr, fs, dtype, leads)


def read_annotations(path: str | os.PathLike, extension: str = "atr") -> Annotations:
    """Read a WFDB annotation file (``<record>.<extension>``) -> :class:`Annotations`.

    MIT-format files are decoded by :func:`ecgcore.io.annotations.parse_annotation_bytes` (the fields
    ``wfdb.rdann`` returns, without importing wfdb); files using features it leaves to wfdb go to ``wfdb.rdann``.
    """
    base = _record_base(Path(path))
    ann_path = base.with_name(base.name + "." + extension)
    if not ann_path.is_file():
        raise FileNotFoundError(f"annotation file not found: {ann_path}")
    data = ann_path.read_bytes()
    if not data:
        raise ValueError(f"{ann_path}: the annotation file is empty")
    fast = parse_annotation_bytes(data)
    if fast is not None:
        fs = fast["fs"]
        if fs is None:
            try:
                fs = read_header(base).fs
            except (OSError, ValueError):
                pass  # as wfdb: the rate comes from the header when there is one
        return Annotations(sample=fast["sample"], symbol=fast["symbol"], aux_note=fast["aux_note"],
                           chan=fast["chan"], subtype=fast["subtype"], extension=extension, fs=fs)
    import wfdb

    stuck = wfdb_rdann_would_hang(data)
    if stuck is not None:
        raise ValueError(f"{ann_path}: cannot read annotations: the definition note {stuck[:80]!r} at sample 0 "
                         "is neither the time resolution nor a label-definition block (wfdb.rdann would never "
                         "return on this file)")
    try:
        a = wfdb.rdann(str(base), extension)
    except Exception as exc:
        raise ValueError(f"{ann_path}: cannot read annotations: {exc}") from exc
    return Annotations(sample=np.asarray(a.sample, dtype=np.int64), symbol=np.asarray(a.symbol),
                       aux_note=list(a.aux_note or []), chan=np.asarray(a.chan),
                       subtype=np.asarray(a.subtype), extension=extension, fs=a.fs)


def write_annotations(record_name: str, extension: str, sample, symbol, *, fs: float | None = None,
                      out_dir: str | os.PathLike = ".", aux_note=None) -> Path:
    """Write a WFDB annotation file ``out_dir/record_name.extension`` (readable by ``wfdb.rdann``)."""
    import wfdb

    sample = np.asarray(sample, dtype=np.int64)
    symbol = list(symbol)
    if sample.ndim != 1 or len(symbol) != sample.size:
        raise ValueError("sample and symbol must be 1-D and of equal length")
    if sample.size and (np.any(np.diff(sample) < 0) or sample[0] < 0):
        raise ValueError("annotation samples must be non-negative and sorted")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wfdb.wrann(record_name, extension, sample, symbol=symbol, aux_note=aux_note, fs=fs,
               write_dir=str(out_dir))
    return out_dir / f"{record_name}.{extension}"


def record_paths(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """All records under ``root`` (a record path, a folder, ``.npy``/``.csv`` files), sorted.

    WFDB records are returned without extension (``dir/100``), one per ``.hea``.
    """
    root = Path(root)
    if root.is_file() or root.with_name(root.name + ".hea").is_file():
        return [_record_base(root) if root.suffix in (".hea", ".dat") else root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    pattern = "**/*" if recursive else "*"
    out = []
    for p in root.glob(pattern):
        if p.suffix == ".hea":
            out.append(p.with_suffix(""))
        elif p.suffix.lower() in (".npy", ".csv") and p.is_file():
            out.append(p)
    return sorted(out)
