"""Memory per item of an ONNX model, measured, and the batch size that fits a memory budget.

A model's card records ``resources.peak_bytes_per_item``: the growth of the peak resident memory of a fresh
process running one ``session.run`` when the batch grows by one item (measured between two batch sizes, with
onnxruntime's arena off as ``ecgcore.infer`` runs it). ``ecgcore infer``, ``serve`` and ``app`` take their
batch sizes from it, capped by a budget (``--max-memory``, default 512 MiB), never from one global number.

``python -m ecgcore.infer.memory MODEL [--write]`` measures a model (and writes the figure into its card).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["DEFAULT_MAX_MEMORY", "FALLBACK_BYTES_PER_ITEM", "batch_for_budget", "measure_bytes_per_item"]

DEFAULT_MAX_MEMORY = 512 << 20       # 512 MiB for the batches of one model run
FALLBACK_BYTES_PER_ITEM = 32 << 20    # a card without the measurement: assume 32 MiB per item
MAX_BATCH = 1024

_PROBE = r"""
import json, resource, sys
import numpy as np
from ecgcore.infer.core import make_session
path, batch = sys.argv[1], int(sys.argv[2])
sess = make_session(path, threads=1)
feeds = {}
for i in sess.get_inputs():
    shape = [batch if (k == 0) else (d if isinstance(d, int) and d > 0 else 1) for k, d in enumerate(i.shape)]
    dtype = np.float32 if "float" in i.type else np.int64
    feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(dtype) if dtype == np.float32 \
        else np.zeros(shape, dtype)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sess.run(None, feeds)
print(json.dumps({"before_kb": before, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _peak_kb(onnx_path: str, batch: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _PROBE, str(onnx_path), str(batch)], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {onnx_path} at batch {batch} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_bytes_per_item(onnx_path, small: int = 2, large: int = 34) -> int:
    """Peak resident bytes added per item: (peak at ``large`` − peak at ``small``) / (large − small), each in
    a fresh process (graph inputs with a fixed batch dimension are measured at that batch)."""
    a, b = _peak_kb(str(onnx_path), small), _peak_kb(str(onnx_path), large)
    return max(1, int((b["peak_kb"] - a["peak_kb"]) * 1024 / (large - small)))


def batch_for_budget(card, max_memory: int | None = None, cap: int = MAX_BATCH) -> int:
    """Items per ``session.run`` so that the batch's memory stays within ``max_memory`` bytes (default
    :data:`DEFAULT_MAX_MEMORY`), from the card's ``resources.peak_bytes_per_item``, and at most the card's
    ``resources.max_batch`` where it has one (the batch beyond which the model measured no faster: larger batches
    only cost memory)."""
    budget = int(max_memory) if max_memory else DEFAULT_MAX_MEMORY
    res = getattr(card, "resources", None) or {}
    per_item = int(res.get("peak_bytes_per_item") or FALLBACK_BYTES_PER_ITEM)
    cap = min(int(cap), int(res.get("max_batch") or cap))
    return max(1, min(cap, budget // max(per_item, 1)))


def main(argv=None) -> None:  # pragma: no cover - a maintenance command
    import argparse

    from ..export.card import resolve_model, write_card

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--write", action="store_true", help="store the figure in the model's card")
    args = ap.parse_args(argv)
    onnx_path, card = resolve_model(args.model)
    per_item = measure_bytes_per_item(onnx_path)
    print(f"{card.name}: {per_item / 2**20:.2f} MiB per item")
    if args.write:
        card.resources = {**(card.resources or {}), "peak_bytes_per_item": per_item,
                          "measured_with": "python -m ecgcore.infer.memory (peak RSS, batch 34 vs 2, arena off)"}
        write_card(card, onnx_path.parent / "model.json")


if __name__ == "__main__":  # pragma: no cover
    main()
