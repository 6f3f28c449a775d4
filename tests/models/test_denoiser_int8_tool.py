"""tools/denoiser_int8.py (issue 22): the exported denoiser's convolution weights go to int8 in place (no float copy
left in the folder), and the card states the tensors, the bytes and the difference measured on real-shaped DS2 pair windows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

N = 1300


@pytest.fixture(scope="module")
def tool(repo_tool):
    return repo_tool("denoiser_int8")


def _conv1d_net(path: Path, rng) -> None:
    """(b, 1, 1300) -> Conv1d(1->32, k9) -> Relu -> Conv1d(32->1, k9) -> (b, 1, 1300): the denoiser's I/O."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = (rng.standard_normal((32, 1, 9)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((1, 32, 9)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[4, 4]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[4, 4])]
    g = helper.make_graph(nodes, "dn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, N])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1, N])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def _pairs(folder: Path, rng) -> None:
    """A denoise-pairs folder with one DS2 record: 6 windows x (bw, ma, em) x 4 SNRs."""
    folder.mkdir()
    t = np.arange(N) / 130.0
    clean = np.stack([np.sin(2 * np.pi * 1.2 * t + k) ** 15 for k in range(6)])
    noisy = clean[:, None, None, :] + 0.3 * rng.standard_normal((6, 3, 4, N)) + 0.5 * np.sin(2 * np.pi * 0.2 * t)
    np.savez(folder / "100.npz", clean=clean.astype(np.float32), noisy=noisy.astype(np.float32),
             start=np.arange(6) * N, noise=np.array(["bw", "ma", "em"]), snr_db=np.array([-6.0, 0.0, 6.0, 12.0]),
             fs=np.float64(130.0))
    (folder / "splits.json").write_text(json.dumps({"train": [], "test": ["100"]}))
    (folder / "metadata.json").write_text(json.dumps({"recipe": "denoise-pairs"}))


def test_int8_tool_quantizes_keeps_the_float_graph_and_writes_the_card(tmp_path, tool):
    import onnx

    from ecgcore.export import resolve_model
    from ecgcore.export.card import read_card

    rng = np.random.default_rng(0)
    model = tmp_path / "model"
    model.mkdir()
    _conv1d_net(model / "model.onnx", rng)
    card = json.loads((resolve_model("denoiser")[0].parent / "model.json").read_text())  # the bundled card
    card["metrics"] = {}
    (model / "model.json").write_text(json.dumps(card))
    _pairs(tmp_path / "pairs", rng)

    float_bytes = (model / "model.onnx").stat().st_size
    float_graph = (model / "model.onnx").read_bytes()
    # a failure (here: pairs without a test split) leaves the folder as it was: float graph, card without int8
    with pytest.raises(Exception):
        tool.main([str(model), "--pairs", str(tmp_path / "no-pairs"), "--windows", "16", "--min-elements", "200"])
    assert (model / "model.onnx").read_bytes() == float_graph and sorted(p.name for p in model.iterdir()) == [
        "model.json", "model.onnx"]
    assert "weight_storage" not in read_card(model / "model.json").metrics
    assert tool.main([str(model), "--pairs", str(tmp_path / "pairs"), "--windows", "16", "--min-elements", "200"]) == 0
    ws = read_card(model / "model.json").metrics["weight_storage"]
    assert ws["tensors"] == 2 and ws["bytes_int8"] < ws["bytes_fp32"] == float_bytes
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "model.onnx"]  # no float copy left behind
    diff = ws["vs_fp32_onnx_on_16_real_ds2_windows"]
    assert 0 < diff["rms_diff"] < 0.03 * diff["rms_output"] and diff["max_abs_diff_z_units"] >= diff["rms_diff"]
    g = onnx.load(str(model / "model.onnx")).graph
    assert sum(n.op_type == "DequantizeLinear" for n in g.node) == 2
    # a second run would quantize the int8 graph again: refused, nothing changed
    before = (model / "model.onnx").read_bytes()
    assert tool.main([str(model), "--pairs", str(tmp_path / "pairs")]) == 2
    assert (model / "model.onnx").read_bytes() == before
