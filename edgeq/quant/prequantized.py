"""Models that arrive already quantized (QAT exports, other tools): recognise their Q/DQ, check it
against the target, and never quantize twice."""

from __future__ import annotations

import numpy as np
import onnx

from edgeq.graph import GraphIndex
from edgeq.graph.ops import QDQ_OPS, WEIGHTED_OPS
from edgeq.quant.plan import NodeDecision, weight_axis
from edgeq.targets import Int8Scheme


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the graph already carries Q/DQ nodes."""
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def recognise(model: onnx.ModelProto, scheme: Int8Scheme) -> tuple[list[NodeDecision], list[str]]:
    """Each node's precision as the given Q/DQ defines it, and where it departs from the target."""
    index = GraphIndex(model.graph)
    decisions, problems = [], []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        weight_dq = (
            _dequantize_of(index, node.input[1])
            if node.op_type in WEIGHTED_OPS and len(node.input) > 1
            else None
        )
        if weight_dq is None:
            decisions.append(NodeDecision(node.name, node.op_type, "fp32", "no Q/DQ in the given model"))
            continue
        q = index.constant(weight_dq.input[0])
        bits = _bits(q)
        activation = _dequantize_of(index, node.input[0])
        precision = f"int{bits}" if activation is not None else f"int{bits}-weights"
        decisions.append(NodeDecision(node.name, node.op_type, precision, "quantized in the given model"))
        problems += _check(node, weight_dq, q, activation, index, scheme)
    return decisions, problems


def _dequantize_of(index: GraphIndex, tensor: str) -> onnx.NodeProto | None:
    producer = index.producer.get(tensor)
    return producer if producer is not None and producer.op_type == "DequantizeLinear" else None


def _bits(q: np.ndarray | None) -> int:
    """Weight bit width from the integer range actually used (QAT exports 4-bit weights as int8)."""
    if q is None or q.dtype.kind not in "iu":
        return 8
    peak = int(np.abs(q.astype(np.int32)).max(initial=0))
    return 4 if peak <= 7 else 8


def _check(node, weight_dq, q, activation, index: GraphIndex, scheme: Int8Scheme) -> list[str]:
    problems = []
    if scheme.weights.reduce_range and q is not None and np.abs(q.astype(np.int32)).max(initial=0) > 64:
        problems.append(
            f"{node.name}: weights use the full int8 range; this target expects 7-bit weights "
            "(reduce_range) so u8 x s8 pair sums cannot saturate without VNNI"
        )
    axis = next((a.i for a in weight_dq.attribute if a.name == "axis"), 1)
    scale = index.constant(weight_dq.input[1])
    expected = weight_axis(node, scheme)
    per_channel = scale is not None and scale.size > 1 and expected is not None and q is not None
    if per_channel and axis % q.ndim != expected % q.ndim:
        problems.append(f"{node.name}: per-channel weight axis {axis}, the output-channel axis is {expected}")
    if activation is not None and scheme.activations.symmetric:
        zero = index.constant(activation.input[2]) if len(activation.input) > 2 else None
        if zero is not None and np.any(zero != 0):
            problems.append(f"{node.name}: activation zero point is not 0; this target needs symmetric int8")
    return problems
