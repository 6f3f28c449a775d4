"""``score_records``: stream an archive through one :class:`Scorer`, resumably, into CSV / JSON Lines / Parquet.

Classifiers and embedders write one table ``OUT`` (a row per beat / segment / window) and, beside it,
``<stem>.summary.json`` + ``<stem>.summary.csv`` (per record: counts per class, burden %),
``<stem>.errors.json`` and ``<name>.manifest.jsonl`` (e.g. ``scores.csv.manifest.jsonl``). Denoisers write a folder ``OUT`` of denoised
records (``.npy`` or WFDB) with ``manifest.jsonl``, ``summary.json`` and ``errors.json`` in it.

Resumable: records are scored one at a time (an archive never has to fit in memory). After each record
its rows are appended and flushed, then a manifest line records the byte length of ``OUT`` (Parquet: the
record's part file). A re-run with the same model and options truncates ``OUT`` to the last complete
record (dropping a half-written one), skips every record in the manifest and goes on. A bad file is
reported with its path and the reason, and the run continues.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import read_record, record_paths
from .._fs import atomic_write
from .core import RecordPrediction, Scorer

__all__ = ["FORMATS", "InferSummary", "discover", "score_records"]

FORMATS = ("csv", "jsonl", "parquet")
DENOISE_FORMATS = ("npy", "wfdb")


@dataclass
class InferSummary:
    model: str
    out: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    n_items: int = 0
    unit: str = "items"
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"model": self.model, "out": self.out, "records_done": len(self.done),
                "records_skipped": len(self.skipped), "records_failed": len(self.failed),
                "items": self.n_items, "seconds": round(self.seconds, 3),
                "items_per_s": round(self.n_items / self.seconds, 1) if self.seconds > 0 else None,
                "records_per_s": round(len(self.done) / self.seconds, 3) if self.seconds > 0 else None,
                "counts": self.counts, "errors": [{"record": r, "error": e} for r, e in self.failed]}

    def table(self) -> str:
        d = self.as_dict()
        rows = [("model", self.model), ("output", self.out), ("records scored", str(len(self.done))),
                ("records skipped (already done)", str(len(self.skipped))),
                ("records failed", str(len(self.failed))),
                (f"{self.unit} {'denoised' if self.unit == 'samples' else 'scored'}", str(self.n_items)),
                ("wall time", f"{self.seconds:.2f} s"), (f"{self.unit}/s", str(d["items_per_s"])),
                ("records/s", str(d["records_per_s"]))]
        if self.counts:
            rows.append(("counts", ", ".join(f"{k} {v}" for k, v in self.counts.items())))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines += [f"FAILED {r}: {e}" for r, e in self.failed]
        return "\n".join(lines)


def discover(inputs) -> list[tuple[str, Path]]:
    """(record id, path) of every record under ``inputs`` (files, WFDB record paths or folders, recursive).

    Ids are paths relative to their input folder without extension (``100``, ``sub/rec``); an input that
    is a single record gives its name. Duplicate ids get the input folder's name as a prefix.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for inp in inputs:
        root = Path(inp)
        if not root.exists() and not root.with_name(root.name + ".hea").is_file():
            raise FileNotFoundError(f"{root}: no such file, WFDB record or folder")
        paths = record_paths(root)
        if root.is_dir() and not paths:
            raise ValueError(f"{root}: no WFDB (.hea), .npy or .csv records found (searched recursively)")
        for p in paths:
            if root.is_dir():
                rid = str(p.relative_to(root))
                rid = rid[: -len(p.suffix)] if p.suffix.lower() in (".npy", ".csv") else rid
            else:
                rid = p.stem if p.suffix.lower() in (".npy", ".csv") else p.name
            if rid in seen:
                rid = f"{root.name}/{rid}"
            seen.add(rid)
            found.append((rid, p))
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _columns(scorer: Scorer, kind: str) -> list[str]:
    cols = ["record", "sample", "time_s"]
    if kind != "beats-scalograms":
        cols.append("end_sample")
    if scorer.card.task == "embedding" or not scorer.card.classes:
        return cols + ["embedding"]
    return cols + ["class"] + [f"prob_{c}" for c in scorer.card.classes] + ["reference"] + \
        (["quality"] if getattr(scorer, "quality", False) else [])


