"""``ecgcore infer`` and ``ecgcore models``: batch scoring with ONNX Runtime, and the bundled models' cards."""
from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["infer", "models"]


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path),
              help="Output table (.csv/.jsonl/.parquet) of per-beat/segment predictions; for the denoiser a "
                   "folder of denoised records.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet", "npy", "wfdb"]), default=None,
              help="Output format [default: from OUT's suffix, else csv; denoiser: npy].")
@click.option("--fs", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Sampling rate (Hz) of .npy/.csv inputs: required for them (arrays carry no rate); WFDB "
                   "records carry their own.")
@click.option("--providers", default=None,
              help="onnxruntime execution providers, comma-separated in priority order, e.g. "
                   "'CUDAExecutionProvider,CPUExecutionProvider' or 'cuda,cpu' [default: CPU].")
@click.option("--threads", type=int, default=None, help="onnxruntime intra-op and C++ threads [default: all cores].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Items (beats, segments) per onnxruntime call [default: as many as fit --max-memory, from the "
                   "model card's measured memory per item].")
@click.option("--max-memory", type=click.FloatRange(min=16.0), default=512.0, show_default=True,
              help="Memory budget (MB) of one onnxruntime batch; sets the default --batch-size.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="HeartID-style embedders: the cancelable key as a .npy vector [default: a fixed public key].")
@click.option("--no-quality-check", "no_quality", is_flag=True,
              help="Classify every beat/segment, also in stretches the signal-quality check calls unusable "
                   "(noise, flat line, clipping, no QRS); by default those get an empty class and their reason in "
                   "the quality column.")
@click.option("--peaks", type=click.Choice(["auto", "annotations", "detect"]), default=None,
              help="Beat models: where the beats come from. auto (default): a record's reference annotations when "
                   "it has them, else ecgcore's R-peak detector; detect: the detector always, each beat's reference "
                   "column the class of the annotated beat it matches within 150 ms (EC57), empty for none.")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: the model's statically quantised graph (faster on CPU; its card states the accuracy "
                   "change on the test set). Only models that ship one (beats-aami).")
@click.option("--overwrite", is_flag=True, help="Start over when OUT holds results of another model or options.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def infer(model, inputs, out, fmt, fs, providers, threads, batch_size, max_memory, key_file, no_quality, peaks,
          precision, overwrite, no_progress):
    """Score whole archives with MODEL: per-beat / per-segment predictions and a per-record summary.

    MODEL is a bundled name (see `ecgcore models`: beats-aami, segments-abnormal, denoiser, ...) or a folder
    holding model.onnx + model.json (or the .onnx path). INPUTS are WFDB records, folders of them (searched
    recursively), .npy ([n] or [n, leads]) or .csv (a column per lead) files; those need --fs.

    The model card's preprocessing (rate, band-pass, beats/segments/scalograms, normalisation) runs through
    the C++ core exactly as in training; no torch/tensorflow/mlx is needed. Rows carry record, sample, time,
    class and one probability per class (and the reference class where the record has annotations).
    Beside OUT: <stem>.summary.json/.csv (counts per class, burden %), <stem>.errors.json and
    OUT.manifest.jsonl:
    a re-run skips records already complete, so an interrupted run resumes. Bad files are reported and skipped.

    \b
    ecgcore infer beats-aami ../shared/data/mitdb -o out.csv
    ecgcore infer beats-aami ../shared/data/mitdb --peaks detect -o det.csv
    ecgcore infer segments-abnormal rec.npy --fs 250 -o seg.jsonl
    ecgcore infer denoiser noisy/ -o clean/ --format wfdb
    ecgcore infer denoiser noisy.npy --fs 500 -o clean.npy
    """
    from ..infer.batch import score_records
    from ..infer.core import Scorer

    try:
        key = None
        if key_file is not None:
            import numpy as np

            key = np.load(key_file, allow_pickle=False)
        scorer = Scorer(model, providers=providers, threads=threads, batch_size=batch_size, key=key,
                        max_memory=int(max_memory * 2**20), quality=not no_quality, peaks=peaks,
                        precision=precision)
        if key is not None and scorer.key is None:
            raise ValueError(f"--key: model {scorer.card.name!r} takes no key input")
        summary = score_records(model, list(inputs), out, fmt=fmt, fs=fs, progress=not no_progress,
                                overwrite=overwrite, scorer=scorer, threads=threads)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary.table())
    if summary.failed and not summary.done and not summary.skipped:
        raise click.ClickException(f"every input failed ({len(summary.failed)} records)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the full cards as JSON.")
