"""Loading a ``denoise-pairs`` dataset folder (``ecgcore preprocess denoise-pairs``) into pair arrays.

A pair is addressed by ``(window, noise type, SNR)``: ``clean[w]`` and ``noisy[w, k, j]``. Training and
validation both come from the ``train`` records (MIT-BIH DS1); ``test`` records (DS2, with noise segments
from the held-out 30 % of each NSTDB record) are for evaluation only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PairSet", "load_split", "read_dataset_meta", "split_windows", "normalize_pairs", "prefilter_rows", "NoiseBank",
           "noise_bank", "mix_online", "load_extra_clean"]


@dataclass
class PairSet:
    """Pairs of one split.

    Attributes
    ----------
    clean : (n_windows, length) float32
    noisy : (n_windows, n_noise, n_snr, length) float32
    record : (n_windows,) record name of each window
    start : (n_windows,) window start (sample at the dataset's fs) within its record
    noise : noise type names (``bw``, ``ma``, ``em``); snr_db : (n_snr,) nominal SNRs
    """

    clean: np.ndarray
    noisy: np.ndarray
    record: np.ndarray
    start: np.ndarray
    noise: list[str]
    snr_db: np.ndarray
    fs: float

    @property
    def n_pairs(self) -> int:
        return int(np.prod(self.noisy.shape[:3]))

    def subset(self, windows: np.ndarray) -> "PairSet":
        return PairSet(self.clean[windows], self.noisy[windows], self.record[windows], self.start[windows],
                       self.noise, self.snr_db, self.fs)

    def pairs(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat pair indices → ``(noisy, clean)``, each ``(len(index), length)`` float32."""
        n_k, n_j = self.noisy.shape[1:3]
        w, rest = np.divmod(np.asarray(index, dtype=np.int64), n_k * n_j)
        k, j = np.divmod(rest, n_j)
        return self.noisy[w, k, j], self.clean[w]


def read_dataset_meta(dataset_dir) -> tuple[dict, dict]:
    """``(splits, metadata)`` of a denoise-pairs folder, with errors that say what is missing."""
    d = Path(dataset_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"denoise-pairs dataset folder {d} not found")
    return _finished(d, "denoise-pairs", f"{d / 'metadata.json'}: ")


def _finished(d: Path, recipe: str, where: str, why: str = "") -> tuple[dict, dict]:
    """(splits, metadata) of a finished ``recipe`` output folder ``d``; errors that say what is missing or wrong
    (``where`` starts the wrong-recipe message, ``why`` ends it)."""
    sp, md = d / "splits.json", d / "metadata.json"
    for p in (sp, md):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: {d} is not a finished `ecgcore preprocess {recipe}` output")
    meta = json.loads(md.read_text())
    if meta.get("recipe") != recipe:
        raise ValueError(f"{where}recipe is {meta.get('recipe')!r}, expected {recipe!r}{why}")
    return json.loads(sp.read_text()), meta


def load_split(dataset_dir, split: str, records: list[str] | None = None, limit: int | None = None) -> PairSet:
    """All pairs of ``split`` (``"train"`` or ``"test"``), optionally only some records / the first ``limit``."""
    d = Path(dataset_dir)
    splits, meta = read_dataset_meta(d)
    if split not in splits:
        raise ValueError(f"{d}/splits.json has no {split!r} split (has {', '.join(splits)})")
    names = list(splits[split]) if records is None else [r for r in records]
    if limit is not None:
        names = names[:limit]
    if not names:
        raise ValueError(f"{d}: no records in split {split!r}")
    clean, noisy, rec, start = [], [], [], []
    noise = snr = fs = None
    for r in names:
        p = d / f"{r}.npz"
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found (listed in {d}/splits.json)")
        with np.load(p) as z:
            clean.append(z["clean"])
            noisy.append(z["noisy"])
            start.append(z["start"])
            rec.append(np.full(z["clean"].shape[0], r))
            noise, snr, fs = [str(s) for s in z["noise"]], z["snr_db"].astype(np.float64), float(z["fs"])
    return PairSet(np.concatenate(clean), np.concatenate(noisy), np.concatenate(rec), np.concatenate(start),
                   noise, snr, fs)


def split_windows(records: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of each record's windows (all their noise/SNR variants) for validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for r in np.unique(records):
        idx = np.flatnonzero(records == r)
        idx = idx[rng.permutation(idx.size)]
        n_val = int(round(fraction * idx.size)) if fraction > 0 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def prefilter_rows(noisy: np.ndarray, prefilter_hz: float, fs: float = 130.0) -> np.ndarray:
    """``noisy`` (rows of windows) through :func:`ecgcore.pipelines.recipes.denoise_chunks.highpass_prefilter` (order
    3) at ``prefilter_hz``, the filter ``ecgcore infer`` applies to a whole signal; 0: unchanged."""
    if not prefilter_hz:
        return noisy
    from ...pipelines.recipes.denoise_chunks import highpass_prefilter

    return highpass_prefilter(noisy, fs=float(fs), highpass_hz=float(prefilter_hz), order=3)


def normalize_pairs(noisy: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """z-score each noisy window (population std, 0 → 1) and map its clean target with the same affine map.

    The network thus learns ``z(noisy) → (clean - mean_noisy) / std_noisy``: exactly what inference sees
    after :func:`processing.zscore`, and what :func:`processing.restore_scale` inverts.

    Returns ``(x, y, mean, std)`` with ``x, y : (n, length)`` float32 and ``mean, std : (n,)`` float64.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    mean = noisy.mean(axis=-1)
    std = noisy.std(axis=-1)
    std = np.where(std == 0.0, 1.0, std)
    x = (noisy - mean[:, None]) / std[:, None]
    y = (np.asarray(clean, dtype=np.float64) - mean[:, None]) / std[:, None]
    return x.astype(np.float32), y.astype(np.float32), mean, std


@dataclass
class NoiseBank:
    """NSTDB noise at the model's rate, one part of each record: ``noise[kind]`` (n,) float64."""

    noise: dict
    fs: float
    part: str


def nstdb_portion(noise_dir, kinds, *, lead: int, fs: float, fraction: float, part: str = "train") -> dict:
    """``{kind: (n,) float64}``: NSTDB noise records ``kinds`` (lead ``lead``) at ``fs`` (the recipe's resampler),
    the first ``fraction`` of each for ``part="train"``, the rest for ``"test"``."""
    from ...io import read_record
    from ...pipelines.recipes.denoise_pairs import to_model_rate

    out = {}
    for kind in kinds:
        rec = read_record(Path(noise_dir) / kind, annotator=None)
        x = rec.signal[:, int(lead)]
        x = x if rec.fs == fs else to_model_rate(x, rec.fs, fs)
        cut = int(x.size * fraction)
        out[kind] = np.asarray(x[:cut] if part == "train" else x[cut:], np.float64)
    return out


def noise_bank(dataset_dir, *, part: str = "train", noise_dir=None) -> NoiseBank:
    """The NSTDB noise of a denoise-pairs dataset's ``part``: the first ``train_noise_fraction`` of each noise
    record for ``"train"`` (the portion the dataset's training pairs used), the rest for ``"test"``; same lead,
    resampled exactly as the recipe does."""
    from ...datasets.reference import locate

    _, meta = read_dataset_meta(dataset_dir)
    opts = meta["options"]
    nd = Path(noise_dir or opts.get("noise_dir") or "")
    if not (nd / "em.hea").is_file():
        beside = Path(dataset_dir).resolve().parent / "nstdb"
        nd = beside if (beside / "em.hea").is_file() else locate("nstdb")
    fs = float(opts["fs"])
    bank = nstdb_portion(nd, opts["noise"], lead=int(opts["lead"]), fs=fs, fraction=float(opts["train_noise_fraction"]),
                         part=part)
    return NoiseBank(bank, fs, part)


def mix_online(clean: np.ndarray, bank: NoiseBank, rng: np.random.Generator, *, snr_range=(-6.0, 24.0),
               p_clean: float = 0.1, p_mixture: float = 0.3) -> tuple[np.ndarray, dict]:
    """Fresh noisy inputs for clean windows ``(b, n)``: with ``p_clean`` the clean window itself (the network must
    leave clean input alone); otherwise NSTDB noise — one type, or with ``p_mixture`` a Dirichlet(1, 1, 1) blend of
    all of them (each segment mean-removed and scaled to unit power first) — from a random place of the bank, scaled
    to an SNR drawn uniformly from ``snr_range`` (power ratio per window, as the dataset's pairs). Returns
    ``(noisy (b, n) float32, {"snr": (b,), "kind": (b,)})`` (snr = inf for clean inputs)."""
    from ...datasets.noise import noise_scale

    clean = np.asarray(clean, np.float64)
    b, n = clean.shape
    kinds = list(bank.noise)
    noisy = clean.copy()
    snr = np.full(b, np.inf)
    label = np.array(["clean"] * b, dtype=object)
    for i in range(b):
        if rng.random() < p_clean:
            continue
        if rng.random() < p_mixture and len(kinds) > 1:
            w = rng.dirichlet(np.ones(len(kinds)))
            label[i] = "mix"
        else:
            w = np.zeros(len(kinds))
            k = int(rng.integers(len(kinds)))
            w[k] = 1.0
            label[i] = kinds[k]
        mix = np.zeros(n)
        for k, kind in enumerate(kinds):
            if w[k] == 0:
                continue
            src = bank.noise[kind]
            s = int(rng.integers(0, src.size - n + 1))
            seg = src[s:s + n] - src[s:s + n].mean()
            p = np.sqrt(np.mean(seg ** 2))
            mix += w[k] * (seg / p if p > 0 else seg)
        snr[i] = rng.uniform(*snr_range)
        noisy[i] = clean[i] + noise_scale(clean[i], mix, snr[i]) * mix
    return noisy.astype(np.float32), {"snr": snr, "kind": label}


def load_extra_clean(extra_dir, fs: float, length: int, band=None) -> tuple[np.ndarray, dict]:
    """The clean windows of an ``ecgcore preprocess denoise-ptbxl`` folder as ``(n, length)`` float32, and a summary
    (ECGs, patients, windows, leads, folds). Refused, with the reason: a folder of another recipe, or windows at
    another rate or length than the denoise-pairs dataset's (they would teach another time scale), or filtered in
    another ``band`` (when given: the dataset's clean targets' band; they would teach another target)."""
    d = Path(extra_dir)
    splits, meta = _finished(d, "denoise-ptbxl", f"extra_clean {d}: ", " (clean windows only; a denoise-pairs folder "
                             "would add its DS2 test records to training)")
    opts = meta.get("options", {})
    if float(opts.get("fs", -1)) != float(fs) or int(opts.get("length", -1)) != int(length):
        raise ValueError(f"extra_clean {d}: windows of {opts.get('length')} samples at {opts.get('fs')} Hz; the "
                         f"dataset's are {length} at {fs} Hz")
    if band is not None and [float(v) for v in opts.get("band", [])] != [float(v) for v in band]:
        raise ValueError(f"extra_clean {d}: clean windows band-passed {opts.get('band')} Hz; the dataset's targets "
                         f"are {list(band)} Hz")
    items = splits.get("extra", [])
    if not items:
        raise ValueError(f"extra_clean {d}: no ECGs")
    rows, patients = [], set()
    for it in items:
        with np.load(d / f"{it}.npz") as z:
            rows.append(np.asarray(z["clean"], np.float32))
            patients.add(str(z["patient"]))
    clean = np.concatenate(rows)
    return clean, {"recipe": "denoise-ptbxl", "ecgs": len(items), "patients": len(patients),
                   "windows": int(clean.shape[0]), "leads": list(opts.get("leads", [])),
                   "folds": list(opts.get("folds", []))}