class _TableWriter:
    """Appends each record's rows to OUT (csv/jsonl) or to a part file (parquet); returns the resume point."""

    def __init__(self, out: Path, fmt: str, columns: list[str], resume_at: int | None):
        self.out, self.fmt, self.columns = out, fmt, columns
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise ValueError("--format parquet needs pyarrow: pip install pyarrow "
                                 "(or use --format csv / jsonl)") from None
            self.parts = out.with_name(out.name + ".parts")
            self.parts.mkdir(parents=True, exist_ok=True)
            self.fh = None
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        if resume_at is None or not out.is_file():
            self.fh = open(out, "wb")
            if fmt == "csv":
                self._write_csv_rows([dict(zip(columns, columns))])
        else:
            self.fh = open(out, "r+b")
            self.fh.truncate(resume_at)  # drop rows of a record the last run did not finish
            self.fh.seek(resume_at)

    def _write_csv_rows(self, rows) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in rows:
            w.writerow([_cell(r.get(c, "")) for c in self.columns])
        self.fh.write(buf.getvalue().encode())

    def header_end(self) -> int:
        return self.fh.tell() if self.fh else 0

    def write(self, rid: str, index: int, rows: list[dict]) -> dict:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            cols = {c: [r.get(c) for r in rows] for c in self.columns}
            if "reference" in cols:
                cols["reference"] = [v or "" for v in cols["reference"]]
            table = pa.table(cols) if rows else pa.table({c: pa.array([], _pa_type(c)) for c in self.columns})
            rel = hashlib.sha256(rid.encode()).hexdigest()[:20] + ".parquet"  # stable whatever the input order
            with atomic_write(self.parts / rel) as tmp:
                pq.write_table(table, tmp)
            return {"part": rel}
        if self.fmt == "csv":
            self._write_csv_rows(rows)
        else:
            self.fh.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode())
        self.fh.flush()
        os.fsync(self.fh.fileno())
        return {"offset": self.fh.tell()}

    def close(self, manifest: dict[str, dict], order: list[str]) -> None:
        """csv/jsonl: close the file. Parquet: OUT = the part files of ``order``'s finished records, in order."""
        if self.fh:
            self.fh.close()
            return
        import pyarrow.parquet as pq

        parts = [manifest[r]["part"] for r in order if r in manifest and "part" in manifest[r]]
        with atomic_write(self.out) as tmp:
            writer = None
            for rel in parts:
                t = pq.read_table(self.parts / rel)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, t.schema)
                if t.num_rows:
                    writer.write_table(t.cast(writer.schema) if t.schema != writer.schema else t)
            if writer is None:
                import pyarrow as pa

                pq.write_table(pa.table({c: pa.array([], _pa_type(c)) for c in self.columns}), tmp)
            else:
                writer.close()


def _pa_type(col: str):
    import pyarrow as pa

    if col in ("sample", "end_sample"):
        return pa.int64()
    if col == "time_s" or col.startswith("prob_"):
        return pa.float64()
    if col == "embedding":
        return pa.list_(pa.float64())
    return pa.string()


def _cell(v):
    if isinstance(v, list):
        return " ".join(repr(float(x)) for x in v)
    return v


def _read_manifest(path: Path) -> tuple[dict | None, dict[str, dict]]:
    """(header, {record: entry}) of a manifest; a torn last line (killed run) is ignored."""
    if not path.is_file():
        return None, {}
    header, entries = None, {}
    for line in path.read_text().splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "header" in e:
            header = e["header"]
        elif "record" in e:
            entries[e["record"]] = e
    return header, entries


