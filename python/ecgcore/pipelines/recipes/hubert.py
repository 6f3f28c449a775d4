"""``hubert-features`` and ``hubert-labels`` (SPEC §5.1-5.3): HuBERT-ECG iteration-1 dumps and pseudo-labels.

``hubert-features``: every 12-lead (or fewer-lead) record under IN_DIR (WFDB, searched recursively, or
``.npy`` shaped (leads, samples) at ``input_fs``, default 500 Hz) -> the seed's offline preprocessing
(zero-phase band-pass 0.05-47 Hz, FFT resample to 500 Hz, per-lead min-max to [-1, 1] with eps 1e-8) ->
the first 5 s -> ``shard_features`` (93 shards; ``kind`` timefreq 16 / mfcc 39 / mixed 29 at
``shard_fs`` 500/100/50 Hz) -> ``<record>.npy`` (93, F) float32, plus ``index.csv``. The seed's band-pass is
biosppy's FIR (``filter_signal(ftype="FIR", order=int(0.3*fs))``: a Hamming-window ``firwin`` of
int(0.3*fs) taps, made odd, run forward-backward); ecgcore uses its order-4 Butterworth by default (documented
divergence, the models' cards use it too); ``--set filter=fir`` or ``--seed-compat`` gives the seed's FIR.
Leads missing from a fewer-lead input are zero-filled up to 12.

``hubert-labels``: IN_DIR holds such dumps; ``--set model=PATH`` names an ``ecgcore.cluster`` k-means model
(``.npz``). Each dump gets ``<record>.labels.npy`` (93,) int32, with the model's own row normalisation applied
(the seed predicted on un-normalised rows although it fitted on L2-normalised ones: fixed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._fs import atomic_write
from ...dsp import bandpass, filtfilt, resample
from ...features import shard_features
from ...io import read_record, record_paths
from .base import Recipe, RecordResult


def _rel_items(in_dir: Path, suffixes) -> list[str]:
    out = []
    for p in record_paths(in_dir):
        if p.suffix.lower() in suffixes or (p.suffix == "" and ".hea" in suffixes):
            out.append(str(p.relative_to(in_dir)))
    return sorted(out)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, arr)


def _write_index(out_dir: Path, results: dict) -> None:
    lines = ["record,file,rows"] + [f"{r},{next(iter(e['files']))},{e['n_items']}" for r, e in sorted(results.items())]
    with atomic_write(out_dir / "index.csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def seed_fir_taps(fs: float, low: float, high: float) -> np.ndarray:
    """biosppy's band-pass FIR as the HuBERT-ECG seed designs it: ``scipy.signal.firwin(numtaps, [low, high],
    pass_zero=False)`` (Hamming window, unit gain at the band centre) with numtaps = int(0.3 * fs), made odd."""
    n = int(0.3 * fs)
    n += 1 - n % 2
    if n < 3:
        raise ValueError(f"fs={fs} Hz gives a {n}-tap FIR; the seed's filter needs fs >= 10 Hz")
    c1, c2 = 2.0 * low / fs, 2.0 * high / fs
    if not 0.0 < c1 < c2 < 1.0:
        raise ValueError(f"band [{low}, {high}] Hz must lie inside (0, fs/2 = {fs / 2}) Hz")
    m = np.arange(n) - 0.5 * (n - 1)
    h = c2 * np.sinc(c2 * m) - c1 * np.sinc(c1 * m)
    h *= 0.54 + 0.46 * np.cos(np.linspace(-np.pi, np.pi, n))  # symmetric Hamming
    return h / np.sum(h * np.cos(np.pi * m * 0.5 * (c1 + c2)))


def seed_fir_bandpass(x: np.ndarray, *, fs: float, low: float, high: float, workers=None) -> np.ndarray:
    """``x`` (leads, samples) through the seed's FIR forward and backward (``scipy.signal.filtfilt`` defaults:
    odd padding of 3 x numtaps samples), on ecgcore's C++ filter."""
    b = seed_fir_taps(fs, low, high)
    if x.shape[-1] <= 3 * b.size:
        raise ValueError(f"{x.shape[-1]} samples: the seed's {b.size}-tap FIR needs more than {3 * b.size}")
    return filtfilt(b, [1.0], x, axis=-1, padtype="odd", padlen=3 * b.size, workers=workers)


