"""Windows of ``ecgcore preprocess heartid`` folders, subject-disjoint splits and triplet batches (NumPy only)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Subject:
    """One person: ``id`` = ``<database>:<subject>``; windows (n, 1000) in time order, enrol/probe split."""

    id: str
    database: str
    windows: np.ndarray
    record: np.ndarray
    probe: np.ndarray

    @property
    def enrol_windows(self) -> np.ndarray:
        return self.windows[~self.probe]

    def probe_groups(self, size: int, max_groups: int | None = None) -> list[tuple[str, np.ndarray]]:
        """Probe windows cut into groups of ``size`` consecutive windows of one record: ``[(record, (size, L))]``.

        A record's trailing windows that do not fill a group are dropped, except that a record with fewer
        than ``size`` probe windows forms one group.
        """
        idx = np.flatnonzero(self.probe)
        groups = []
        for rec in dict.fromkeys(self.record[idx]):
            r = idx[self.record[idx] == rec]
            if len(r) < size:
                groups.append((str(rec), self.windows[r]))
                continue
            for i in range(0, len(r) - size + 1, size):
                groups.append((str(rec), self.windows[r[i:i + size]]))
        return groups[:max_groups] if max_groups else groups


def load_dataset(folder: str | Path, name: str | None = None) -> list[Subject]:
    """Subjects of one ``heartid`` recipe output folder (``subjects.csv`` + ``<subject>.npz``)."""
    folder = Path(folder)
    index = folder / "subjects.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: make the dataset with `ecgcore preprocess heartid IN {folder}`")
    db = name or folder.name
    subjects = []
    with open(index, newline="") as f:
        for row in csv.DictReader(f):
            d = np.load(folder / row["file"])
            subjects.append(Subject(f"{db}:{row['subject']}", db, d["windows"].astype(np.float32),
                                    d["record"].astype(str), d["probe"].astype(bool)))
    if not subjects:
        raise ValueError(f"{index} lists no subjects")
    return subjects


def split_subjects(subjects: list[Subject], test_fraction: float, val_fraction: float,
                   seed: int = 0) -> dict[str, list[str]]:
    """Subject-disjoint ``{"train", "val", "test"}`` id lists, drawn per database (a seeded permutation)."""
    out = {"train": [], "val": [], "test": []}
    for db in dict.fromkeys(s.database for s in subjects):
        ids = sorted(s.id for s in subjects if s.database == db)
        perm = np.random.default_rng([seed, len(ids)]).permutation(len(ids))
        n_test = int(round(len(ids) * test_fraction))
        n_val = int(round(len(ids) * val_fraction))
        out["test"] += [ids[i] for i in perm[:n_test]]
        out["val"] += [ids[i] for i in perm[n_test:n_test + n_val]]
        out["train"] += [ids[i] for i in perm[n_test + n_val:]]
    return out


class TripletSampler:
    """Anchor/positive from one training subject (two different windows), negative from another.

    Subjects are drawn uniformly, so a 30-min MIT-BIH record weighs as much as a 40-s ECG-ID person.
    """

    def __init__(self, subjects: list[Subject]):
        self.subjects = [s for s in subjects if len(s.windows) >= 2]
        if len(self.subjects) < 2:
            raise ValueError("triplets need at least two training subjects with two windows each")

    def spectra(self, workers: int | None = 1) -> None:
        """Precompute every window's 501 STFT features (C++ ``db_spectrogram``, float64, mean over frames)."""
        from ...dsp import db_spectrogram

        self._spec = [db_spectrogram(s.windows.astype(np.float64), workers=workers).mean(axis=-1).astype(np.float32)
                      for s in self.subjects]

    def batch(self, rng: np.random.Generator, size: int):
        """(anchor, positive, negative) windows, each (size, L) float32; after :meth:`spectra` also their
        (size, 501) STFT features as a second triple."""
        n = len(self.subjects)
        si = rng.integers(0, n, size)
        ni = (si + rng.integers(1, n, size)) % n  # never the anchor's subject
        idx = []
        for s, t in zip(si, ni):
            i, j = rng.choice(len(self.subjects[s].windows), 2, replace=False)
            idx.append((s, i, s, j, t, rng.integers(len(self.subjects[t].windows))))
        out = tuple(np.stack([self.subjects[r[2 * k]].windows[r[2 * k + 1]] for r in idx]) for k in range(3))
        if getattr(self, "_spec", None) is None:
            return out
        return out, tuple(np.stack([self._spec[r[2 * k]][r[2 * k + 1]] for r in idx]) for k in range(3))


def load_subjects(data_dirs) -> list:
    subjects = []
    for d in data_dirs:
        subjects += load_dataset(d)
    ids = [s.id for s in subjects]
    if len(set(ids)) != len(ids):
        raise ValueError("two dataset folders share a name; subject ids must be unique (name the folders apart)")
    return subjects
