"""Static-shape simplification: fewer shape nodes, the same outputs, dynamic batch intact."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgeq.passes.ort_offline import ort_optimize
from edgeq.passes.prepare import fold_linear_batchnorm, prepare_model
from edgeq.passes.simplify import simplify_static_shapes
from edgeq.runtime.session import OrtRunner
from tests.conftest import REPO

TSP_MODEL = str(REPO / "examples/pointer_net/tsp.onnx")
TSP_DATA = str(REPO / "calib/pointer_tsp.npz")


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def _opsets(model: onnx.ModelProto) -> set[tuple[str, int]]:
    return {(opset.domain, opset.version) for opset in model.opset_import}


def _predict(model: onnx.ModelProto, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return OrtRunner(model.SerializeToString()).predict(data)


def test_pointer_net_loses_shape_arithmetic_and_keeps_its_outputs():
    model = onnx.load(TSP_MODEL)
    plain = ort_optimize(fold_linear_batchnorm(model), "basic")
    prepared = prepare_model(model)
    before, after = _ops(plain), _ops(prepared)
    assert after["Shape"] < before["Shape"] and after["If"] < before["If"]
    assert [o.name for o in prepared.graph.output] == [o.name for o in model.graph.output]
    data = {"points": np.load(TSP_DATA)["points"][:64]}
    expected, actual = _predict(model, data), _predict(prepared, data)
    assert np.array_equal(actual["tour"], expected["tour"])
    np.testing.assert_allclose(actual["logits"], expected["logits"], rtol=0, atol=1e-6)


class SqueezeAndView(nn.Module):
    """Torch's squeeze-if-size-1 `If` and Slice ends computed from static dims behind a dynamic batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = x[:, : x.shape[1] // 6].squeeze(1)
        return self.fc(head).view(x.shape[0], -1) + x[:, x.shape[1] - 1, : x.shape[2] - 1]


def test_torch_export_with_dynamic_batch_folds_and_runs_at_any_batch():
    buffer = io.BytesIO()
    torch.onnx.export(
        SqueezeAndView().eval(),
        (torch.randn(2, 6, 4),),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )
    model = onnx.load_from_string(buffer.getvalue())
    plain = ort_optimize(model, "basic")
    simplified = simplify_static_shapes(plain)
    assert _ops(simplified)["If"] == 0 and len(simplified.graph.node) < len(plain.graph.node)
    assert _opsets(simplified) == _opsets(plain)
    for batch in (1, 5):
        data = {"x": np.random.default_rng(batch).standard_normal((batch, 6, 4)).astype(np.float32)}
        expected, actual = _predict(model, data), _predict(simplified, data)
        assert actual["y"].shape == (batch, 3)
        assert np.array_equal(actual["y"], expected["y"])


def _model(nodes: list[onnx.NodeProto], output: onnx.ValueInfoProto, **constants: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [output],
        [numpy_helper.from_array(np.array(value, np.int64), name) for name, value in constants.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_models_with_nothing_to_fold_or_that_onnxoptimizer_rejects_come_back_unchanged():
    no_shape = _model(
        [helper.make_node("Relu", ["x"], ["y"])], helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    )
    dynamic_only = _model(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i"], ["y"])],
        helper.make_tensor_value_info("y", TensorProto.INT64, []),
        i=0,
    )
    # Gather index 5 of a rank-2 shape: onnxoptimizer's eliminate_shape_gather asserts (RuntimeError).
    rejected = _model(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i"], ["y"])],
        helper.make_tensor_value_info("y", TensorProto.INT64, []),
        i=5,
    )
    for model in (no_shape, dynamic_only, rejected):
        assert simplify_static_shapes(model) is model


def test_a_fold_that_changes_outputs_on_the_check_data_is_refused(monkeypatch):
    """onnx/optimizer has open reports of shape passes changing results: the check data catches one."""
    import edgeq.passes.simplify as simplify

    real_optimize = simplify.onnxoptimizer.optimize

    def miscompiling_optimize(model, passes):
        optimized = real_optimize(model, passes)
        weights = max(optimized.graph.initializer, key=lambda t: np.prod(t.dims))
        weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) + 1, weights.name))
        return optimized

    model = ort_optimize(onnx.load(TSP_MODEL), "basic")
    data = {"points": np.load(TSP_DATA)["points"][:16]}
    assert len(simplify_static_shapes(model, check=data).graph.node) < len(model.graph.node)
    monkeypatch.setattr(simplify.onnxoptimizer, "optimize", miscompiling_optimize)
    assert simplify_static_shapes(model, check=data) is model
