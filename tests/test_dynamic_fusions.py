"""Dynamic lowering folds bias Adds and quantizes a shared input once (patch 01)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeq.quant.dynamic import lower_dynamic
from edgeq.targets import load_target, native_target_name

# this machine's target's weights: without VNNI, u8×s8 pair sums in int16 need 7-bit weights to be exact
REDUCE_RANGE = load_target(native_target_name()).quantization.int8.weights.reduce_range


def _qkv_model() -> onnx.ModelProto:
    """x -> three MatMul + bias Add siblings (attention's Q/K/V), summed."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    for name in ("q", "k", "v"):
        inits += [
            numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), f"w_{name}"),
            numpy_helper.from_array(rng.normal(size=8).astype(np.float32), f"b_{name}"),
        ]
        nodes += [
            helper.make_node("MatMul", ["x", f"w_{name}"], [f"m_{name}"], name=f"mm_{name}"),
            helper.make_node("Add", [f"m_{name}", f"b_{name}"], [f"y_{name}"], name=f"add_{name}"),
        ]
    nodes += [helper.make_node("Sum", ["y_q", "y_k", "y_v"], ["y"], name="sum")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])
    graph = helper.make_graph(nodes, "qkv", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_bias_adds_fold_and_shared_input_is_quantized_once() -> None:
    model = _qkv_model()
    lowered = lower_dynamic(model, ["mm_q", "mm_k", "mm_v"], reduce_range=REDUCE_RANGE)
    ops = [n.op_type for n in lowered.graph.node]
    assert ops.count("DynamicQuantizeLinear") == 1
    assert ops.count("MatMulIntegerToFloat") == 3
    assert "Add" not in ops
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    want, have = _run(model, x), _run(lowered, x)
    assert np.allclose(want, have, atol=0.05 * np.abs(want).max())


def test_per_tensor_weights_have_one_scale_and_stay_close() -> None:
    model = _qkv_model()
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    want = _run(model, x)
    for per_tensor, scale_size in ((False, 8), (True, 1)):
        lowered = lower_dynamic(
            model, ["mm_q", "mm_k", "mm_v"], reduce_range=REDUCE_RANGE, per_tensor=per_tensor
        )
        inits = {i.name: numpy_helper.to_array(i) for i in lowered.graph.initializer}
        kernels = [n for n in lowered.graph.node if n.op_type == "MatMulIntegerToFloat"]
        assert kernels and all(inits[n.input[3]].size == scale_size for n in kernels)
        assert np.allclose(want, _run(lowered, x), atol=0.05 * np.abs(want).max())


def test_static_per_tensor_plan_drops_the_axis_of_matmul_weights_only() -> None:
    from edgeq.quant.plan import plan_int8
    from edgeq.targets import load_target

    rng = np.random.default_rng(0)
    conv_w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "conv_w")
    fc_w = numpy_helper.from_array(rng.normal(size=(4, 5)).astype(np.float32), "fc_w")
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        [conv_w, fc_w],
    )
    model = onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    )
    scheme = load_target("cpu-x86-avx2").quantization.int8
    axes = {w.node: w.axis for w in plan_int8(model, scheme, per_tensor_matmul=True).weights}
    assert axes == {"conv": 0, "fc": None}
    assert {w.node: w.axis for w in plan_int8(model, scheme).weights} == {"conv": 0, "fc": -1}
