"""MIT-BIH Arrhythmia Database conventions: AAMI classes, record splits, beats for training and evaluation.

AAMI classes (ANSI/AAMI EC57; de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7):1196-1206, 2004):

======  ==========================================  ============================================
class   ``variant="aami"`` (default, EC57/de Chazal)  ``variant="conformer"`` (SPEC §4.2 seed)
======  ==========================================  ============================================
N       N L R e j                                   N L R e j n B
S       A a J S                                     A a J S
V       V E                                         V E
F       F                                           F
Q       / f Q                                       / f Q ?
======  ==========================================  ============================================

The two variants differ only in symbols MIT-BIH does not use (``n``, ``B``, ``?``; ``r`` R-on-T is not in
either, as in the seed), so they give identical counts on MIT-BIH. Non-beat annotations (rhythm ``+``,
noise ``~``, artefacts ``| x " !``, ``[ ]``) have no class.

Splits:

* :data:`DS1` / :data:`DS2`: de Chazal's inter-patient split (22 + 22 records, paced 102 104 107 217
  excluded). This is the default evaluation protocol. Whole-record class counts reproduce the published
  table exactly: DS1 N 45,866 S 944 V 3,788 F 415 Q 8 (51,021); DS2 N 44,259 S 1,837 V 3,221 F 388 Q 7 (49,712).
* :func:`conformer_split`: the Conformer seed's 45-record random record-level split (SPEC §4.6).
* :func:`record_kfold`: record-level (patient-wise) k-fold, identical to ``sklearn.model_selection.KFold``.
* :func:`beat_random_split`: beat-level random split; refused unless ``allow_leaky_split=True`` because it
  puts beats of the same patient in train and test (optimistic, not comparable to inter-patient results).
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "RECORDS", "PACED", "DS1", "DS2", "AAMI_CLASSES", "AAMI_VARIANTS", "DE_CHAZAL_2004",
    "CONFORMER_RECORDS", "CONFORMER_TEST", "LeakySplitWarning",
    "aami_class", "aami_labels", "aami_counts", "aami_table", "format_aami_table",
    "conformer_split", "record_kfold", "beat_random_split", "RecordBeats", "record_beats", "label_detected_beats",
    "mlii_lead",
]

RECORDS = tuple(str(r) for r in [
    100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 111, 112, 113, 114, 115, 116, 117, 118, 119, 121, 122, 123,
    124, 200, 201, 202, 203, 205, 207, 208, 209, 210, 212, 213, 214, 215, 217, 219, 220, 221, 222, 223, 228, 230,
    231, 232, 233, 234])
PACED = ("102", "104", "107", "217")
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205",
       "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219",
       "221", "222", "228", "231", "232", "233", "234")

AAMI_CLASSES = ("N", "S", "V", "F", "Q")

_AAMI = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
_CONFORMER = {"N": "NLRejnB", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ?"}
AAMI_VARIANTS: dict[str, dict[str, str]] = {
    "aami": {sym: cls for cls, syms in _AAMI.items() for sym in syms},
    "conformer": {sym: cls for cls, syms in _CONFORMER.items() for sym in syms},
}

# de Chazal et al. 2004, Table (whole records, all beats of the AAMI classes).
DE_CHAZAL_2004 = {
    "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
    "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
}

# The Conformer seed: 48 records minus 102, 104, 107 (217 kept); its held-out test records come from
# train_test_split(records, test_size=0.15, random_state=42) (SPEC §4.6, data_splits.json).
CONFORMER_RECORDS = tuple(r for r in RECORDS if r not in ("102", "104", "107"))
CONFORMER_TEST = ("228", "207", "208", "233", "220", "231", "106")


class LeakySplitWarning(UserWarning):
    """A split that puts beats of one patient in both train and test."""


def _variant(variant: str) -> dict[str, str]:
    try:
        return AAMI_VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown AAMI mapping variant {variant!r}; choose one of {sorted(AAMI_VARIANTS)}") from None


def aami_class(symbol: str, variant: str = "aami") -> str | None:
    """AAMI class (``"N"``, ``"S"``, ``"V"``, ``"F"``, ``"Q"``) of a beat symbol, None for a non-beat."""
    return _variant(variant).get(str(symbol))


def aami_labels(symbols: Iterable[str], variant: str = "aami") -> np.ndarray:
    """AAMI classes of many symbols as a str array (``""`` for non-beats)."""
    table = _variant(variant)
    return np.array([table.get(str(s), "") for s in symbols], dtype="<U1")


def mlii_lead(leads: Sequence[str]) -> int:
    """Index of lead MLII (modified limb lead II), or 0 for records without it (102, 104: V5 first)."""
    return list(leads).index("MLII") if "MLII" in leads else 0


def _record_path(db_dir, record) -> Path:
    return Path(db_dir) / str(record)


def aami_counts(db_dir: str | os.PathLike, records: Iterable[str], *, variant: str = "aami",
                start_s: float = 0.0) -> dict[str, int]:
    """Beats per AAMI class in the reference annotations of ``records`` (beats from ``start_s`` on)."""
    from ..io import read_annotations

    table = _variant(variant)
    total = Counter({c: 0 for c in AAMI_CLASSES})
    for rec in records:
        ann = read_annotations(_record_path(db_dir, rec), "atr")
        start = int(round(start_s * (ann.fs or 360.0)))
        total.update(table[s] for t, s in zip(ann.sample, ann.symbol) if s in table and t >= start)
    return {c: int(total[c]) for c in AAMI_CLASSES}


def aami_table(db_dir: str | os.PathLike, splits: Mapping[str, Sequence[str]] | None = None, *,
               variant: str = "aami", start_s: float = 0.0) -> dict[str, dict[str, int]]:
    """AAMI class counts per split (default DS1 and DS2), for ``ecgcore info --aami``."""
    splits = {"DS1": DS1, "DS2": DS2} if splits is None else splits
    return {name: aami_counts(db_dir, recs, variant=variant, start_s=start_s) for name, recs in splits.items()}


def format_aami_table(table: Mapping[str, Mapping[str, int]], reference: Mapping[str, Mapping[str, int]] | None
                      = DE_CHAZAL_2004) -> str:
    """The class-count table as text, with the published counts beside ours where known."""
    lines = [f"{'split':<8}" + "".join(f"{c:>9}" for c in AAMI_CLASSES) + f"{'total':>9}"]
    for name, counts in table.items():
        lines.append(f"{name:<8}" + "".join(f"{counts.get(c, 0):>9,}" for c in AAMI_CLASSES)
                     + f"{sum(counts.values()):>9,}")
        if reference and name in reference:
            ref = reference[name]
            same = all(ref[c] == counts.get(c, 0) for c in AAMI_CLASSES)
            lines.append(f"{'  paper':<8}" + "".join(f"{ref[c]:>9,}" for c in AAMI_CLASSES)
                         + f"{sum(ref.values()):>9,}" + ("  (equal)" if same else "  (differs)"))
    return "\n".join(lines)


def conformer_split() -> tuple[list[str], list[str]]:
    """The Conformer seed's record-level split: (38 k-fold/training records, 7 held-out test records)."""
    train = [r for r in CONFORMER_RECORDS if r not in CONFORMER_TEST]
    return train, list(CONFORMER_TEST)


