"""``ecgcore info``, ``filter``, ``demo`` and ``preprocess``: the data verbs (records in, records or datasets out)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ._options import parse_set


def _set_options(values) -> dict:
    try:
        return parse_set(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None


def _fmt_counts(counts: dict[str, int], limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    text = " ".join(f"{k}:{v}" for k, v in items[:limit])
    return text + (" ..." if len(items) > limit else "")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False))
@click.option("--fs", type=float, default=None, help="Sampling rate for .npy/.csv inputs (Hz).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per record instead of a table.")
@click.option("--aami", is_flag=True,
              help="For a MIT-BIH folder: AAMI class counts (N/S/V/F/Q) of the DS1/DS2 inter-patient split.")
def info(paths, fs, as_json, aami):
    """Describe records: sampling rate, leads, duration and annotation counts by symbol.

    PATHS are WFDB records (with or without extension), folders (searched recursively), .npy or .csv files.
    """
    import json

    if aami:
        from ..datasets.mitdb import aami_table, format_aami_table

        for p in paths:
            try:
                click.echo(format_aami_table(aami_table(Path(p))))
            except (OSError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
        return

    from ..io import read_record, record_paths

    records = []
    for p in paths:
        try:
            records.extend(record_paths(p))
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
    failures = 0
    if not as_json:
        click.echo(f"{'record':<24} {'fs':>7} {'leads':<22} {'duration':>10} {'annotations'}")
    for rp in records:
        try:
            rec = read_record(rp, fs=fs) if rp.suffix.lower() in (".npy", ".csv") else read_record(rp)
        except (OSError, ValueError) as exc:
            failures += 1
            click.echo(f"error: {exc}", err=True)
            continue
        counts = rec.annotations.counts() if rec.annotations is not None else {}
        if as_json:
            click.echo(json.dumps({"record": str(rp), "fs": rec.fs, "leads": rec.leads, "units": rec.units,
                                   "n_samples": rec.n_samples, "duration_s": rec.duration,
                                   "annotations": counts}))
        else:
            minutes, seconds = divmod(rec.duration, 60)
            click.echo(f"{rec.name:<24} {rec.fs:>7g} {','.join(rec.leads)[:22]:<22} "
                       f"{int(minutes):>4d}:{seconds:05.2f} {_fmt_counts(counts) if counts else '-'}")
    if failures:
        click.echo(f"{failures} of {len(records)} records could not be read", err=True)
        sys.exit(1)


@click.command("filter")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--band", nargs=2, type=float, default=(0.5, 50.0), show_default=True,
              help="Pass band edges in Hz.")
@click.option("--order", type=int, default=4, show_default=True, help="Butterworth order (zero-phase doubles it).")
@click.option("--notch", type=float, default=None, help="Also remove mains hum at this frequency (Hz, Q 30).")
@click.option("--fs", type=float, default=None, help="Sampling rate for .npy/.csv inputs (Hz).")
@click.option("--overwrite", is_flag=True, help="Redo records whose output already exists.")
def filter_cmd(src, dst, band, order, notch, fs, overwrite):
    """Zero-phase band-pass filter one record or a whole folder of records.

    Each record is written to DST as a float32 .npy [n_samples, n_leads] plus a .json sidecar (fs, leads,
    filter). Finished outputs are skipped on a re-run (resumable); a record that fails is reported and
    skipped, and the exit code is 1 if any failed.
    """
    from ..pipelines.filtering import filter_archive

    summary = filter_archive(src, dst, band=band, order=order, notch=notch, fs=fs, overwrite=overwrite,
                             progress=True)
    click.echo(f"filtered {summary.done}, skipped (already done) {summary.skipped}, failed {len(summary.failed)}")
    for name, err in summary.failed:
        click.echo(f"  failed: {name}: {err}", err=True)
    if summary.failed:
        sys.exit(1)


@click.command()
@click.option("--band", nargs=2, type=float, default=(0.5, 50.0), show_default=True, help="Pass band in Hz.")
@click.option("--order", type=int, default=4, show_default=True, help="Butterworth order.")
def demo(band, order):
    """Filter and summarise the bundled MIT-BIH excerpts (records 100, 119, 208; first 5 minutes)."""
    from ..demo import run_demo

    click.echo(run_demo(band=band, order=order))


@click.command()
@click.argument("recipe")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=int, default=None, help="Local worker processes (default: all cores).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a Dask distributed scheduler (tcp://HOST:PORT) instead of local processes; "
                   "OUT_DIR must be on storage the workers share.")
@click.option("--limit", type=int, default=None, help="Only the first N records (in archive order).")
@click.option("--records", default=None, help="Comma-separated record/subject names to process.")
@click.option("--snr", "snr", type=float, multiple=True, help="denoise-pairs: SNRs in dB (repeatable).")
@click.option("--noise", "noise", multiple=True, help="denoise-pairs: NSTDB noise records (bw, ma, em).")
@click.option("--noise-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="denoise-pairs: NSTDB folder (default: IN_DIR/../nstdb).")
@click.option("--fs", type=float, default=None, help="Output sampling rate of the recipe (Hz).")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE",
              help="Any other recipe option (value parsed as JSON when possible), e.g. --set stride=250.")
@click.option("--seed-compat", is_flag=True,
              help="Reproduce the seed project's behaviour where SPEC marks a [BUG]/[DIVERGENCE] "
                   "(segments: per-column standardisation).")
@click.option("--digest", type=click.Choice(["crc32c", "sha256"]), default="crc32c", show_default=True,
              help="Checksum of each output file in the manifest (CRC-32C + length detects corruption and is "
                   "~5x cheaper; sha256 for a cryptographic digest). Either kind verifies on resume.")
@click.option("--strict", is_flag=True, help="Exit with status 1 if any record failed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def preprocess(recipe, in_dir, out_dir, workers, scheduler, limit, records, snr, noise, noise_dir, fs, extra,
               seed_compat, digest, strict, quiet):
    """Build a model's dataset from a raw archive: ecgcore preprocess RECIPE IN_DIR OUT_DIR.

    \b
    Recipes:
      beats-scalograms  187-sample beats + |Morlet| scalograms (32x187), HDF5 per record + metadata.json
      denoise-pairs  clean/noisy 10 s pairs at 130 Hz (MIT-BIH + NSTDB) for the denoiser
      denoise-ptbxl  clean 10 s windows at 130 Hz of PTB-XL folds 1-8, every lead: extra denoiser training
                     windows (ecgcore train denoiser --set extra_clean=DIR)
      heartid        per-subject 1000-sample windows, enrolment/probe split by time
      tfrecords      3-beat scalogram sequences, 256 per tf.train.Example (no TensorFlow needed)
      hubert-features  93-shard time-freq/MFCC/mixed dumps of 12-lead ECGs (--set kind=mfcc)
      hubert-labels  k-means pseudo-labels of such dumps (--set model=KMEANS.npz)
      segments       10 s / 50 % overlap windows with majority Normal/Abnormal labels (MIT-BIH)
      segments-ptbxl  one 10 s window per PTB-XL ECG at 360 Hz, lead II: bundle-branch block = Abnormal,
                     NORM = Normal (extra training windows: ecgcore train attention --set extra_train=DIR)

    Resumable: finished records are listed with checksums in OUT_DIR/manifest.jsonl and skipped on a re-run.
    Failed records are reported and written to OUT_DIR/errors.json; the others complete.
    """
    from ..pipelines.engine import preprocess as run_preprocess

    options = _set_options(extra)
    if snr:
        options["snr_db"] = list(snr)
    if noise:
        options["noise"] = list(noise)
    if noise_dir:
        options["noise_dir"] = str(noise_dir)
    if fs is not None:
        options["fs"] = fs
    if seed_compat:
        options["seed_compat"] = True
    try:
        summary = run_preprocess(recipe, in_dir, out_dir, options=options, workers=workers, scheduler=scheduler,
                                 limit=limit, records=records.split(",") if records else None, progress=not quiet,
                                 digest=digest)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.table())
    for rec, err in summary.failed:
        click.echo(f"  failed: {rec}: {err}", err=True)
    if summary.failed and strict:
        sys.exit(1)