def standardize(ecg: np.ndarray, fs: float, options: dict, *, name: str = "") -> np.ndarray:
    """The seed's offline preprocessing of one ECG, shared by ``run()`` and ``ecgcore infer``.

    ``ecg`` (leads, samples) at ``fs`` -> zero-phase band-pass (``band``; ``filter`` "butter" of ``order``, or
    "fir", the seed's, also under ``seed_compat``), FFT resample to 500 Hz,
    per-lead min-max to [-1, 1] (eps 1e-8), the first 5 s, zero-filled up to ``leads`` leads:
    (leads, 2500) float64.
    """
    threads = options.get("_threads", 0)
    n_leads = int(options["leads"])
    if ecg.shape[0] > n_leads:
        raise ValueError(f"{name}: {ecg.shape[0]} leads, more than the model's {n_leads}")
    low, high = options["band"]
    if not np.isfinite(ecg).all():
        raise ValueError(f"{name}: NaN samples; fill gaps before dumping features")
    kind = "fir" if options.get("seed_compat") else options.get("filter", "butter")
    if kind == "fir":  # the seed's band as it is wherever it is below Nyquist (47 Hz at 100 Hz: yes)
        x = seed_fir_bandpass(ecg, fs=fs, low=low, high=high if high < fs / 2 else 0.45 * fs, workers=threads)
    elif kind == "butter":
        x = bandpass(ecg, fs=fs, low=low, high=min(high, 0.45 * fs), order=int(options["order"]), workers=threads)
    else:
        raise ValueError(f"filter must be 'butter' or 'fir', got {kind!r}")
    if fs != 500.0:
        x = resample(x, int(round(x.shape[1] * 500.0 / fs)), workers=threads)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    x = 2.0 * (x - lo) / (hi - lo + 1e-8) - 1.0
    if x.shape[1] < 2500:
        raise ValueError(f"{name}: shorter than the 5 s the model takes ({x.shape[1]} samples at 500 Hz)")
    x = x[:, :2500]
    if x.shape[0] < n_leads:
        x = np.concatenate([x, np.zeros((n_leads - x.shape[0], x.shape[1]))])
    return x


class HubertFeatures(Recipe):
    name = "hubert-features"

    def default_options(self) -> dict:
        return {"kind": "mixed", "shard_fs": 100, "input_fs": 500.0, "band": [0.05, 47.0], "order": 4,
                "filter": "butter", "deltas": "seed", "leads": 12}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        return _rel_items(in_dir, {".hea", ".npy"})

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        threads = options.get("_threads", 0)
        path = in_dir / item
        if path.suffix.lower() == ".npy":
            ecg = np.load(path, allow_pickle=False).astype(np.float64)
            if ecg.ndim != 2 or ecg.shape[0] > ecg.shape[1]:
                raise ValueError(f"{path}: expected (leads, samples), got shape {ecg.shape}")
            fs = float(options["input_fs"])
        else:
            rec = read_record(path, annotator=None, workers=threads)
            ecg, fs = rec.signal.T.astype(np.float64), rec.fs
        x = standardize(ecg, fs, options, name=item)
        feats = shard_features(x, options["kind"], fs=int(options["shard_fs"]), input_fs=500.0,
                                      deltas=options["deltas"], workers=threads)
        rel = str(Path(item).with_suffix("")) + ".npy" if Path(item).suffix == ".npy" else item + ".npy"
        _save_npy(out_dir / rel, feats)
        return RecordResult(record=item, files=[rel], n_items=int(feats.shape[0]))

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        _write_index(out_dir, results)


class HubertLabels(Recipe):
    name = "hubert-labels"

    def default_options(self) -> dict:
        return {"model": None}

    def items(self, in_dir: Path, options: dict) -> list[str]:
        return [i for i in _rel_items(in_dir, {".npy"}) if not i.endswith(".labels.npy")]

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        from ...cluster import load_model

        if not options.get("model"):
            raise ValueError("hubert-labels needs a k-means model: --set model=PATH.npz")
        km = load_model(options["model"])
        feats = np.load(in_dir / item, allow_pickle=False)
        if feats.ndim != 2:
            raise ValueError(f"{item}: expected (93, F) features, got shape {feats.shape}")
        labels = km.predict(feats.astype(km.cluster_centers_.dtype)).astype(np.int32)
        rel = item[: -len(".npy")] + ".labels.npy"
        _save_npy(out_dir / rel, labels)
        return RecordResult(record=item, files=[rel], n_items=int(labels.size))

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        _write_index(out_dir, results)
