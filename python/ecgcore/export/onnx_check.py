"""ONNX Runtime parity: run an exported graph and compare it with the training framework's outputs; and
:func:`strip_trace_metadata`, which keeps the exporting machine's paths out of a shipped graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def onnx_parity(onnx_path, inputs: dict[str, np.ndarray], expected: list[np.ndarray] | np.ndarray,
                atol: float = 1e-4, rtol: float = 1e-4) -> float:
    """Run ``onnx_path`` on ``inputs`` with onnxruntime (CPU) and compare each output with ``expected``.

    Returns the largest absolute difference; raises ``AssertionError`` naming the output when any element
    differs by more than ``atol + rtol * |expected|``.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
    if isinstance(expected, np.ndarray):
        expected = [expected]
    worst = 0.0
    for i, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(e)
        if g.shape != e.shape:
            raise AssertionError(f"ONNX output {i}: shape {g.shape} != framework's {e.shape}")
        diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)))
        if not np.all(diff <= atol + rtol * np.abs(e)):
            raise AssertionError(f"ONNX output {i}: max |diff| {diff.max():.3g} exceeds atol {atol} / rtol {rtol}")
    return worst


TRACE_KEYS = ("pkg.torch.onnx.stack_trace",)


def strip_trace_metadata(onnx_path) -> int:
    """Remove the source stack traces that torch's dynamo exporter stores on every node (``metadata_props``
    ``pkg.torch.onnx.stack_trace``: absolute paths of the machine that exported, nothing a runtime reads), in place;
    the graph, its weights and every other property are kept. Returns the number of entries removed."""
    import onnx

    from .._fs import atomic_write

    model = onnx.load(str(onnx_path))
    removed = 0

    def walk(graph) -> None:
        nonlocal removed
        for node in graph.node:
            keep = [p for p in node.metadata_props if p.key not in TRACE_KEYS]
            if len(keep) != len(node.metadata_props):
                removed += len(node.metadata_props) - len(keep)
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
            for a in node.attribute:
                if a.HasField("g"):
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    if removed:
        with atomic_write(Path(onnx_path)) as tmp:
            onnx.save(model, str(tmp))
    return removed
