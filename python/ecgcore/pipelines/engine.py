"""The ``ecgcore preprocess`` engine: one per-record task over an archive, locally or on Dask distributed.

* Local: a process pool over records (``workers``, default all cores; each task runs the C++ kernels
  single-threaded so processes x threads never oversubscribe the machine). Workers come from a forkserver
  (spawn where there is none); the biggest records go first.
* Cluster: ``scheduler="tcp://host:port"`` submits the same task to a Dask distributed scheduler; OUT_DIR
  must be on storage the workers share.
* Resumable: every finished record is appended to ``manifest.jsonl`` with a checksum of each file it
  wrote (CRC-32C and length by default, ``crc32c:<hex>:<bytes>``; SHA-256 with ``digest="sha256"``, which
  costs a beats-scalograms run ~15 % more CPU). A re-run skips records whose files still match; everything
  is written to a temp file and renamed, so a killed run never leaves a file that a re-run would trust.
* Failure-tolerant: a record that fails is listed in ``errors.json`` and in the summary; the run goes on.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._fs import atomic_write, remove_stale_parts
from .recipes.base import RecordResult

__all__ = ["DIGESTS", "PreprocessSummary", "RecordResult", "file_crc32c", "file_digest", "file_sha256", "preprocess",
           "read_manifest"]

MANIFEST = "manifest.jsonl"
ERRORS = "errors.json"


@dataclass
class PreprocessSummary:
    recipe: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    n_items: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the record tasks (user + system), wherever they ran
    results: dict[str, dict] = field(default_factory=dict)

    def table(self) -> str:
        rate = len(self.done) / self.seconds if self.seconds > 0 else float("nan")
        irate = self.n_items / self.seconds if self.seconds > 0 else float("nan")
        rows = [
            ("recipe", self.recipe),
            ("records processed", str(len(self.done))),
            ("records skipped (already done)", str(len(self.skipped))),
            ("records failed", str(len(self.failed))),
            ("items written (beats/windows)", str(self.n_items)),
            ("wall time", f"{self.seconds:.2f} s"),
            ("CPU time of the tasks", f"{self.cpu_seconds:.2f} s"),
            ("records/s", f"{rate:.2f}"),
            ("items/s", f"{irate:.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


DIGESTS = ("crc32c", "sha256")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_crc32c(path: Path) -> str:
    """``crc32c:<8 hex>:<size>``: CRC-32C (SSE4.2, ~8 GB/s, in ecgcore's core) of the file and its length."""
    from .._native import core

    size = os.stat(path).st_size
    if size == 0:
        return f"crc32c:{core.crc32c(b''):08x}:0"
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        view = memoryview(mm)
        try:
            crc = core.crc32c(view)
        finally:
            view.release()
    return f"crc32c:{crc:08x}:{size}"


def file_digest(path: Path, algorithm: str = "crc32c") -> str:
    """The manifest's checksum of one output file: ``file_crc32c`` or ``file_sha256`` (64 hex digits)."""
    if algorithm == "crc32c":
        return file_crc32c(path)
    if algorithm == "sha256":
        return file_sha256(path)
    raise ValueError(f"digest must be one of {', '.join(DIGESTS)}, got {algorithm!r}")


def _digest_matches(path: Path, digest: str) -> bool:
    # An entry names its own algorithm: manifests written with SHA-256 (bare hex) still verify.
    return file_digest(path, "crc32c" if digest.startswith("crc32c:") else "sha256") == digest


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """Finished records of earlier runs (a torn last line from a killed run is ignored)."""
    path = Path(out_dir) / MANIFEST
    entries: dict[str, dict] = {}
    if not path.is_file():
        return entries
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "record" in entry:
            entries[entry["record"]] = entry
    return entries


def _still_valid(out_dir: Path, entry: dict) -> bool:
    for rel, digest in entry.get("files", {}).items():
        p = out_dir / rel
        if not p.is_file() or not _digest_matches(p, digest):
            return False
    return True


def _run_task(recipe_name: str, record: str, in_dir: str, out_dir: str, options: dict) -> dict:
    """Executed in a worker process (local pool or Dask): never raises, returns a plain dict."""
    from .recipes import get_recipe

    # Single-threaded kernels (pool and Dask tasks): this thread's CPU, not that of a Dask worker's other tasks.
    clock = time.thread_time if options.get("_threads") == 1 else time.process_time
    cpu0 = clock()
    try:
        recipe = get_recipe(recipe_name)
        res: RecordResult = recipe.run(record, Path(in_dir), Path(out_dir), options)
        algorithm = options.get("_digest", "crc32c")
        files = {rel: file_digest(Path(out_dir) / rel, algorithm) for rel in res.files}
        return {"status": "ok", "record": record, "files": files, "n_items": res.n_items, "info": res.info,
                "cpu_s": clock() - cpu0}
    except (OSError, ValueError, KeyError, IndexError) as exc:
        return {"status": "error", "record": record, "error": f"{type(exc).__name__}: {exc}",
                "cpu_s": clock() - cpu0}


def preprocess(recipe_name: str, in_dir, out_dir, *, options: dict | None = None, workers: int | None = None,
               scheduler: str | None = None, limit: int | None = None, records: list[str] | None = None,
               progress: bool = True, digest: str = "crc32c") -> PreprocessSummary:
    """Run recipe ``recipe_name`` over the records of ``in_dir`` into ``out_dir``; see the module docstring.

    ``digest``: the manifest's checksum of each output file, ``"crc32c"`` (CRC-32C and length; default) or
    ``"sha256"`` (~6x more CPU: 15 % of a beats-scalograms run). Either kind is verified on a re-run.
    """
    if digest not in DIGESTS:
        raise ValueError(f"digest must be one of {', '.join(DIGESTS)}, got {digest!r}")
    from tqdm.auto import tqdm

    from .recipes import get_recipe

    recipe = get_recipe(recipe_name)
    options = dict(recipe.default_options(), **(options or {}))
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        raise FileNotFoundError(f"{in_dir}: input folder does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir)
    items = recipe.items(in_dir, options)
    if records:
        wanted = set(records)
        unknown = wanted - set(items)
        if unknown:
            raise ValueError(f"records not found in {in_dir} for recipe {recipe_name}: {sorted(unknown)}")
        items = [r for r in items if r in wanted]
    if limit is not None:
        items = items[: int(limit)]
    if not items:
        raise ValueError(f"{in_dir}: no input records for recipe {recipe_name}")

    manifest = read_manifest(out_dir)
    # Options are part of a record's identity: a re-run with other options redoes everything.
    opt_key = json.dumps(options, sort_keys=True, default=str)
    summary = PreprocessSummary(recipe=recipe_name)
    todo = []
    for rec in items:
        entry = manifest.get(rec)
        if entry and entry.get("options") == opt_key and entry.get("recipe") == recipe_name \
                and _still_valid(out_dir, entry):
            summary.skipped.append(rec)
            summary.results[rec] = entry
        else:
            todo.append(rec)

    t0 = time.perf_counter()
    bar = tqdm(total=len(items), initial=len(summary.skipped), desc=f"preprocess {recipe_name}", unit="rec",
               disable=not progress)
    with open(out_dir / MANIFEST, "a") as mf:
        def record_result(res: dict) -> None:
            rec = res["record"]
            summary.cpu_seconds += res.get("cpu_s", 0.0)
            if res["status"] == "ok":
                entry = {"record": rec, "recipe": recipe_name, "options": opt_key, "files": res["files"],
                         "n_items": res["n_items"], "info": res["info"]}
                mf.write(json.dumps(entry) + "\n")
                mf.flush()
                os.fsync(mf.fileno())
                summary.done.append(rec)
                summary.results[rec] = entry
                summary.n_items += res["n_items"]
            else:
                summary.failed.append((rec, res["error"]))
            bar.update(1)
            el = time.perf_counter() - t0
            bar.set_postfix(items_per_s=f"{summary.n_items / el:.0f}" if el > 0 else "-", failed=len(summary.failed))

        n_proc = _n_workers(workers)
        # One C++ thread per task when tasks run side by side; all cores for a serial run.
        task_opts = dict(options, _threads=1 if (scheduler or (n_proc > 1 and len(todo) > 1)) else 0,
                         _digest=digest)
        if scheduler or (n_proc > 1 and len(todo) > 1):
            # Longest first, so that the pool does not end on one big record while the other cores idle.
            cost = {rec: recipe.cost(rec, in_dir, options) for rec in todo}
            todo = sorted(todo, key=lambda r: -cost[r])
        args = [(recipe_name, rec, str(in_dir), str(out_dir), task_opts) for rec in todo]
        if scheduler:
            _run_dask(scheduler, args, record_result)
        else:
            _run_local(args, n_proc, record_result, preload=recipe.preload())
    bar.close()
    summary.seconds = time.perf_counter() - t0

    ok = {rec: summary.results[rec] for rec in items if rec in summary.results}
    recipe.finish(out_dir, ok, options)
    with atomic_write(out_dir / ERRORS) as tmp:
        tmp.write_text(json.dumps([{"record": r, "error": e} for r, e in summary.failed], indent=1))
    return summary


def _n_workers(workers: int | None) -> int:
    if workers is None or workers <= 0:
        return os.cpu_count() or 1
    return int(workers)


def _pool_context(preload: list[str]):
    """forkserver where there is one, else spawn; never fork.

    libgomp (OpenMP) is not fork-safe once the parent has used it, so workers never fork from the caller.
    The forkserver is a fresh interpreter that has not run any kernel; it imports ``preload`` once and forks
    every worker from there, so workers start without importing numpy, h5py and ecgcore again (spawn
    costs each worker ~0.3 s of imports), and later pools of the same process start at once.
    """
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["ecgcore.pipelines.engine", *preload])  # used when the server (re)starts
    return ctx


def _run_local(args: list[tuple], n: int, callback, preload: list[str] = ()) -> None:
    if not args:
        return
    if n == 1 or len(args) == 1:
        for a in args:
            callback(_run_task(*a))
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(n, len(args)), mp_context=_pool_context(list(preload))) as pool:
        futures = [pool.submit(_run_task, *a) for a in args]
        for fut in as_completed(futures):
            callback(fut.result())


def _run_dask(address: str, args: list[tuple], callback) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("--scheduler needs Dask distributed: pip install 'dask[distributed]'") from exc
    if not args:
        return
    with Client(address) as client:
        futures = [client.submit(_run_task, *a, key=f"ecgcore-{a[0]}-{a[1]}-{i}", pure=False)
                   for i, a in enumerate(args)]
        for fut in as_completed(futures):
            callback(fut.result())
