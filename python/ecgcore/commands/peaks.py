"""``ecgcore peaks``: detect R-peaks into WFDB annotation files and CSV, and score a detector EC57-style."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .._fs import atomic_write

__all__ = ["peaks"]


def _pick_lead(leads: list[str], lead: str | None) -> int:
    from ..datasets.mitdb import mlii_lead

    if lead is None:
        return mlii_lead(leads)
    if lead.isdigit():
        idx = int(lead)
        if idx >= len(leads):
            raise click.ClickException(f"lead {idx} does not exist (the record has {len(leads)} leads)")
        return idx
    if lead not in leads:
        raise click.ClickException(f"no lead named {lead!r}; leads are {leads}")
    return leads.index(lead)


def _write_csv(path: Path, r_peaks, fs: float) -> None:
    with atomic_write(path, mode=0o600) as tmp, open(tmp, "w") as fh:  # 0600 as before
        fh.write("sample,time_s\n")
        for s in r_peaks:
            fh.write(f"{int(s)},{int(s) / fs:.6f}\n")


@click.group()
def peaks():
    """R-peak (QRS) detection: detect into annotation files, evaluate against reference annotations."""


@peaks.command()
@click.argument("src", metavar="IN", type=click.Path(exists=False, path_type=Path))
@click.argument("dst", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--lead", default=None, help="Lead name or index (default MLII when present, else the first).")
@click.option("--fs", type=float, default=None, help="Sampling rate for .npy/.csv inputs (Hz).")
@click.option("--extension", default="qrs", show_default=True, help="WFDB annotation file extension.")
@click.option("--workers", type=int, default=None, help="Threads (default all cores).")
def detect(src, dst, lead, fs, extension, workers):
    """Detect R-peaks in record(s) IN; write OUT/<record>.<extension> (WFDB, readable by wfdb.rdann) and
    OUT/<record>.csv (sample, time_s). IN is a record, a .npy/.csv file or a folder of them."""
    from ..dsp.peaks import detect_r_peaks
    from ..io import read_record, record_paths, write_annotations

    try:
        paths = record_paths(src)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if not paths:
        raise click.ClickException(f"{src}: no records found")
    dst.mkdir(parents=True, exist_ok=True)
    failed = 0
    for p in paths:
        try:
            rec = read_record(p, fs=fs, annotator=None) if p.suffix.lower() in (".npy", ".csv") \
                else read_record(p, annotator=None)
            li = _pick_lead(rec.leads, lead)
            r = detect_r_peaks(rec.signal[:, li], fs=rec.fs, workers=workers)
            name = rec.name or p.stem
            write_annotations(name, extension, r, ["N"] * len(r), fs=rec.fs, out_dir=dst)
            _write_csv(dst / f"{name}.csv", r, rec.fs)
            click.echo(f"{name}: {len(r)} beats ({60.0 * len(r) / max(rec.duration, 1e-9):.1f}/min) on lead "
                       f"{rec.leads[li]}")
        except (OSError, ValueError) as exc:
            failed += 1
            click.echo(f"error: {p}: {exc}", err=True)
    if failed:
        click.echo(f"{failed} of {len(paths)} records failed", err=True)
        sys.exit(1)


@peaks.command()
@click.argument("db_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--lead", default=None, help="Lead name or index (default MLII when present, else the first).")
@click.option("--records", default=None, help="Comma-separated record names (default: RECORDS or every .hea).")
@click.option("--window", type=float, default=0.150, show_default=True, help="Match window in seconds.")
@click.option("--workers", type=int, default=None, help="Threads (default all cores).")
@click.option("--noise-stress", is_flag=True,
              help="EC57 noise-stress test instead: build each record with NSTDB noise as `nst` does (see `ecgcore "
                   "noise-stress`), run ecgcore, wfdb's XQRS and neurokit2 on it, score from 5:00 (default records "
                   "118,119).")
@click.option("--nstdb", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="NSTDB folder (default: beside DB_DIR, or $ECGCORE_DATA/nstdb).")
@click.option("--noise", "noises", multiple=True, default=("em", "ma", "bw"), show_default=True)
@click.option("--snr", "snrs", multiple=True, type=float, default=(24, 18, 12, 6, 0, -6), show_default=True)
@click.option("--detectors", default="ecgcore,xqrs,neurokit2", show_default=True,
              help="Comma-separated detectors for --noise-stress.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--noise-stress: also write every row as JSON here.")
def evaluate(db_dir, lead, records, window, workers, noise_stress, nstdb, noises, snrs, detectors, json_out):
    """Score the detector on an annotated database (EC57 / bxb beat-by-beat): per-record table and gross
    Se, +P and F1, once without the first 5 minutes (EC57 learning period) and once over whole records.

    With --noise-stress: the EC57 noise-stress table of ecgcore and its peers (F1, Se, +P per record, noise type
    and SNR, and on the clean record) in one run.
    """
    import time

    if noise_stress:
        import json

        from .._fs import write_text
        from ..datasets.peaks_stress import format_stress_table, noise_stress_table

        nst = nstdb or (db_dir.parent / "nstdb" if (db_dir.parent / "nstdb" / "em.hea").is_file() else None)
        if nst is None:
            from ..datasets.reference import locate

            try:
                nst = locate("nstdb")
            except FileNotFoundError as exc:
                raise click.ClickException(f"NSTDB not found ({exc}); pass --nstdb") from None
        names = [r.strip() for r in records.split(",")] if records else ["118", "119"]
        li = 0 if lead is None else int(lead)
        try:
            res = noise_stress_table(db_dir, nst, records=names, noises=noises, snrs=snrs,
                                     detectors=[d.strip() for d in detectors.split(",") if d.strip()], lead=li)
        except (OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(format_stress_table(res))
        if json_out:
            write_text(json_out, json.dumps(res, indent=1))
        return

    from ..datasets.ec57 import evaluate_qrs, format_table
    from ..dsp.peaks import detect_r_peaks
    from ..io import read_record

    if records:
        names = [r.strip() for r in records.split(",") if r.strip()]
    elif (db_dir / "RECORDS").is_file():
        names = (db_dir / "RECORDS").read_text().split()
    else:
        names = sorted(p.stem for p in db_dir.glob("*.hea"))
    if not names:
        raise click.ClickException(f"{db_dir}: no records")
    recs = []
    for name in names:
        try:
            rec = read_record(db_dir / name)
        except (OSError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        if rec.annotations is None:
            raise click.ClickException(f"{db_dir / name}: no reference annotations (.atr)")
        recs.append(rec)
    t0 = time.perf_counter()
    # Records of equal length and rate go to the C++ core as one [batch, n] array (parallel over records).
    import numpy as np

    detections: list = [None] * len(recs)
    groups: dict[tuple[float, int], list[int]] = {}
    for i, rec in enumerate(recs):
        groups.setdefault((rec.fs, rec.n_samples), []).append(i)
    for (fs, _), idx in groups.items():
        batch = np.stack([recs[i].signal[:, _pick_lead(recs[i].leads, lead)] for i in idx])
        for i, r in zip(idx, detect_r_peaks(batch, fs=fs, workers=workers)):
            detections[i] = r
    elapsed = time.perf_counter() - t0
    for start, title in ((300.0, "EC57: scoring from 5:00 (first 5 minutes excluded)"),
                         (0.0, "whole records (first 5 minutes included)")):
        stats = [evaluate_qrs(rec.annotations.sample, rec.annotations.symbol, r, fs=rec.fs, record=rec.name,
                              start_s=start, window_s=window) for rec, r in zip(recs, detections)]
        click.echo(format_table(stats, title=title))
        click.echo("")
    total_s = sum(rec.duration for rec in recs)
    click.echo(f"detection: {elapsed:.2f} s for {len(recs)} records ({total_s / 3600:.1f} h of ECG)")
