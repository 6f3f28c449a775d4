"""``ecgcore features KIND IN OUT``: time-frequency features of a record, an array file or a whole folder.

Inputs: WFDB records and ``.csv`` files (read with :func:`ecgcore.io.read_record`; features per lead, the signal
transposed to ``(leads, samples)``) and ``.npy`` arrays taken as they are (last axis = time: ``(n,)``,
``(beats, n)``, ``(12, n)`` for the HuBERT kinds). One output per input, ``.npy`` (default) or HDF5 (one dataset
named after the kind), written atomically; existing outputs are skipped unless ``--overwrite`` (resumable).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

KINDS = ("scalogram", "stft", "mfcc", "hubert-timefreq", "hubert-mfcc", "hubert-mixed")


def _parse_scales(text: str) -> np.ndarray:
    if ":" in text:
        lo, hi = (float(v) for v in text.split(":"))
        return np.arange(lo, hi + 1)
    return np.array([float(v) for v in text.split(",")])


def compute(kind: str, x: np.ndarray, fs: float | None, opts: dict) -> np.ndarray:
    """Features of ``x`` (last axis = time) for one CLI kind; every computation is a library call."""
    from ..dsp.cwt import morlet_scalogram
    from ..dsp.stft import stft
    from ..features import mfcc, shard_features

    if kind == "scalogram":
        return morlet_scalogram(x, opts["scales"], opts["wavelet"])
    if kind == "stft":
        return stft(x, n_fft=opts["n_fft"], hop=opts["hop"], output=opts["output"])
    if fs is None:
        raise click.UsageError(f"{kind} needs the sampling rate: pass --fs for .npy inputs")
    if kind == "mfcc":
        return mfcc(x, fs=fs, mode=opts["mode"], n_mfcc=13, deltas=True,
                    **({"n_fft": opts["n_fft"], "hop": opts["hop"] or opts["n_fft"] // 4, "n_mels": opts["n_mels"]}
                       if opts["mode"] == "librosa" else {}))
    return shard_features(x, kind.removeprefix("hubert-"), fs=opts["shard_fs"], input_fs=fs, deltas=opts["deltas"])


def _load(path: Path, fs: float | None):
    if path.suffix.lower() == ".npy":
        return np.load(path), fs
    from ..io import read_record

    rec = read_record(path, fs=fs, annotator=None)
    return np.ascontiguousarray(rec.signal.T), rec.fs


def _write(target: Path, kind: str, arr: np.ndarray) -> None:
    from .._fs import atomic_write

    with atomic_write(target) as tmp:
        if target.suffix == ".h5":
            import h5py

            with h5py.File(tmp, "w") as fh:
                fh.create_dataset(kind, data=arr, compression="gzip", compression_opts=4)
        else:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)


@click.command("features")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--fs", type=float, default=None, help="Sampling rate of .npy/.csv inputs (Hz).")
@click.option("--format", "fmt", type=click.Choice(["npy", "h5"]), default="npy", show_default=True)
@click.option("--scales", default="1:32", show_default=True, help="scalogram: 'lo:hi' (step 1) or a comma list.")
@click.option("--wavelet", default="morl", show_default=True, help="scalogram: 'morl' or 'cmorB-C'.")
@click.option("--n-fft", type=int, default=256, show_default=True, help="stft/mfcc (librosa): FFT length.")
@click.option("--hop", type=int, default=None, help="stft/mfcc (librosa): frame step (default per convention).")
@click.option("--output", type=click.Choice(["magnitude", "power", "db", "complex"]), default="magnitude",
              show_default=True, help="stft: what to store.")
@click.option("--mode", type=click.Choice(["librosa", "kaldi"]), default="librosa", show_default=True,
              help="mfcc flavour.")
@click.option("--n-mels", type=int, default=40, show_default=True, help="mfcc (librosa): mel bands.")
@click.option("--shard-fs", type=click.Choice(["500", "100", "50"]), default="100", show_default=True,
              help="hubert-*: shard sampling rate.")
@click.option("--deltas", type=click.Choice(["seed", "across_shards"]), default="seed", show_default=True,
              help="hubert-mfcc: the seed's (zero) single-frame deltas or deltas across shards.")
@click.option("--overwrite", is_flag=True, help="Recompute outputs that already exist.")
def features(kind, src, dst, fs, fmt, scales, wavelet, n_fft, hop, output, mode, n_mels, shard_fs, deltas,
             overwrite):
    """Compute KIND features for every record/array under SRC into DST.

    KIND is one of scalogram, stft, mfcc, hubert-timefreq, hubert-mfcc, hubert-mixed. SRC is a WFDB record,
    a .npy/.csv file or a folder (searched recursively); DST is a folder (or a .npy/.h5 file for a single input).
    """
    from tqdm import tqdm

    from ..io import record_paths

    opts = dict(scales=_parse_scales(scales), wavelet=wavelet, n_fft=n_fft, hop=hop, output=output, mode=mode,
                n_mels=n_mels, shard_fs=int(shard_fs), deltas=deltas)
    try:
        inputs = record_paths(src)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if not inputs:
        raise click.ClickException(f"{src}: no records, .npy or .csv files found")
    single_file = len(inputs) == 1 and dst.suffix in (".npy", ".h5")
    root = src if src.is_dir() else src.parent
    failures = []
    for path in tqdm(inputs, desc=f"features {kind}", unit="record", disable=len(inputs) < 2):
        if single_file:
            target = dst
        else:
            rel = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
            target = dst / rel.parent / f"{rel.stem if rel.suffix else rel.name}.{kind}.{fmt}"
        if target.exists() and not overwrite:
            continue
        try:
            x, rate = _load(path, fs)
            arr = compute(kind, x, rate, opts)
        except (ValueError, OSError) as exc:
            failures.append(f"{path}: {exc}")
            continue
        _write(target, kind, arr)
    for line in failures:
        click.echo(f"error: {line}", err=True)
    if failures:
        raise click.ClickException(f"{len(failures)} of {len(inputs)} inputs failed")
