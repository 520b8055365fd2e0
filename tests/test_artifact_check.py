"""edgeq's own candidates are checked where they are compiled: one that ONNX Runtime refuses to load is
an internal error naming the cause, never a complaint about the user's model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeq.backends.registry import backend_for
from edgeq.errors import InputError, InternalError
from edgeq.stages.candidate import Candidate
from edgeq.stages.compile import compile_candidate
from edgeq.stages.lower import GIVEN_QDQ
from edgeq.targets import load_target
from tests.conftest import FAST_TARGET


def per_channel_dequantize_at_opset_12() -> onnx.ModelProto:
    """x @ DequantizeLinear(w, axis=1): the `axis` attribute does not exist before opset 13."""
    q = numpy_helper.from_array(np.ones((4, 3), np.int8), "w_q")
    scale = numpy_helper.from_array(np.full(3, 0.1, np.float32), "w_scale")
    zero = numpy_helper.from_array(np.zeros(3, np.int8), "w_zero")
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=1, name="dq"),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [q, scale, zero],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def test_an_invalid_edgeq_candidate_is_an_internal_error_with_the_cause(tmp_path):
    target = load_target(FAST_TARGET)
    candidate = Candidate("int8-static", per_channel_dequantize_at_opset_12())
    with pytest.raises(InternalError, match="edgeq wrote an invalid int8-static candidate.*axis"):
        compile_candidate(backend_for(target), target, candidate, tmp_path)


def test_a_given_quantized_model_that_does_not_load_stays_the_user_s_problem(tmp_path):
    target = load_target(FAST_TARGET)
    candidate = Candidate(GIVEN_QDQ, per_channel_dequantize_at_opset_12())
    with pytest.raises(InputError, match="ONNX Runtime cannot load the model"):
        compile_candidate(backend_for(target), target, candidate, tmp_path)
