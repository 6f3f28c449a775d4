"""HuBERT-ECG model inputs from raw records (SPEC 5.1), in NumPy + ``ecgcore.dsp`` only (no framework import).

``ecgcore infer`` rebuilds a model input from a raw WFDB/npy record with :func:`input_from_record` and the card's
``preprocessing`` dict; training uses the same functions, so train and inference inputs are identical.

The per-record transform is the ``hubert-features`` recipe's (zero-phase Butterworth band-pass 0.05-47 Hz of order 4,
FFT resample to 500 Hz, per-lead min-max to [-1, 1] with eps 1e-8, first 5 s, leads zero-filled up to 12), then the
seed's model-input step: the leads are flattened lead-major (12 x 2500 = 30,000 samples) and the **flattened** vector
is decimated by 5 (``scipy.signal.decimate`` semantics) to 6000 = 12 leads x 5 s x 100 Hz.
"""
from __future__ import annotations

import ast
import csv
import hashlib
from pathlib import Path

import numpy as np

# The input builder lives with the recipes (``ecgcore infer`` imports no model package); re-exported here.
from ...pipelines.recipes.hubert_inputs import PREPROCESSING, STANDARD_LEADS, build_input, standardise

__all__ = [
    "PREPROCESSING", "STANDARD_LEADS", "PTBXL_SUPERCLASSES", "build_input", "input_from_record", "list_records",
    "load_inputs", "ptbxl_folds", "ptbxl_table", "labels_table", "split_of", "standardise", "random_crops",
]

PTBXL_SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


def input_from_record(path, *, preprocessing: dict | None = None, seconds: float | None = None,
                      input_fs: float | None = None, workers: int | None = None) -> np.ndarray:
    """:func:`build_input` of a WFDB record (``dir/rec``) or a ``.npy`` ``(leads, samples)`` at ``input_fs``."""
    from ...io import read_record

    p = {**PREPROCESSING, **(preprocessing or {})}
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        ecg = np.load(path, allow_pickle=False)
        if ecg.ndim != 2 or ecg.shape[0] > ecg.shape[1]:
            raise ValueError(f"{path}: expected (leads, samples), got shape {ecg.shape}")
        return build_input(ecg, float(input_fs or p["input_fs"]), preprocessing=p, seconds=seconds, workers=workers)
    rec = read_record(path, annotator=None, workers=workers)
    try:
        return build_input(rec.signal.T, rec.fs, leads=rec.leads, preprocessing=p, seconds=seconds, workers=workers)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def list_records(data_dir) -> list[str]:
    """Record names under ``data_dir`` as the ``hubert-features`` recipe names them (``00000/00001_hr``, ``x.npy``)."""
    from ...io import record_paths

    data_dir = Path(data_dir)
    out = []
    for p in record_paths(data_dir):
        if p.suffix.lower() == ".csv":
            continue
        out.append(str(p.relative_to(data_dir)))
    if not out:
        raise FileNotFoundError(f"{data_dir}: no WFDB (.hea) or .npy records")
    return sorted(out)


def load_inputs(data_dir, items: list[str], *, preprocessing: dict | None = None, seconds: float | None = None,
                cache: Path | None = None, progress: bool = True) -> np.ndarray:
    """Stacked :func:`input_from_record` for ``items`` -> (N, n_leads * seconds * 100) float32, cached in ``cache``.

    The cache key hashes the item list and preprocessing, so a changed dataset is rebuilt, not reused.
    """
    p = {**PREPROCESSING, **(preprocessing or {})}
    key = hashlib.sha256(repr((sorted(p.items()), seconds, list(items))).encode()).hexdigest()[:16]
    if cache is not None:
        cache = Path(cache)
        f = cache / f"inputs-{key}.npy"
        if f.is_file():
            return np.load(f)
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="inputs", unit="rec", leave=False)
    X = np.stack([input_from_record(Path(data_dir) / i, preprocessing=p, seconds=seconds) for i in it])
    if cache is not None:
        from ..._fs import atomic_write

        with atomic_write(f) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, X)
    return X


def random_crops(x10, n_crops: int, *, n_leads: int = 12, crop: int = 500, rng=None) -> np.ndarray:
    """Time-aligned random crops (the same offset for every lead) of lead-major windows (SPEC 5.7 TTA).

    Parameters
    ----------
    x10 : (N, n_leads * L) lead-major inputs of L > crop samples per lead (10 s windows: L = 1000).

    Returns
    -------
    (n_crops, N, n_leads * crop) float32.
    """
    rng = np.random.default_rng(rng)
    x = np.asarray(x10).reshape(len(x10), n_leads, -1)
    L = x.shape[2]
    if L < crop:
        raise ValueError(f"windows of {L} samples per lead are shorter than the {crop}-sample crop")
    out = np.empty((n_crops, len(x), n_leads * crop), np.float32)
    for c in range(n_crops):
        starts = rng.integers(0, L - crop + 1, size=len(x))
        for i, s in enumerate(starts):
            out[c, i] = x[i, :, s:s + crop].reshape(-1)
    return out


# ----------------------------------------------------------------------------------------------------------- labels