def _write_json(path: Path, obj) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _summary_csv(path: Path, classes: list[str], summaries: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ["record", "n", "duration_s"] + [f"n_{c}" for c in classes] + [f"burden_pct_{c}" for c in classes]
    w.writerow(cols)
    for s in summaries:
        w.writerow([s.get("record"), s.get("n"), s.get("duration_s")]
                   + [s.get("counts", {}).get(c, "") for c in classes]
                   + [s.get("burden_pct", {}).get(c, "") for c in classes])
    with atomic_write(path) as tmp:
        tmp.write_text(buf.getvalue())


def _side(out: Path, what: str) -> Path:
    return out.with_name(f"{out.stem}.{what}")


def score_records(model, inputs, out, *, fmt: str | None = None, fs: float | None = None, providers=None,
                  threads: int | None = None, batch_size: int | None = None, progress: bool = True,
                  overwrite: bool = False, scorer: Scorer | None = None) -> InferSummary:
    """Score every record under ``inputs`` with ``model`` into ``out``; see the module docstring.

    Parameters
    ----------
    model : bundled name, model folder or ``.onnx`` path (or pass a ready ``scorer``).
    inputs : a path or a list of paths: WFDB records, folders (recursive), ``.npy`` (n_samples[, n_leads]),
        ``.csv`` (one column per lead).
    out : the output table (``.csv``, ``.jsonl``, ``.parquet``) or, for a denoiser, a folder (or, for one
        input, the ``.npy`` file to write).
    fmt : ``csv`` / ``jsonl`` / ``parquet`` (default from ``out``'s suffix, else csv); denoiser: ``npy`` / ``wfdb``.
    fs : sampling rate of ``.npy``/``.csv`` inputs: required when there are any (arrays carry no rate).
    batch_size : items per onnxruntime call (default: from the card's memory per item and a 512 MiB budget).
    overwrite : start over even if ``out`` holds results of another model or other options.
    """
    from tqdm.auto import tqdm

    scorer = scorer or Scorer(model, providers=providers, threads=threads, batch_size=batch_size)
    card = scorer.card
    kind = card.preprocessing["kind"]
    out = Path(out)
    denoiser = kind == "denoise-pairs"
    if fmt is None:
        suffix = out.suffix.lower().lstrip(".")
        fmt = ("npy" if denoiser else "csv") if not suffix or suffix not in FORMATS else suffix
    fmt = fmt.lower()
    allowed = DENOISE_FORMATS if denoiser else FORMATS
    if fmt not in allowed:
        raise ValueError(f"--format {fmt!r} does not fit model {card.name!r} ({card.task}); use one of "
                         f"{', '.join(allowed)}")
    records = discover(inputs)
    arrays = [str(p) for _, p in records if p.suffix.lower() in (".npy", ".csv")]
    if arrays and fs is None:
        more = f" (and {len(arrays) - 1} more)" if len(arrays) > 1 else ""
        raise ValueError(f"{arrays[0]}{more}: .npy/.csv arrays carry no sampling rate; give it with --fs, e.g. "
                         f"--fs {card.fs:g} if they are sampled at the model's rate")
    fs_in = float(fs) if fs is not None else float(card.fs)
    if denoiser and len(records) == 1 and out.suffix.lower() == ".npy" and fmt in (None, "npy"):
        return _denoise_one_file(scorer, records[0], out, fs_in, threads)

    # What a finished record depends on: the model file, its preprocessing and the output layout.
    ident = {"model": card.name, "onnx_sha256": _sha256(scorer.onnx_path), "preprocessing": card.preprocessing,
             "format": fmt, "fs": fs_in, "quality_check": bool(getattr(scorer, "quality", False))}
    if getattr(scorer, "peaks", None) is not None:
        ident["peaks"] = scorer.peaks
    if getattr(scorer, "precision", "fp32") != "fp32":
        ident["precision"] = scorer.precision
    if scorer.key is not None:
        ident["key_sha256"] = hashlib.sha256(scorer.key.tobytes()).hexdigest()
    if denoiser:
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: a denoiser writes a folder of records; this is a file")
        out.mkdir(parents=True, exist_ok=True)
        man_path, sum_path, err_path = out / "manifest.jsonl", out / "summary.json", out / "errors.json"
    else:
        if out.is_dir():
            raise ValueError(f"{out} is a folder; give the output table's file name (e.g. {out}/scores.csv)")
        # The manifest is named after the whole file name: scores.csv and scores.jsonl resume independently.
        man_path = out.with_name(out.name + ".manifest.jsonl")
        sum_path, err_path = _side(out, "summary.json"), _side(out, "errors.json")
    header, done = _read_manifest(man_path)
    if header is not None and json.loads(json.dumps(header, default=_json_default)) != \
            json.loads(json.dumps(ident, default=_json_default)):
        if not overwrite:
            raise ValueError(f"{out} holds results of another model, options or format ({man_path}); "
                             "pass --overwrite to start over, or choose another output")
        header, done = None, {}
    if header is not None and not denoiser:
        done = {r: e for r, e in done.items() if "offset" in e or "part" in e}
        parts = out.with_name(out.name + ".parts")
        ends = [e["offset"] for e in done.values() if "offset" in e]
        lost = any(not (parts / e["part"]).is_file() for e in done.values() if "part" in e) or \
            (ends and (not out.is_file() or out.stat().st_size < max(ends)))
        if lost:  # the table was deleted or cut short since: its manifest cannot be trusted
            header, done = None, {}
    if header is None:
        done = {}
        if not denoiser:
            parts = out.with_name(out.name + ".parts")
            if parts.is_dir():
                shutil.rmtree(parts)
        with atomic_write(man_path) as tmp:
            tmp.write_text(json.dumps({"header": ident}, default=_json_default) + "\n")
    if not denoiser:
        resume_at = max((e["offset"] for e in done.values() if "offset" in e), default=None)
        writer = _TableWriter(out, fmt, _columns(scorer, kind), resume_at if header is not None else None)
        if resume_at is None and fmt != "parquet":
            resume_at = writer.header_end()
    else:
        done = {r: e for r, e in done.items() if all((out / f).is_file() and _sha256(out / f) == h
                                                  for f, h in e.get("files", {}).items())}

    summary = InferSummary(model=card.name, out=str(out), unit="samples" if denoiser else "items")
    totals: dict[str, int] = {c: 0 for c in card.classes}
    bar = tqdm(total=len(records), desc=f"infer {card.name}", unit="rec", disable=not progress)
    t0 = time.perf_counter()
    with open(man_path, "rb+") as fh:  # a torn last line (killed run) must not swallow the next entry
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    mf = open(man_path, "a")

    def load(path):
        is_array = path.suffix.lower() in (".npy", ".csv")
        return read_record(path, fs=fs_in if is_array else None, annotator="atr", workers=threads)

    # Read record n+1 (file I/O and WFDB decoding in C++, which releases the GIL) while record n is scored; at most
    # one record is read ahead, so memory stays that of two records.
    todo = [(i, rid, path) for i, (rid, path) in enumerate(records) if rid not in done]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecgcore-read")
    ahead = {todo[0][0]: pool.submit(load, todo[0][2])} if todo else {}
    nxt = {a[0]: b for a, b in zip(todo, todo[1:])}
    try:
        for index, (rid, path) in enumerate(records):
            if rid in done:
                summary.skipped.append(rid)
                summary.records[rid] = done[rid].get("summary", {})
                summary.n_items += int(done[rid].get("summary", {}).get("n", 0))
                bar.update(1)
                continue
            fut = ahead.pop(index)
            if index in nxt:
                ahead[nxt[index][0]] = pool.submit(load, nxt[index][2])
            try:
                rec = fut.result()
                rec.name = rid
                pred: RecordPrediction = scorer.predict_record(rec)
                if denoiser:
                    files = _write_denoised(out, rid, rec, pred.signal, fmt)
                    entry = {"record": rid, "path": str(path), "files": files, "summary": pred.summary}
                    summary.n_items += int(pred.signal.size)
                else:
                    where = writer.write(rid, index, pred.rows)
                    entry = {"record": rid, "path": str(path), **where, "summary": pred.summary}
                    summary.n_items += len(pred.rows)
            except (OSError, ValueError, KeyError, IndexError) as exc:
                summary.failed.append((str(path), f"{type(exc).__name__}: {exc}"))
                bar.update(1)
                bar.set_postfix(failed=len(summary.failed))
                continue
            mf.write(json.dumps(entry, default=_json_default) + "\n")
            mf.flush()
            os.fsync(mf.fileno())
            summary.done.append(rid)
            summary.records[rid] = pred.summary
            bar.update(1)
            el = time.perf_counter() - t0
            bar.set_postfix(items_per_s=f"{summary.n_items / el:.0f}" if el > 0 else "-",
                            failed=len(summary.failed))
    finally:
        for f in ahead.values():
            f.cancel()
        pool.shutdown(wait=True)
        mf.close()
        bar.close()
        if not denoiser:
            _, entries = _read_manifest(man_path)
            writer.close(entries, [rid for rid, _ in records])
    summary.seconds = time.perf_counter() - t0
    for s in summary.records.values():
        for c, k in s.get("counts", {}).items():
            totals[c] = totals.get(c, 0) + int(k)
    summary.counts = totals if card.classes else {}
    per_record = [summary.records[r] for r, _ in records if r in summary.records]
    _write_json(sum_path, {**summary.as_dict(), "records": per_record})
    if not denoiser:
        _summary_csv(_side(out, "summary.csv"), list(card.classes), per_record)
    _write_json(err_path, [{"record": r, "error": e} for r, e in summary.failed])
    return summary


def _denoise_one_file(scorer: Scorer, record: tuple[str, Path], out: Path, fs: float, threads) -> InferSummary:
    """One input and ``-o FILE.npy``: the denoised lead is written to that file (atomically), with
    ``<stem>.summary.json`` beside it."""
    rid, path = record
    summary = InferSummary(model=scorer.card.name, out=str(out), unit="samples")
    t0 = time.perf_counter()
    try:
        is_array = path.suffix.lower() in (".npy", ".csv")
        rec = read_record(path, fs=fs if is_array else None, annotator=None, workers=threads)
        rec.name = rid
        pred = scorer.predict_record(rec)
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, pred.signal.astype(np.float32))
        summary.done.append(rid)
        summary.records[rid] = pred.summary
        summary.n_items = int(pred.signal.size)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        summary.failed.append((str(path), f"{type(exc).__name__}: {exc}"))
    summary.seconds = time.perf_counter() - t0
    _write_json(_side(out, "summary.json"), {**summary.as_dict(), "records": list(summary.records.values())})
    return summary


