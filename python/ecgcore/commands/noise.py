"""``ecgcore noise-stress``: EC57 noise-stress records, as PhysioNet's ``nst`` makes them."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

_NOISE_LETTER = {"em": "e", "ma": "m", "bw": "b"}


def _default_nstdb() -> Path | None:
    root = os.environ.get("ECGCORE_DATA")
    for base in ([Path(root)] if root else []) + [Path("../shared/data"), Path("data")]:
        if (base / "nstdb" / "em.hea").is_file():
            return base / "nstdb"
    return None


def write_wfdb(rec, out_dir: Path, name: str) -> list[Path]:
    """``rec`` as a WFDB record ``out_dir/name`` (format 16, the record's ADC gains) with its annotations as
    ``name.atr``; files are moved into place with the header last (a record is complete once its .hea exists)."""
    import tempfile

    import numpy as np
    import wfdb

    from ..io import write_annotations

    out_dir.mkdir(parents=True, exist_ok=True)
    gains = [float(g) for g in (rec.adc_gain if rec.adc_gain is not None else [200.0] * rec.n_leads)]
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}.") as tmpd:
        wfdb.wrsamp(name, fs=float(rec.fs), units=list(rec.units), sig_name=list(rec.leads),
                    p_signal=np.asarray(rec.signal, np.float64), fmt=["16"] * rec.n_leads, adc_gain=gains,
                    baseline=[0] * rec.n_leads, comments=list(rec.comments), write_dir=tmpd)
        files = []
        if rec.annotations is not None and len(rec.annotations):
            a = rec.annotations
            aux = list(a.aux_note) if len(a.aux_note) == len(a.sample) else None
            write_annotations(name, "atr", a.sample, a.symbol, fs=float(rec.fs), out_dir=tmpd, aux_note=aux)
            os.replace(Path(tmpd) / f"{name}.atr", out_dir / f"{name}.atr")
            files.append(out_dir / f"{name}.atr")
        for ext in ("dat", "hea"):
            os.replace(Path(tmpd) / f"{name}.{ext}", out_dir / f"{name}.{ext}")
            files.append(out_dir / f"{name}.{ext}")
    return files


@click.command("noise-stress")
@click.argument("records", nargs=-1, required=True, type=click.Path(exists=False, path_type=Path))
@click.option("--noise", "noises", multiple=True, default=("em",), show_default=True,
              help="NSTDB noise: em (electrode motion), ma (muscle), bw (baseline wander), or a WFDB noise record "
                   "path; repeat for several.")
@click.option("--snr", "snrs", multiple=True, type=float, default=(24, 18, 12, 6, 0, -6), show_default=True,
              help="EC57 signal-to-noise ratios in dB; repeat for several (default: the NSTDB's six).")
@click.option("--nstdb", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the NSTDB noise records em, ma, bw [default: $ECGCORE_DATA/nstdb or ../shared/data/nstdb].")
@click.option("--noise-start", type=float, default=0.0, show_default=True,
              help="Start this many seconds into the noise record (wrapping at its end): keep noise a model trained "
                   "on out of its test records.")
@click.option("--onset", type=float, default=300.0, show_default=True, help="Seconds of clean signal first.")
@click.option("--period", type=float, default=120.0, show_default=True,
              help="Seconds of each noisy / clean stretch after the onset.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: one WFDB record per record, noise and SNR (118e12, 118e_6, 119m24, ...), each with "
                   "the reference annotations (.atr), and noise_stress.json describing them.")
def noise_stress_cmd(records, noises, snrs, nstdb, noise_start, onset, period, out_dir):
    """Build ANSI/AAMI EC57 noise-stress records exactly as PhysioNet's `nst -s SNR` does.

    The noise gain of each lead comes from the clean record's normal-QRS peak-to-peak amplitude (sigamp -a atr:
    ±50 ms around the first 300 normal beats, trimmed mean) and the noise's RMS (sigamp -r: first 300 one-second
    windows, trimmed mean): gain = 10^(-SNR/20) · √2/4 · QRS / RMS. Noise is added from minute 5 on, alternately
    2 minutes on and 2 minutes off, with nst's offset correction so the signal never jumps. RECORDS are annotated
    WFDB records (MIT-BIH).

    \b
    ecgcore noise-stress ../shared/data/mitdb/118 ../shared/data/mitdb/119 -o nst/
    ecgcore noise-stress ../shared/data/mitdb/100 --noise ma --noise bw --snr 12 --snr 0 -o nst/
    """
    from .._fs import write_text
    from ..datasets.noise import noise_stress
    from ..io import read_record

    nstdb = nstdb or _default_nstdb()
    noise_recs = {}
    for nz in noises:
        path = Path(nz)
        if nz in _NOISE_LETTER:
            if nstdb is None:
                raise click.UsageError("NSTDB not found: give its folder with --nstdb")
            path = Path(nstdb) / nz
        try:
            noise_recs[nz] = read_record(path)
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(f"noise {nz}: {exc}") from None
    made, failed = [], []
    with click.progressbar(length=len(records) * len(noise_recs) * len(snrs), label="noise-stress records") as bar:
        for r in records:
            try:
                rec = read_record(r)
            except (FileNotFoundError, ValueError) as exc:
                failed.append({"record": str(r), "error": str(exc)})
                bar.update(len(noise_recs) * len(snrs))
                continue
            for nz, nrec in noise_recs.items():
                letter = _NOISE_LETTER.get(nz, Path(nz).name[:1] or "n")
                for snr in snrs:
                    name = f"{rec.name}{letter}{'_' if snr < 0 else ''}{abs(snr):g}"
                    try:
                        noisy, info = noise_stress(rec, nrec, snr, onset_s=onset, period_s=period,
                                                   noise_start_s=noise_start, name=name, return_info=True)
                        write_wfdb(noisy, out_dir, name)
                        made.append({"name": name, **info, "noise": str(nz)})
                    except ValueError as exc:
                        failed.append({"record": str(r), "noise": str(nz), "snr_db": snr, "error": str(exc)})
                    bar.update(1)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "noise_stress.json", json.dumps({"records": made, "failed": failed}, indent=1))
    click.echo(f"{len(made)} records written to {out_dir}" + (f"; {len(failed)} failed (see noise_stress.json)"
                                                              if failed else ""))
    for f in failed:
        click.echo(f"  FAILED {f['record']}: {f['error']}", err=True)
    if failed and not made:
        raise click.ClickException("every record failed")