@click.argument("name", required=False)
def models(as_json, name):
    """List the bundled models: task, classes, rate, preprocessing, headline test metrics, and the cards'
    warnings (a model the card calls undertrained or below a baseline is flagged not for clinical or
    production use).

    With NAME (a bundled name or a model folder) print that model's full card.
    """
    from ..export.card import card_warnings, headline_metrics, list_bundled, read_card, resolve_model

    if name:
        try:
            _, card = resolve_model(name)
        except (ValueError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(card.to_dict(), indent=2))
        return
    bundled = list_bundled()
    cards = {}
    for n, folder in bundled.items():
        try:
            cards[n] = read_card(folder)
        except (ValueError, FileNotFoundError) as exc:
            click.echo(f"{n}: unreadable card: {exc}", err=True)
    if as_json:
        click.echo(json.dumps({n: c.to_dict() for n, c in cards.items()}, indent=2))
        return
    if not cards:
        click.echo("no bundled models installed (ecgcore/data/models/ is empty)")
        return
    for n, c in cards.items():
        size = sum(p.stat().st_size for p in bundled[n].glob("*.onnx")) / 1e6
        click.echo(f"{n}  [{c.task}, {c.framework}, {c.fs:g} Hz, preprocessing {c.preprocessing['kind']}, "
                   f"{size:.1f} MB]")
        if c.description:
            click.echo(f"    {_plain(c.description)}")
        if c.classes:
            click.echo(f"    classes: {', '.join(c.classes)}")
        head = headline_metrics(c)
        if head:
            click.echo("    test metrics: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                       for k, v in head.items()))
        warnings = card_warnings(c)
        if warnings:
            click.echo("    NOT FOR CLINICAL OR PRODUCTION USE:")
            for w in warnings:
                click.echo(f"      - {w}")


def _plain(text: str) -> str:
    """A card's description without references to the project's internal spec sections."""
    import re

    text = re.sub(r"\s*\(SPEC §[\d.]+\)", "", text)
    text = re.sub(r"\(SPEC §[\d.]+,\s*", "(", text)
    return re.sub(r",\s*SPEC §[\d.]+\)", ")", text)


@click.command("infer-report")
@click.argument("table", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--records-dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the annotated WFDB records the table was scored from (searched recursively).")
@click.option("--records", help="Comma-separated records to count (default: every record in the table).")
@click.option("--variant", default="conformer", show_default=True,
              help="Symbol → AAMI class labelling of the reference beats (conformer: the seed's, as beats-aami "
                   "was trained; aami: the standard one).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full figures (per record too) as JSON here.")
def infer_report(table, records_dir, records, variant, json_out):
    """Figures of an `ecgcore infer` table against the records' reference annotations.

    Beat tables (beats-aami): per-class Se/+P/F1 as below. Window tables (segments-abnormal, with end_sample and
    reference columns): ROC-AUC of prob_Abnormal, F1/precision/recall/accuracy of the shipped decision.

    Scored beats are paired with annotated beats within 150 ms (EC57); a missed or unclassified annotated beat
    lowers its class's Se, a false detection lowers the +P of the class it was given. Prints per-class Se, +P,
    F1, accuracy, kappa, the jk index and the confusion matrix.

    \b
    ecgcore infer beats-aami ../shared/data/mitdb --peaks detect -o ds2.csv
    ecgcore infer-report ds2.csv --records-dir ../shared/data/mitdb --json ds2.metrics.json
    """
    from .._fs import write_text
    from ..infer.report import (beat_report, format_beat_report, format_segment_report, is_segment_table,
                                segment_report)

    names = [r.strip() for r in records.split(",") if r.strip()] if records else None
    try:
        if is_segment_table(table):  # a window classifier's table: its reference labels are in it already
            rep = segment_report(table)
            click.echo(format_segment_report(rep, title=f"{table} ({len(rep['records'])} records)"))
        else:
            rep = beat_report(table, records_dir, variant=variant, records=names)
            click.echo(format_beat_report(rep, title=f"{table} vs {records_dir} ({len(rep['records'])} records)"))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    if json_out:
        write_text(json_out, json.dumps(rep, indent=1))