def _write_denoised(out: Path, rid: str, rec, signal: np.ndarray, fmt: str) -> dict[str, str]:
    """Write one denoised lead as ``<rid>.npy`` or a WFDB record ``<rid>.hea/.dat``; {relative file: sha256}."""
    target = out / rid
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npy":
        rel = f"{rid}.npy"
        with atomic_write(out / rel) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, signal.astype(np.float32))
        return {rel: _sha256(out / rel)}
    import tempfile

    import wfdb

    name = Path(rid).name
    lead = rec.leads[0] if rec.leads else "ECG"
    unit = rec.units[0] if rec.units else "mV"
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmpd:
        wfdb.wrsamp(name, fs=float(rec.fs), units=[unit], sig_name=[f"{lead}-denoised"],
                    p_signal=signal.reshape(-1, 1).astype(np.float64), fmt=["16"], write_dir=tmpd,
                    comments=[f"denoised by ecgcore infer from {rec.path}"])
        files = {}
        for ext in ("dat", "hea"):  # header last: a record is complete once its .hea exists
            os.replace(Path(tmpd) / f"{name}.{ext}", target.parent / f"{name}.{ext}")
            rel = str(Path(rid).parent / f"{name}.{ext}") if Path(rid).parent != Path(".") else f"{name}.{ext}"
            files[rel] = _sha256(out / rel)
    return files
