"""Loading a ``segments`` dataset (``ecgcore preprocess segments``) and splitting it by protocol.

Two protocols (SPEC §3.1, issue 7):

``"leaky"``
    The seed's split: every window of every record, in record-name order, split at random by window
    (sklearn ``train_test_split(test_size=0.2, random_state=42)`` twice, reproduced exactly with NumPy).
    Overlapping windows of the same patient land on both sides, so its scores overstate generalisation.
``"inter-patient"``
    de Chazal's DS1 → DS2: train on DS1 records, test on the 22 DS2 records (no patient in both). The
    validation set (early stopping, LR schedule) is ``val_records`` whole DS1 records, picked evenly along
    the DS1 records sorted by their Abnormal fraction, so it is patient-disjoint from training too.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import VAL_PICKS


@dataclass
class SegmentSplit:
    """Windows and labels of one split. ``x`` (n, 1, 3600) float32, ``y`` (n,) int64, ``record`` (n,) str."""

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def summary(self) -> dict:
        return {"segments": len(self), "abnormal": int(self.y.sum()), "records": sorted(set(self.record.tolist()))}


def read_dataset_info(dataset_dir) -> dict:
    """``metadata.json`` + ``splits.json`` of a segments dataset; clear errors when it is not one."""
    d = Path(dataset_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"segments dataset folder {d} not found (make it with `ecgcore preprocess segments`)")
    meta_path = d / "metadata.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {d} is not a dataset made by `ecgcore preprocess segments`")
    meta = json.loads(meta_path.read_text())
    if meta.get("recipe") != "segments":
        raise ValueError(f"{meta_path}: recipe is {meta.get('recipe')!r}, expected 'segments'")
    splits_path = d / "splits.json"
    meta["splits"] = json.loads(splits_path.read_text()) if splits_path.is_file() else {"DS1": [], "DS2": []}
    return meta


def preprocessing_of(dataset_dir) -> dict:
    """The card's ``preprocessing`` entry: recipe kind, options as used, the seed scaler when present."""
    meta = read_dataset_info(dataset_dir)
    pre = {"kind": "segments", **meta["options"]}
    scaler = Path(dataset_dir) / "scaler.npz"
    if pre.get("seed_compat") and scaler.is_file():
        with np.load(scaler) as z:
            pre["scaler_mean"] = z["mean"].tolist()
            pre["scaler_scale"] = z["scale"].tolist()
    return pre


def load_records(dataset_dir, records: list[str]) -> SegmentSplit:
    """Concatenate the windows of ``records`` (in the given order), standardised as the model expects."""
    d = Path(dataset_dir)
    meta = read_dataset_info(d)
    scaler = None
    if meta["options"].get("seed_compat"):
        path = d / "scaler.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a seed_compat segments dataset needs its per-column scaler")
        with np.load(path) as z:
            scaler = (z["mean"].astype(np.float32), z["scale"].astype(np.float32))
    xs, ys, recs, starts = [], [], [], []
    for r in records:
        path = d / f"{r}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: record {r} missing from the segments dataset {d}")
        with np.load(path) as z:
            seg = z["segments"].astype(np.float32)
            xs.append(seg)
            ys.append(z["labels"].astype(np.int64))
            starts.append(z["start"].astype(np.int64))
        recs.append(np.full(seg.shape[0], r))
    if not xs:
        raise ValueError(f"no records selected from {d}")
    x = np.concatenate(xs)
    if scaler is not None:
        x = (x - scaler[0]) / scaler[1]
    return SegmentSplit(x=x[:, None, :], y=np.concatenate(ys), record=np.concatenate(recs), start=np.concatenate(starts))


