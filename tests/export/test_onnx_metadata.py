"""Exported graphs carry no stack traces of the exporting machine (torch's dynamo exporter stores one per node)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "python" / "ecgcore" / "data" / "models"
TRACE = b"pkg.torch.onnx.stack_trace"


def test_strip_trace_metadata_keeps_the_graph_and_other_properties(tmp_path):
    from onnx import TensorProto, helper

    from ecgcore.export.onnx_check import strip_trace_metadata

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    for key, value in (("pkg.torch.onnx.stack_trace", 'File "/home/someone/model.py", line 3'),
                       ("pkg.torch.onnx.name_scopes", "['', 'relu']")):
        p = node.metadata_props.add()
        p.key, p.value = key, value
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert strip_trace_metadata(path) == 1
    m = onnx.load(str(path))
    assert [p.key for p in m.graph.node[0].metadata_props] == ["pkg.torch.onnx.name_scopes"]
    assert TRACE not in path.read_bytes() and b"/home/someone" not in path.read_bytes()
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    (y,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert strip_trace_metadata(path) == 0  # nothing left: the file is not rewritten


@pytest.mark.parametrize("path", sorted(BUNDLED.glob("*/*.onnx")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bundled_graphs_hold_no_exporter_stack_traces(path):
    data = path.read_bytes()
    assert TRACE not in data and b"/root/" not in data and b"/work/" not in data and b"site-packages" not in data
