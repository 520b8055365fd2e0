"""Gemm + BatchNormalization folding: the same outputs, the Gemm's name kept, nothing folded that is
still read elsewhere or is not an inference BatchNormalization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.passes.prepare import fold_linear_batchnorm
from edgeq.runtime.session import OrtRunner


def gemm_batchnorm(*, trans_b=0, trans_a=0, bn_outputs=1, extra_output=None, bias=True):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 4) if trans_b else (4, 6)).astype(np.float32)
    stats = {n: rng.standard_normal(6).astype(np.float32) for n in ("gamma", "beta", "mean")}
    stats["var"] = (rng.random(6) + 0.5).astype(np.float32)
    constants = [
        numpy_helper.from_array(weight, "w"),
        *(numpy_helper.from_array(v, n) for n, v in stats.items()),
    ]
    gemm_inputs = ["x", "w"]
    if bias:
        constants.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"))
        gemm_inputs.append("b")
    bn_out = ["y", "running_mean", "running_var"][:bn_outputs]
    nodes = [
        helper.make_node(
            "Gemm", gemm_inputs, ["h"], name="fc", alpha=0.5, beta=2.0, transA=trans_a, transB=trans_b
        ),
        helper.make_node(
            "BatchNormalization", ["h", "gamma", "beta", "mean", "var"], bn_out, name="bn", epsilon=1e-3
        ),
    ]
    outputs = ["y"] + ([extra_output] if extra_output else [])
    if extra_output == "r":
        nodes.append(helper.make_node("Relu", ["h"], ["r"], name="relu"))
    x_shape = [4, 2] if trans_a else [2, 4]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, None]) for name in outputs],
        constants,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), np.ones(x_shape, np.float32)


@pytest.mark.parametrize(("trans_b", "bias"), [(0, True), (1, True), (1, False)])
def test_folded_gemm_computes_the_batchnorm_output_and_keeps_its_name(trans_b, bias):
    model, x = gemm_batchnorm(trans_b=trans_b, bias=bias)
    x = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    folded = fold_linear_batchnorm(model)
    onnx.checker.check_model(folded)
    assert [(n.op_type, n.name, list(n.output)) for n in folded.graph.node] == [("Gemm", "fc", ["y"])]
    assert not folded.graph.node[0].metadata_props
    assert {t.name for t in folded.graph.initializer} == {"h_bnfold_weight", "h_bnfold_bias"}
    want = OrtRunner(model.SerializeToString()).predict({"x": x})["y"]
    have = OrtRunner(folded.SerializeToString()).predict({"x": x})["y"]
    np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "change",
    [{"bn_outputs": 3}, {"trans_a": 1}, {"extra_output": "h"}, {"extra_output": "r"}],
    ids=["training-batchnorm", "transA", "gemm-output-is-graph-output", "gemm-output-read-twice"],
)
def test_batchnorm_is_left_alone_where_folding_would_change_the_graph(change):
    model, _ = gemm_batchnorm(**change)
    folded = fold_linear_batchnorm(model)
    assert [n.op_type for n in folded.graph.node] == [n.op_type for n in model.graph.node]