def _find(data_dir: Path, name: str) -> Path | None:
    for d in (data_dir, *data_dir.parents[:2]):
        if (d / name).is_file():
            return d / name
    return None


def ptbxl_table(data_dir) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """PTB-XL superdiagnostic targets for the records under ``data_dir`` (``records500`` or ``records100``).

    ``ptbxl_database.csv`` and ``scp_statements.csv`` are looked up in ``data_dir`` and its two parents. Each
    ECG's classes are the ``diagnostic_class`` of its ``scp_codes`` whose statement has ``diagnostic == 1`` (any
    likelihood, as in the PTB-XL benchmark); ECGs without a superclass are left out.

    Returns
    -------
    items : record names relative to ``data_dir`` (present on disk)
    y : (N, 5) float32 multi-hot in :data:`PTBXL_SUPERCLASSES` order
    folds : (N,) int strat_fold (1-8 train, 9 validation, 10 test)
    classes : the class names
    """
    data_dir = Path(data_dir).resolve()
    db, scp = _find(data_dir, "ptbxl_database.csv"), _find(data_dir, "scp_statements.csv")
    if db is None or scp is None:
        raise FileNotFoundError(f"{data_dir}: ptbxl_database.csv and scp_statements.csv not found here or above")
    diag = {}
    with open(scp, newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows)
        hi = {h: i for i, h in enumerate(header)}
        if "diagnostic_class" not in hi or "diagnostic" not in hi:
            raise ValueError(f"{scp}: expected columns diagnostic, diagnostic_class")
        for r in rows:
            if r[hi["diagnostic"]].strip() in ("1", "1.0") and r[hi["diagnostic_class"]].strip():
                diag[r[0]] = r[hi["diagnostic_class"]].strip()
    root = db.parent
    items, ys, folds = [], [], []
    with open(db, newline="") as fh:
        for r in csv.DictReader(fh):
            y = np.zeros(len(PTBXL_SUPERCLASSES), np.float32)
            for code in ast.literal_eval(r["scp_codes"]):
                if code in diag:
                    y[PTBXL_SUPERCLASSES.index(diag[code])] = 1.0
            if not y.any():
                continue
            for col in ("filename_hr", "filename_lr"):
                rec = (root / r[col]).resolve()
                if rec.with_suffix(".hea").is_file() and data_dir in rec.parents:
                    items.append(str(rec.relative_to(data_dir)))
                    ys.append(y)
                    folds.append(int(r["strat_fold"]))
                    break
    if not items:
        raise FileNotFoundError(f"{data_dir}: no PTB-XL record of {db} found under it")
    return items, np.stack(ys), np.asarray(folds), list(PTBXL_SUPERCLASSES)


def ptbxl_folds(data_dir) -> dict[str, int] | None:
    """``{record name: strat_fold}`` of every PTB-XL row under ``data_dir`` (None when it is not PTB-XL)."""
    data_dir = Path(data_dir).resolve()
    db = _find(data_dir, "ptbxl_database.csv")
    if db is None:
        return None
    out = {}
    with open(db, newline="") as fh:
        for r in csv.DictReader(fh):
            for col in ("filename_hr", "filename_lr"):
                rec = (db.parent / r[col]).resolve()
                if data_dir in rec.parents:
                    out[str(rec.relative_to(data_dir))] = int(r["strat_fold"])
    return out or None


def labels_table(path) -> tuple[list[str], np.ndarray, np.ndarray | None, list[str]]:
    """A labels CSV ``record,<class columns...>[,split]`` (0/1 columns; ``split`` in train/val/test).

    Returns items, y (N, C) float32, split (N,) str array or None, class names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} not found")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2 or rows[0][0] != "record":
        raise ValueError(f"{path}: expected a header 'record,<class>,...[,split]' and at least one row")
    header = rows[0]
    has_split = header[-1] == "split"
    classes = header[1:-1] if has_split else header[1:]
    items, ys, splits = [], [], []
    for n, r in enumerate(rows[1:], start=2):
        try:
            ys.append([float(v) for v in r[1:1 + len(classes)]])
        except ValueError:
            raise ValueError(f"{path}:{n}: label columns must be numbers (0/1)") from None
        items.append(r[0])
        if has_split:
            if r[-1] not in ("train", "val", "test"):
                raise ValueError(f"{path}:{n}: split must be train, val or test, got {r[-1]!r}")
            splits.append(r[-1])
    return items, np.asarray(ys, np.float32), (np.asarray(splits) if has_split else None), classes


def split_of(items: list[str], *, folds=None, splits=None, val_fraction: float = 0.1,
             test_fraction: float = 0.1) -> np.ndarray:
    """``"train" | "val" | "test"`` per item: PTB-XL folds (1-8 / 9 / 10), an explicit split, or a stable hash."""
    if splits is not None:
        return np.asarray(splits)
    if folds is not None:
        folds = np.asarray(folds)
        return np.where(folds <= 8, "train", np.where(folds == 9, "val", "test"))
    u = np.array([int(hashlib.md5(i.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for i in items])
    return np.where(u < test_fraction, "test", np.where(u < test_fraction + val_fraction, "val", "train"))
