"""``denoise-pairs`` (SPEC §2): clean/noisy 10 s pairs at 130 Hz for the Heartify Attention U-Net.

Clean: one MIT-BIH lead (default MLII, channel 0), zero-phase Butterworth band-pass 0.5-45 Hz (order 4)
to strip the recording's own baseline wander and hum, resampled 360 -> 130 Hz (polyphase), cut into
non-overlapping 1300-sample windows. Noisy: the clean window plus an NSTDB noise window (same lead
index, resampled to 130 Hz, unfiltered) scaled to each requested SNR. Noise never leaks between splits:
train records (DS1) draw noise from the first 70 % of each noise record, test records (DS2) from the rest.
Paced records (102, 104, 107, 217) are excluded, as in the de Chazal protocol.

One ``<record>.npz`` per record: ``clean [n, 1300]``, ``noisy [n, n_noise, n_snr, 1300]`` (float32),
``noise``, ``snr_db``, ``start`` (sample index at 130 Hz), ``fs``, ``split``; plus ``splits.json`` and
``metadata.json``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...datasets.mitdb import DS1, DS2
from ...datasets.noise import NOISE_TYPES, noise_scale
from ...datasets.reference import locate
from ...dsp import bandpass, resample_poly
from ...dsp.filter import resample_ratio
from ...io import Record, read_record
from .base import Recipe, RecordResult, save_npz, wfdb_records, write_json
from .denoise_chunks import CHUNK_SIZE, FS


def _rng(seed: int, *parts: str) -> np.random.Generator:
    digest = hashlib.sha256("/".join([str(seed), *parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def to_model_rate(x: np.ndarray, fs: float, fs_out: float, *, workers: int | None = 0) -> np.ndarray:
    """(n,) signal at ``fs`` -> the denoiser's rate ``fs_out`` (polyphase, the ratio reduced: 360 -> 130 is 13/36).

    The one resampler of both the training pairs (clean and noise) and ``ecgcore infer``'s denoiser input.
    """
    up, down = resample_ratio(fs, fs_out)
    return resample_poly(x, up, down, workers=workers)


def clean_windows(rec: Record, options: dict) -> np.ndarray:
    """The per-record transform of this recipe: the clean (n_windows, length) targets of one record.

    The lead ``options["lead"]`` band-passed (``band``, order 4, zero-phase), resampled to ``fs`` and cut into
    non-overlapping ``length``-sample windows (a short tail is dropped). The noisy inputs are these windows
    plus NSTDB noise resampled with :func:`to_model_rate` (see ``run``).
    """
    threads = options.get("_threads", 0)
    fs_out, length = float(options["fs"]), int(options["length"])
    lead = rec.signal[:, int(options["lead"])]
    low, high = options["band"]
    clean = to_model_rate(bandpass(lead, fs=rec.fs, low=low, high=high, workers=threads), rec.fs, fs_out,
                          workers=threads)
    n_seg = clean.size // length
    if n_seg == 0:
        raise ValueError(f"{rec.name}: shorter than one {length}-sample window at {fs_out} Hz")
    return clean[: n_seg * length].reshape(n_seg, length)


class DenoisePairs(Recipe):
    name = "denoise-pairs"

    def default_options(self) -> dict:
        return {"fs": FS, "length": CHUNK_SIZE, "snr_db": [-6.0, 0.0, 6.0, 12.0], "noise": list(NOISE_TYPES),
                "noise_dir": None, "lead": 0, "band": [0.5, 45.0], "train_noise_fraction": 0.7, "seed": 0}

    def _noise_dir(self, in_dir: Path, options: dict) -> Path:
        """``noise_dir``, else NSTDB beside the records (the databases side by side), else ``$ECGCORE_DATA/nstdb``."""
        if options.get("noise_dir"):
            d = Path(options["noise_dir"])
            if not d.is_dir():
                raise FileNotFoundError(f"NSTDB noise folder {d} not found (pass --noise-dir)")
            return d
        beside = in_dir.parent / "nstdb"
        if beside.is_dir():
            return beside
        try:
            return locate("nstdb")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"NSTDB noise folder not found beside the records ({beside}) and {exc} "
                                    "(pass --noise-dir)") from None

    def items(self, in_dir: Path, options: dict) -> list[str]:
        known = set(DS1) | set(DS2)
        return [r for r in wfdb_records(in_dir) if r in known]

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        threads = options.get("_threads", 0)
        fs_out, length = float(options["fs"]), int(options["length"])
        rec = read_record(in_dir / item, annotator=None, workers=threads)
        clean_w = clean_windows(rec, options)
        n_seg = clean_w.shape[0]
        split = "train" if item in DS1 else "test"
        frac = float(options["train_noise_fraction"])
        noise_dir = self._noise_dir(in_dir, options)
        snrs = np.asarray(options["snr_db"], dtype=np.float64)
        noisy = np.empty((n_seg, len(options["noise"]), snrs.size, length), dtype=np.float32)
        for k, kind in enumerate(options["noise"]):
            nrec = read_record(noise_dir / kind, annotator=None, workers=threads)
            noise = to_model_rate(nrec.signal[:, int(options["lead"])], nrec.fs, fs_out, workers=threads)
            cut = int(noise.size * frac)
            lo, hi = (0, cut) if split == "train" else (cut, noise.size)
            if hi - lo < length:
                raise ValueError(f"noise record {kind}: its {split} part is shorter than one window")
            starts = _rng(int(options["seed"]), item, kind).integers(lo, hi - length + 1, size=n_seg)
            nw = noise[starts[:, None] + np.arange(length)]
            nw = nw - nw.mean(axis=1, keepdims=True)
            for j, snr in enumerate(snrs):
                a = noise_scale(clean_w, nw, snr)
                noisy[:, k, j] = clean_w + a[:, None] * nw
        rel = f"{item}.npz"
        save_npz(out_dir / rel, clean=clean_w.astype(np.float32), noisy=noisy,
                 noise=np.array(options["noise"]), snr_db=snrs, start=np.arange(n_seg, dtype=np.int64) * length,
                 fs=np.float64(fs_out), split=np.array(split), record=np.array(item))
        return RecordResult(record=item, files=[rel], n_items=int(n_seg * noisy.shape[1] * snrs.size),
                            info={"split": split, "segments": int(n_seg)})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        splits = {"train": sorted(r for r, e in results.items() if e["info"]["split"] == "train"),
                  "test": sorted(r for r, e in results.items() if e["info"]["split"] == "test")}
        write_json(out_dir / "splits.json", splits)
        write_json(out_dir / "metadata.json", {
            "recipe": self.name, "options": {k: v for k, v in options.items() if not k.startswith("_")},
            "records": {r: e["info"] for r, e in sorted(results.items())},
            "pairs": int(sum(e["n_items"] for e in results.values())),
        })


#: The twelve standard leads, as PTB-XL's headers name them (matched without regard to case).
PTBXL_LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


class DenoisePTBXL(Recipe):
    """``denoise-ptbxl``: extra clean training windows for the denoiser from PTB-XL (issue 22).

    The denoise-pairs dataset's clean windows come from the 22 DS1 patients: a network trained on them learns those
    patients' beats. Each PTB-XL ECG (10 s, 500 or 100 Hz) gives one window per asked lead, made exactly as the
    pairs' clean targets (:func:`clean_windows`: band-pass 0.5-45 Hz order 4 zero-phase at the record's rate,
    resampled to 130 Hz, the first 1300 samples). Only ECGs of PTB-XL's folds ``folds`` (default 1-8: the dataset's
    authors keep folds 9 and 10, patient-disjoint, for validation and test) are made, so people of folds 9-10 stay
    unseen. No noise is stored: ``ecgcore train denoiser --set extra_clean=DIR`` mixes NSTDB training noise into
    these windows online, as into the DS1 windows.

    One ``<ecg_id:05d>.npz`` per ECG: ``clean [n_leads, 1300]`` float32, ``lead`` (the record's names),
    ``patient``, ``ecg_id``, ``strat_fold``, ``fs``; plus ``splits.json`` (``{"extra": [...]}``) and ``metadata.json``.
    """

    name = "denoise-ptbxl"

    def default_options(self) -> dict:
        return {"fs": FS, "length": CHUNK_SIZE, "band": [0.5, 45.0], "leads": list(PTBXL_LEADS),
                "folds": list(range(1, 9))}

    @staticmethod
    def _check(options: dict) -> tuple[list[str], set[int]]:
        from ...datasets.ptbxl import lead_names

        leads = lead_names(options["leads"])
        folds = options["folds"]
        folds = {int(f) for f in ([folds] if isinstance(folds, (int, float)) else folds)}
        if not folds or not folds <= set(range(1, 11)):
            raise ValueError(f"folds must be PTB-XL folds among 1-10, got {options['folds']!r}")
        return leads, folds

    def items(self, in_dir: Path, options: dict) -> list[str]:
        from ...datasets.ptbxl import ptbxl_rows

        _, folds = self._check(options)
        rows = ptbxl_rows(in_dir)
        if rows is None:
            raise FileNotFoundError(f"{in_dir}: no ptbxl_database.csv (expected a PTB-XL folder)")
        return [f"{r['ecg_id']:05d}" for r in rows if r["strat_fold"] in folds]

    def cost(self, item: str, in_dir: Path, options: dict) -> float:
        return 1.0

    def run(self, item: str, in_dir: Path, out_dir: Path, options: dict) -> RecordResult:
        from ...datasets.ptbxl import lead_indices, ptbxl_index

        leads, _ = self._check(options)
        row = ptbxl_index(in_dir)[int(item)]
        rec = read_record(in_dir / row["path"], annotator=None, workers=options.get("_threads", 0))
        pick = lead_indices(rec.leads, leads, item)
        windows = [clean_windows(rec, {**options, "lead": i})[0] for i in pick]
        rel = f"{item}.npz"
        save_npz(out_dir / rel, clean=np.stack(windows).astype(np.float32), lead=np.array([rec.leads[i] for i in pick]),
                 patient=np.array(row["patient"]), ecg_id=np.int64(row["ecg_id"]),
                 strat_fold=np.int64(row["strat_fold"]), fs=np.float64(options["fs"]))
        return RecordResult(record=item, files=[rel], n_items=len(windows),
                            info={"windows": len(windows), "patient": row["patient"], "strat_fold": row["strat_fold"]})

    def finish(self, out_dir: Path, results: dict[str, dict], options: dict) -> None:
        write_json(out_dir / "splits.json", {"extra": sorted(results)})
        write_json(out_dir / "metadata.json", {
            "recipe": self.name, "options": {k: v for k, v in options.items() if not k.startswith("_")},
            "records": {r: e["info"] for r, e in sorted(results.items())},
            "windows": int(sum(e["info"]["windows"] for e in results.values())),
            "patients": len({e["info"]["patient"] for e in results.values()}),
        })
