"""Dynamic lowering folds bias Adds and quantizes a shared input once (patch 01)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeq.quant.dynamic import lower_dynamic


def _qkv_model() -> onnx.ModelProto:
    """x -> three MatMul + bias Add siblings (attention's Q/K/V), summed."""
    rng = np.random.default_rng(0)
    inits, nodes = [], []
    for name in ("q", "k", "v"):
        inits += [numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), f"w_{name}"),
                  numpy_helper.from_array(rng.normal(size=8).astype(np.float32), f"b_{name}")]
        nodes += [helper.make_node("MatMul", ["x", f"w_{name}"], [f"m_{name}"], name=f"mm_{name}"),
                  helper.make_node("Add", [f"m_{name}", f"b_{name}"], [f"y_{name}"], name=f"add_{name}")]
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
    lowered = lower_dynamic(model, ["mm_q", "mm_k", "mm_v"], reduce_range=False)
    ops = [n.op_type for n in lowered.graph.node]
    assert ops.count("DynamicQuantizeLinear") == 1
    assert ops.count("MatMulIntegerToFloat") == 3
    assert "Add" not in ops
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    want, have = _run(model, x), _run(lowered, x)
    assert np.allclose(want, have, atol=0.05 * np.abs(want).max())
