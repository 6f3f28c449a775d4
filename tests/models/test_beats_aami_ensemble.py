"""``tools/beats_aami_ensemble.py``: graphs that run several beat classifiers as one (issue 20)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _member(w: np.ndarray, name: str = "y"):
    """y = x @ w + z: x (n, w.shape[0]), z (n, w.shape[1]) -- a member with a fed-whole second input."""
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = w.shape
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "z"], [name])], "member",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_in]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", n_out])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", n_out])],
        initializer=[numpy_helper.from_array(w.astype(np.float32), "w")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, **feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})[0]


def test_merge_means_concatenates_and_slices_exactly(repo_tool):
    """Two members with different weights (names clash: both call their weight "w"): "mean" is their average,
    "concat" their outputs side by side in member order, and a sliced input feeds member i its own span; members
    exported with other opsets are refused."""
    tool = repo_tool("beats_aami_ensemble")
    rng = np.random.default_rng(0)
    w0, w1 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    x, z = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    m0, m1 = _member(w0), _member(w1)
    y0, y1 = x @ w0 + z, x @ w1 + z
    np.testing.assert_allclose(_run(tool.merge([m0, m1], "mean"), x=x, z=z), (y0 + y1) / 2, atol=1e-5)
    cat = tool.merge([m0, m1], "concat")
    assert [d.dim_value for d in cat.graph.output[0].type.tensor_type.shape.dim][1:] == [4]
    np.testing.assert_allclose(_run(cat, x=x, z=z), np.hstack([y0, y1]), atol=1e-5)
    xx = rng.normal(size=(5, 6))  # member 0 reads columns 0-2, member 1 columns 3-5
    sl = tool.merge([m0, m1], "mean", sliced="x")
    assert [d.dim_value for d in sl.graph.input[0].type.tensor_type.shape.dim][1:] == [6]
    np.testing.assert_allclose(_run(sl, x=xx, z=z), (xx[:, :3] @ w0 + xx[:, 3:] @ w1 + 2 * z) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="differ in their inputs or outputs"):
        tool.merge([m0, _member(w1, name="other")], "mean")
    with pytest.raises(ValueError, match="combine"):
        tool.merge([m0, m1], "max")
    newer = _member(w1)
    newer.opset_import[0].version = 18
    with pytest.raises(ValueError, match="different opsets"):
        tool.merge([m0, newer], "mean")


def test_two_real_members_run_as_one_model_through_infer(repo_tool, mitdb_dir, tmp_path):
    """The bundled beats-aami and a copy whose encoder and head weights differ (one layer of each scaled): the
    tool's folder gives, through ``Scorer`` (split graphs) and the full graph, the members' mean probabilities on
    every sequence of record 100 (its own check, 1e-5); members prepared differently are refused."""
    from ecgcore.export import resolve_model
    from ecgcore.export.card import read_card, write_card
    from ecgcore.infer.core import Scorer
    from ecgcore.io import read_record
    from onnx import numpy_helper

    tool = repo_tool("beats_aami_ensemble")
    onnx_path, _ = resolve_model("beats-aami")
    a, b = onnx_path.parent, tmp_path / "b"
    shutil.copytree(a, b)
    # the same two layers scaled wherever they sit (encoder: the RR fusion, head: the classifier; the full graph
    # holds both), so the copy's full graph is still its encoder + head
    layers = ("rr_fusion_1/Cast/ReadVariableOp:0", "probabilities_1/Cast/ReadVariableOp:0")
    for graph in ("encoder.onnx", "head.onnx", "model.onnx"):
        m = onnx.load(b / graph)
        hit = [t for t in m.graph.initializer if t.name.endswith(layers)]
        assert len(hit) == (2 if graph == "model.onnx" else 1), graph
        for t in hit:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(0.7), t.name))
        onnx.save(m, b / graph)
    out = tmp_path / "ens"
    assert tool.main([str(out), str(a), str(b), "--records-dir", str(mitdb_dir)]) == 0
    card = read_card(out / "model.json")
    par = card.config["ensemble"]["parity"]
    assert par["sequences"] > 2000 and par["split_max_abs_diff"] <= 1e-5 and par["full_max_abs_diff"] <= 1e-5
    assert card.graphs == {"encoder": "encoder.onnx", "head": "head.onnx"} and card.config["ensemble"]["members"] == 2
    member = read_card(a / "model.json")
    assert card.name == member.name + "-ensemble" and card.metrics == {} and card.headline == {}
    assert card.resources["peak_bytes_per_item"] == 2 * member.resources["peak_bytes_per_item"]
    assert any("not scored as a whole" in w for w in card.warnings)
    rec = read_record(mitdb_dir / "100", annotator="atr")
    pa = Scorer(str(a), peaks="annotations", quality=False).predict_record(rec).probabilities
    pb = Scorer(str(b), peaks="annotations", quality=False).predict_record(rec).probabilities
    assert np.abs(pa - pb).max() > 1e-3  # the copy really is another member
    # refused: a member prepared otherwise
    c = tmp_path / "c"
    shutil.copytree(a, c)
    cc = read_card(c / "model.json")
    cc.preprocessing = dict(cc.preprocessing, before=92)
    write_card(cc, c / "model.json")
    with pytest.raises(SystemExit, match="differ in their preprocessing"):
        tool.main([str(tmp_path / "bad"), str(a), str(c)])
