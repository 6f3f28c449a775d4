"""Static int8 quantisation (ecgcore.export.quantize.quantize_static_int8) and `--precision int8` at inference."""
from __future__ import annotations

import numpy as np
import pytest


def _conv_net(path, rng):
    """Conv(1->16, 3x3) -> Relu -> Conv(16->32, 3x3) -> Relu -> GlobalAveragePool -> Flatten: the encoder's shape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = (rng.standard_normal((16, 1, 3, 3)) * 0.5).astype(np.float32)
    w2 = (rng.standard_normal((32, 16, 3, 3)) * 0.15).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    g = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 32, 48])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def test_static_int8_graph_is_integer_and_close(tmp_path):
    import onnx
    import onnxruntime as ort

    from ecgcore.export.quantize import quantize_static_int8

    rng = np.random.default_rng(0)
    src, dst = tmp_path / "enc.onnx", tmp_path / "enc.int8.onnx"
    _conv_net(src, rng)
    calib = [{"x": rng.standard_normal((16, 1, 32, 48)).astype(np.float32)} for _ in range(8)]
    rep = quantize_static_int8(src, dst, calib)
    assert rep["calibration_batches"] == 8 and dst.is_file()
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = rng.standard_normal((64, 1, 32, 48)).astype(np.float32)  # not the calibration inputs
    y32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    y8 = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    err = np.sqrt(np.mean((y8 - y32) ** 2)) / np.sqrt(np.mean(y32 ** 2))
    # int8 rounding: not identical; with 7-bit weights (the default, no u8*s8 saturation on AVX2) about 1 % RMS
    assert 0 < err < 0.03, err
    assert np.corrcoef(y8.ravel(), y32.ravel())[0, 1] > 0.999
    with pytest.raises(ValueError, match="calibration"):
        quantize_static_int8(src, dst, [])


def test_precision_int8_needs_a_shipped_int8_graph():
    from ecgcore.infer.core import Scorer

    with pytest.raises(ValueError, match="no int8 graph"):
        Scorer("segments-abnormal", precision="int8")
    with pytest.raises(ValueError, match="precision"):
        Scorer("beats-aami", precision="fp16")


def test_weight_only_int8_covers_convolutions(tmp_path):
    """quantize_weights stores Conv weights in int8 (one scale per output channel), float arithmetic unchanged:
    outputs move by at most the weights' rounding, never by saturation."""
    import onnx
    import onnxruntime as ort

    from ecgcore.export.quantize import quantize_weights

    rng = np.random.default_rng(1)
    src, dst = tmp_path / "enc.onnx", tmp_path / "enc.w8.onnx"
    _conv_net(src, rng)
    rep = quantize_weights(src, dst, min_elements=100)
    assert [(q["name"], q["axis"]) for q in rep["quantized"]] == [("w1", 0), ("w2", 0)]
    g = onnx.load(str(dst)).graph
    assert sum(n.op_type == "DequantizeLinear" for n in g.node) == 2
    assert {i.name: i.data_type for i in g.initializer}["w2_int8"] == onnx.TensorProto.INT8
    x = rng.standard_normal((8, 1, 32, 48)).astype(np.float32)
    y32 = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    y8 = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    err = np.sqrt(np.mean((y8 - y32) ** 2)) / np.sqrt(np.mean(y32 ** 2))
    assert 0 < err < 0.01, err
    with pytest.raises(ValueError, match="no MatMul/Gemm weight"):
        quantize_weights(src, tmp_path / "none.onnx", min_elements=100, op_types=("MatMul", "Gemm"))


def test_weight_only_int8_op_types_picks_the_operators(tmp_path):
    """``op_types`` limits the int8 storage to those operators (the denoiser keeps its MatMul weights float):
    Conv → Flatten → MatMul, both weights large enough; a bare name counts as one operator."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ecgcore.export.quantize import quantize_weights

    rng = np.random.default_rng(2)
    wc = rng.standard_normal((4, 1, 3, 3)).astype(np.float32)
    wm = rng.standard_normal((256, 10)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]), helper.make_node("MatMul", ["f", "wm"], ["y"])]
    g = helper.make_graph(nodes, "cm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 10])],
                          [numpy_helper.from_array(wc, "wc"), numpy_helper.from_array(wm, "wm")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "cm.onnx"))
    names = lambda **kw: [q["name"] for q in quantize_weights(tmp_path / "cm.onnx", tmp_path / "q.onnx",  # noqa: E731
                                                              min_elements=30, **kw)["quantized"]]
    assert sorted(names()) == ["wc", "wm"]
    assert names(op_types=("Conv", "ConvTranspose")) == ["wc"]
    assert names(op_types="MatMul") == ["wm"]


def test_bundled_denoiser_ships_int8_weights():
    """The bundled denoiser's 18 large convolution weights are int8 (4.1 MB instead of 12.4 MB; its global-context
    block's MatMul weights, about 1 MB, stay float so onnxruntime does not fuse them into MatMulNBits); its card
    states the difference from the float graph."""
    import onnx

    from ecgcore.export import resolve_model

    path, card = resolve_model("denoiser")
    g = onnx.load(str(path)).graph
    assert sum(n.op_type == "DequantizeLinear" for n in g.node) == card.metrics["weight_storage"]["tensors"] == 18
    dequantized = {o for n in g.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in g.node if n.op_type in ("Conv", "ConvTranspose")]
    assert sum(n.input[1] in dequantized for n in convs) == 18
    matmuls = [n for n in g.node if n.op_type == "MatMul"]
    assert matmuls and not any(i in dequantized for n in matmuls for i in n.input)
    assert path.stat().st_size < 4_500_000