def record_kfold(records: Sequence[str], n_splits: int = 5, *, shuffle: bool = True,
                 seed: int | None = 42) -> list[tuple[list[str], list[str]]]:
    """Record-level (patient-wise) k-fold: list of (train_records, test_records).

    Folds are those of ``sklearn.model_selection.KFold(n_splits, shuffle=shuffle, random_state=seed)``
    over ``records`` in the given order (the first ``len % n_splits`` folds are one record larger).
    """
    records = [str(r) for r in records]
    if int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer of at least 2, got {n_splits!r}")
    if n_splits > len(records):
        raise ValueError(f"cannot make {n_splits} folds from {len(records)} records")
    order = np.arange(len(records))
    if shuffle:
        np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_splits, len(records) // n_splits)
    sizes[: len(records) % n_splits] += 1
    folds, start = [], 0
    for size in sizes:
        test_idx = set(order[start:start + size].tolist())
        folds.append(([r for i, r in enumerate(records) if i not in test_idx],
                      [records[i] for i in sorted(test_idx)]))
        start += size
    return folds


def beat_random_split(n_beats: int, *, test_size: float = 0.2, seed: int = 42,
                      allow_leaky_split: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random beat-level split (train_index, test_index); refused unless ``allow_leaky_split=True``.

    Beats of the same patient land in both sets, so scores are optimistic and not comparable with
    inter-patient (DS1/DS2) results. Use :data:`DS1`/:data:`DS2`, :func:`record_kfold` or
    :func:`conformer_split` instead.
    """
    if not allow_leaky_split:
        raise ValueError("a beat-level random split leaks patients between train and test; use the DS1/DS2 "
                         "inter-patient split or record_kfold, or pass allow_leaky_split=True "
                         "(--allow-leaky-split) if you really want it")
    warnings.warn("beat-level random split: beats of the same patients are in train and test, so the test "
                  "score overestimates performance on new patients", LeakySplitWarning, stacklevel=2)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    order = np.random.default_rng(seed).permutation(int(n_beats))
    n_test = int(math.ceil(test_size * n_beats))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


@dataclass
class RecordBeats:
    """Beats of one record with their labels.

    ``r_peaks`` are reference annotation samples (``source="reference"``) or detected peaks
    (``source="detected"``); ``symbol``/``aami`` are ``""`` for detections that match no reference beat
    (false positives), and ``reference_index`` is the matched annotation's index or -1.
    """

    record: str
    source: str
    fs: float
    r_peaks: np.ndarray
    symbol: np.ndarray
    aami: np.ndarray
    reference_index: np.ndarray
    n_missed: int = 0  # reference beats without a detection (source="detected")


def label_detected_beats(detected, ann_sample, ann_symbol, *, fs: float, window_s: float = 0.150,
                         variant: str = "aami") -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Label detected R-peaks with the reference beat they match (EC57 matching, 150 ms window).

    Returns
    -------
    symbol : (n_detected,) str, ``""`` for unmatched detections
    aami : (n_detected,) str AAMI class, ``""`` for unmatched detections or beats without a class
    reference_index : (n_detected,) int64 index into the annotation arrays, -1 if unmatched
    n_missed : reference beats that no detection matched
    """
    from .ec57 import beat_mask, match_beats

    ann_sample = np.asarray(ann_sample, dtype=np.int64)
    ann_symbol = np.asarray(ann_symbol)
    detected = np.asarray(detected, dtype=np.int64)
    beat_idx = np.flatnonzero(beat_mask(ann_symbol))
    ref_match, det_match = match_beats(ann_sample[beat_idx], detected, window=int(round(window_s * fs)))
    reference_index = np.where(det_match >= 0, beat_idx[np.maximum(det_match, 0)], -1)
    symbol = np.where(reference_index >= 0, ann_symbol[np.maximum(reference_index, 0)], "")
    return symbol, aami_labels(symbol, variant), reference_index, int(np.count_nonzero(ref_match < 0))


def record_beats(record_path: str | os.PathLike, *, source: str = "reference", variant: str = "aami",
                 lead: int | str | None = None, workers: int | None = None) -> RecordBeats:
    """Beats of one annotated record, from the reference annotations (training) or detected (evaluation).

    ``source="reference"`` keeps every annotation with an AAMI class (``variant``); ``source="detected"``
    runs :func:`ecgcore.dsp.detect_r_peaks` on ``lead`` (default MLII) and labels each detection with the
    reference beat it matches (unmatched detections keep label ``""``), so results on detected beats can be
    reported separately from results on reference beats.
    """
    from ..io import read_record

    if source not in ("reference", "detected"):
        raise ValueError(f"source must be 'reference' or 'detected', got {source!r}")
    path = Path(record_path)
    if source == "reference":
        from ..io import read_annotations

        ann = read_annotations(path, "atr")
        labels = aami_labels(ann.symbol, variant)
        keep = labels != ""
        idx = np.flatnonzero(keep)
        return RecordBeats(path.name, source, float(ann.fs or 360.0), ann.sample[keep], ann.symbol[keep],
                           labels[keep], idx)
    rec = read_record(path)
    if rec.annotations is None:
        raise ValueError(f"{path}: no reference annotations (.atr) to label detected beats with")
    from ..dsp.peaks import detect_r_peaks

    li = mlii_lead(rec.leads) if lead is None else (rec.leads.index(lead) if isinstance(lead, str) else lead)
    peaks = detect_r_peaks(rec.signal[:, li], fs=rec.fs, workers=workers)
    symbol, aami, ref_idx, missed = label_detected_beats(peaks, rec.annotations.sample, rec.annotations.symbol,
                                                         fs=rec.fs, variant=variant)
    return RecordBeats(rec.name, source, rec.fs, peaks, symbol, aami, ref_idx, missed)