def seed_random_split(n: int, test_size: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices exactly as ``sklearn.model_selection.train_test_split(shuffle=True)``."""
    n_test = math.ceil(test_size * n)
    perm = np.random.RandomState(random_state).permutation(n)
    return perm[n_test:], perm[:n_test]


def available_records(dataset_dir) -> list[str]:
    return sorted(p.stem for p in Path(dataset_dir).glob("*.npz") if p.stem != "scaler")


def pick_val_records(dataset_dir, candidates: list[str], n_val: int, pick: str = "spread") -> list[str]:
    """``n_val`` records spread evenly along ``candidates`` sorted by Abnormal fraction (then name).

    ``pick="keep-abnormal"`` first removes the records whose windows are mostly Abnormal from the candidates: DS1
    holds only four (109 and 207 with left bundle-branch block, 118 and 124 with right), and holding one out for
    validation takes a large share of one morphology away from training (109 holds 63 % of DS1's LBBB beats)."""
    if pick not in VAL_PICKS:
        raise ValueError(f"val_pick must be one of {', '.join(VAL_PICKS)}, got {pick!r}")
    if n_val <= 0:
        return []
    meta = read_dataset_info(dataset_dir)["records"]
    frac = {r: meta[r]["abnormal"] / max(meta[r]["segments"], 1) for r in candidates}
    if pick == "keep-abnormal":
        candidates = [r for r in candidates if frac[r] <= 0.5]
    if n_val >= len(candidates):
        raise ValueError(f"cannot hold out {n_val} of {len(candidates)} training records for validation")
    ordered = sorted(candidates, key=lambda r: (frac[r], r))
    idx = [int((i + 0.5) * len(ordered) / n_val) for i in range(n_val)]
    return sorted(ordered[i] for i in idx)


def protocol_splits(dataset_dir, protocol: str, *, seed: int = 42, test_size: float = 0.2, val_size: float = 0.2,
                    val_records: int = 4, val_pick: str = "spread", val_names=(),
                    exclude=()) -> dict[str, SegmentSplit]:
    """``{"train", "val", "test"}`` splits of a segments dataset for ``protocol`` (see module docstring).

    ``val_names`` (inter-patient): the validation records by name instead of ``val_records`` / ``val_pick`` (e.g.
    to rotate chosen records through the held-out fold of a record-grouped cross-validation); DS1 records only.
    ``exclude`` (inter-patient): DS1 records left out before validation records are picked; the test split is
    untouched."""
    recs = available_records(dataset_dir)
    if not recs:
        raise FileNotFoundError(f"no <record>.npz files in {dataset_dir}")
    if protocol == "leaky":
        full = load_records(dataset_dir, recs)
        trainval, test = seed_random_split(len(full), test_size, seed)
        tr, va = seed_random_split(len(trainval), val_size, seed)
        train, val = trainval[tr], trainval[va]
        return {name: SegmentSplit(full.x[i], full.y[i], full.record[i], full.start[i])
                for name, i in (("train", train), ("val", val), ("test", test))}
    if protocol == "inter-patient":
        splits = read_dataset_info(dataset_dir)["splits"]
        ds1 = [r for r in splits.get("DS1", []) if r in recs]
        ds2 = [r for r in splits.get("DS2", []) if r in recs]
        drop = {str(r) for r in exclude}
        outside = sorted(drop - set(splits.get("DS1", [])))
        if outside:
            raise ValueError(f"exclude_records names records outside DS1: {', '.join(outside)} (only training "
                             "records can be left out)")
        ds1 = [r for r in ds1 if r not in drop]
        if not ds1 or not ds2:
            raise ValueError(f"{dataset_dir}: the inter-patient protocol needs DS1 and DS2 records "
                             f"(found {len(ds1)} DS1, {len(ds2)} DS2); use --protocol leaky or preprocess more records")
        if val_names:
            val = sorted({str(r) for r in val_names})
            outside = [r for r in val if r not in ds1]
            if outside:
                raise ValueError(f"val_names {', '.join(outside)}: not DS1 records of {dataset_dir} (validation "
                                 f"records come from DS1; DS2 is the test set)")
            if len(val) >= len(ds1):
                raise ValueError(f"val_names holds out all {len(ds1)} DS1 records; none would train")
        else:
            val = pick_val_records(dataset_dir, ds1, val_records, val_pick)
        train = [r for r in ds1 if r not in val]
        return {"train": load_records(dataset_dir, train), "val": load_records(dataset_dir, val) if val else None,
                "test": load_records(dataset_dir, ds2)}
    raise ValueError(f"unknown protocol {protocol!r} (expected 'inter-patient' or 'leaky')")


def config_splits(dataset_dir, config, *, extra: bool = False) -> dict[str, SegmentSplit]:
    """:func:`protocol_splits` with the split settings of an :class:`~.config.AttentionConfig`; with ``extra`` (the
    trainer) also ``"extra"`` (:func:`extra_windows`) when ``config.extra_train`` names a dataset."""
    splits = protocol_splits(dataset_dir, config.protocol, seed=config.seed, test_size=config.test_fraction,
                             val_size=config.val_fraction, val_records=config.val_records, val_pick=config.val_pick,
                             val_names=getattr(config, "val_names", ()),
                             exclude=getattr(config, "exclude_records", ()))
    if extra and getattr(config, "extra_train", None):
        splits["extra"] = extra_windows(config.extra_train, dataset_dir, config.extra_repeat)
    return splits


#: options of an extra dataset that must equal the main dataset's (the windows must look alike)
_SAME_OPTIONS = ("window_s", "band", "order", "seed_compat")


def extra_windows(extra_dir, dataset_dir, repeat=(1, 1)) -> SegmentSplit:
    """Every window of the ``segments-ptbxl`` dataset ``extra_dir``, Normal windows ``repeat[0]`` times and Abnormal
    ones ``repeat[1]`` times: training windows only, never validation or test. The copies are held in memory
    (3600 float32 = 14 kB each).

    Refused (``ValueError``) when its windowing or filter options differ from ``dataset_dir``'s (the trainer also
    refuses windows of another length, i.e. another rate): both must be what the model reads."""
    extra_dir, dataset_dir = Path(extra_dir), Path(dataset_dir)
    if not extra_dir.is_dir():
        raise FileNotFoundError(f"extra_train folder {extra_dir} not found (make it with "
                                f"`ecgcore preprocess segments-ptbxl PTBXL_DIR OUT_DIR`)")
    meta_path = extra_dir / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("recipe") != "segments-ptbxl":
        raise ValueError(f"{extra_dir}: not a segments-ptbxl dataset (its metadata.json names recipe "
                         f"{meta.get('recipe')!r}); extra windows come from `ecgcore preprocess segments-ptbxl`")
    main = read_dataset_info(dataset_dir)["options"]
    opts = meta.get("options", {})
    for k in _SAME_OPTIONS:
        if opts.get(k, main.get(k)) != main.get(k):
            raise ValueError(f"{extra_dir}: option {k}={opts.get(k)!r} differs from the training dataset's "
                             f"{main.get(k)!r}; build it with the same options")
    recs = sorted(meta.get("records", {})) or available_records(extra_dir)
    xs, ys, names = [], [], []
    for r in recs:
        with np.load(extra_dir / f"{r}.npz") as z:
            xs.append(z["segments"].astype(np.float32))
            ys.append(z["labels"].astype(np.int64))
        names.append(np.full(len(ys[-1]), r))
    if not xs:
        raise ValueError(f"{extra_dir}: no windows")
    x, y, rec = np.concatenate(xs), np.concatenate(ys), np.concatenate(names)
    n_rep = np.where(y == 1, int(repeat[1]), int(repeat[0]))
    idx = np.repeat(np.arange(len(y)), n_rep)
    return SegmentSplit(x=x[idx, None, :], y=y[idx], record=rec[idx], start=np.zeros(len(idx), np.int64))


def train_noise_bank(config, dataset_dir):
    """The NSTDB noise for ``config.aug_nstdb``: the first ``nstdb_train_fraction`` of each of bw, ma and em (lead
    0, 360 Hz), resampled to the dataset's rate if it differs and band-passed with the dataset's filter, as a
    :class:`~ecgcore.models.denoiser.data.NoiseBank` for :func:`~ecgcore.models.denoiser.data.mix_online`."""
    from ...datasets.reference import locate
    from ...dsp import bandpass
    from ..denoiser.data import NoiseBank, nstdb_portion

    opts = read_dataset_info(dataset_dir).get("options", {})
    if opts.get("seed_compat"):
        raise ValueError("aug_nstdb needs a dataset z-scored per window (preprocessed without seed_compat)")
    fs = config.input_length / float(opts.get("window_s", 10.0))
    low, high = opts.get("band", (0.5, 50.0))
    nd = Path(config.noise_dir) if config.noise_dir else locate("nstdb")
    raw = nstdb_portion(nd, ("bw", "ma", "em"), lead=0, fs=fs, fraction=config.nstdb_train_fraction)
    bank = {k: bandpass(x, fs=fs, low=float(low), high=float(high), order=int(opts.get("order", 5)))
            for k, x in raw.items()}
    return NoiseBank(bank, fs, "train")
