"""A whole-map AveragePool (one window reaching past the map, as HF EfficientNet's pooler has it)
becomes a GlobalAveragePool with the same outputs; a pool whose window does not cover the map, or
that pads, is left alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgeq.passes.pooling import globalize_whole_map_pools
from edgeq.runtime.session import OrtRunner


def pooled(height: int, width: int, **attributes: object) -> onnx.ModelProto:
    """x [N, 4, height, width] -> AveragePool(attributes) -> y, with the map's shape static."""
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", **attributes)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def outputs(model: onnx.ModelProto, height: int, width: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((3, 4, height, width)).astype(np.float32)
    return OrtRunner(model.SerializeToString()).predict({"x": x})["y"]


@pytest.mark.parametrize(
    "attributes",
    [
        {"kernel_shape": [1280, 1280], "strides": [1280, 1280], "ceil_mode": 1, "count_include_pad": 1},
        {"kernel_shape": [1280, 1280], "strides": [1280, 1280], "ceil_mode": 1},
        {"kernel_shape": [7, 5]},
        {"kernel_shape": [9, 6], "strides": [3, 2], "ceil_mode": 1},
    ],
)
def test_a_window_over_the_whole_map_is_a_global_average(attributes: dict) -> None:
    model = pooled(7, 5, **attributes)
    rewritten = globalize_whole_map_pools(model)
    assert [n.op_type for n in rewritten.graph.node] == ["GlobalAveragePool"]
    assert rewritten.graph.node[0].name == "pool"
    np.testing.assert_allclose(outputs(rewritten, 7, 5), outputs(model, 7, 5), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "attributes",
    [
        {"kernel_shape": [5, 5], "strides": [3, 3]},  # one window, but it misses the map's last rows
        {"kernel_shape": [7, 5], "pads": [1, 0, 0, 0]},
        {"kernel_shape": [3, 3]},
        {"kernel_shape": [1280, 1280], "strides": [2, 2], "ceil_mode": 1},  # no window at all
    ],
)
def test_other_pools_are_left_alone(attributes: dict) -> None:
    model = pooled(7, 5, **attributes)
    assert globalize_whole_map_pools(model) is model


def test_a_map_of_unknown_size_is_left_alone() -> None:
    model = pooled(7, 5, kernel_shape=[1280, 1280], strides=[1280, 1280], ceil_mode=1)
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    assert globalize_whole_map_pools(model) is model
