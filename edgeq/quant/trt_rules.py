"""TensorRT's explicit-quantization rules, checked on a QDQ graph before any engine build.

A graph that breaks them either fails TensorRT's ONNX parser (int32 or asymmetric DQ) or builds an
engine that silently runs layers in float; finding it here works on machines without TensorRT.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgeq.graph import GraphIndex, attribute
from edgeq.graph.ops import (
    DEFAULT_DOMAINS,
    INTEGER_OPS,
    LAYER_OPS,
    LINEAR_OPS,
    QDQ_OPS,
    WEIGHTED_OPS,
    output_axis,
)

# Ops TensorRT runs on INT8 inputs (weighted layers, residual Add, pooling, data movement).
QUANTIZED_CONSUMERS = WEIGHTED_OPS | {
    "Add",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Slice",
}
INT8_TYPES = frozenset({onnx.TensorProto.INT8})
INT4_TYPES = frozenset({onnx.TensorProto.INT4, onnx.TensorProto.UINT4})


def check_tensorrt_placement(model: onnx.ModelProto) -> list[str]:
    """Human-readable violations of TensorRT's Q/DQ rules; an empty list means the graph follows them."""
    index = GraphIndex(model.graph)
    violations: list[str] = []
    for node in model.graph.node:
        if node.op_type in INTEGER_OPS or node.domain not in DEFAULT_DOMAINS:
            violations.append(
                f"{node.op_type} {node.name!r}: TensorRT's parser has no importer for it; "
                "quantize in Q/DQ form (static mode) for TensorRT"
            )
        if node.op_type in QDQ_OPS:
            violations += _check_qdq_node(node, index)
        if node.op_type in LAYER_OPS:
            violations += _check_weighted(node, index)
        if node.op_type == "Add":
            violations += _check_residual_add(node, index)
        if node.op_type == "QuantizeLinear":
            violations += _check_output_q(node, index)
    return violations


def _check_qdq_node(node: onnx.NodeProto, index: GraphIndex) -> list[str]:
    """Constant scales and zero points, zero points of 0 in a signed type, per-tensor activations."""
    where = f"{node.op_type} {node.name!r}"
    scale = index.constant(node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        return [f"{where}: scale must be a constant initializer"]
    problems = []
    zero_name = node.input[2] if len(node.input) > 2 else ""
    zero = index.constant(zero_name) if zero_name else None
    if zero_name and zero is None:
        problems.append(f"{where}: zero point must be a constant initializer")
    elif zero is not None:
        if zero.dtype == np.uint8 or _elem_type(index, zero_name) == onnx.TensorProto.UINT4:
            problems.append(f"{where}: unsigned zero point; TensorRT quantizes to signed INT8/INT4")
        if np.any(zero.astype(np.int64) != 0):
            problems.append(f"{where}: zero point {_show(zero)} is not 0; TensorRT is symmetric only")
    if _is_activation(node, index) and scale.size != 1:
        problems.append(
            f"{where}: activation {node.input[0]!r} has {scale.size} scales; TensorRT takes one "
            "scale per activation tensor"
        )
    if node.op_type == "DequantizeLinear":
        problems += _check_dq_type(node, index, where)
    return problems


def _check_dq_type(node: onnx.NodeProto, index: GraphIndex, where: str) -> list[str]:
    """DQ inputs TensorRT parses: INT8, and INT4 only as blocked MatMul/Gemm weights."""
    kind = _elem_type(index, node.input[0])
    blocked = attribute(node, "block_size", 0)
    if kind in INT4_TYPES:
        if not blocked:
            return [f"{where}: INT4 dequantization needs block_size (blocked weights, opset 21)"]
        if not any(_weight_slot(c, node.output[0]) for c in index.consumers.get(node.output[0], [])):
            return [f"{where}: INT4 blocks are only read as MatMul/Gemm weights"]
        return []
    if kind is not None and kind not in INT8_TYPES:
        name = onnx.TensorProto.DataType.Name(kind)
        return [
            f"{where}: dequantizes {name}; TensorRT's parser takes INT8 (or blocked INT4) only — "
            "keep biases in float"
        ]
    if blocked:
        return [f"{where}: block_size on INT8 data; TensorRT reads blocked INT4 weights only"]
    return []


def _check_weighted(node: onnx.NodeProto, index: GraphIndex) -> list[str]:
    """Per-channel weights on the output-channel axis and a Q/DQ'd activation input."""
    problems = []
    where = f"{node.op_type} {node.name!r}"
    weight = _weight_dq(node, index)
    if weight is None:
        return []
    dq, position = weight
    problems += _check_weight_axis(node, dq, position, index, where)
    if _int4(dq, index):
        return problems  # weight-only INT4: activations stay in float on purpose
    for i, tensor in enumerate(node.input[:2]):
        if i != position and not _from_activation_dq(tensor, index):
            problems.append(
                f"{where}: weights are quantized but input {tensor!r} has no Q/DQ; TensorRT "
                "needs both inputs quantized to run it in INT8"
            )
    return problems


def _check_weight_axis(node, dq, position, index, where) -> list[str]:
    scale = index.constant(dq.input[1])
    values = index.constant(dq.input[0])
    if scale is None or values is None or scale.size == 1 or attribute(dq, "block_size", 0):
        return []
    expected = _output_channel_axis(node, position, values.ndim)
    axis = attribute(dq, "axis", 1) % max(values.ndim, 1)
    if axis != expected:
        return [
            f"{where}: weight {dq.input[0]!r} is quantized per channel on axis {axis}; TensorRT "
            f"needs the output-channel axis {expected}"
        ]
    if scale.size != values.shape[expected]:
        return [f"{where}: weight has {scale.size} scales for {values.shape[expected]} channels"]
    return []


def _output_channel_axis(node: onnx.NodeProto, position: int, ndim: int) -> int:
    """`ops.output_axis` for the weight at input 1; a MatMul's A at input 0 [.., M, K]: its rows."""
    if node.op_type == "MatMul" and position == 0:
        return ndim - 2
    return output_axis(node.op_type, attribute(node, "transB", 0)) % ndim


def _check_residual_add(node: onnx.NodeProto, index: GraphIndex) -> list[str]:
    data = [t for t in node.input if t and not index.is_constant(t)]
    if len(data) != 2:
        return []
    quantized = [_from_activation_dq(t, index) for t in data]
    if any(quantized) and not all(quantized):
        missing = data[quantized.index(False)]
        return [
            f"Add {node.name!r}: input {missing!r} has no Q/DQ while the other has; quantize both "
            "inputs of a residual Add so TensorRT can fuse it into the convolution"
        ]
    return []


def _check_output_q(node: onnx.NodeProto, index: GraphIndex) -> list[str]:
    """A Q on a weighted op's output is wasted work unless an INT8-capable op reads it."""
    producer = index.producer.get(node.input[0])
    if producer is None or producer.op_type not in WEIGHTED_OPS:
        return []
    readers = [
        consumer
        for dq in index.consumers.get(node.output[0], [])
        if dq.op_type == "DequantizeLinear"
        for consumer in index.consumers.get(dq.output[0], [])
    ]
    if any(r.op_type in QUANTIZED_CONSUMERS for r in readers):
        return []
    return [
        f"QuantizeLinear {node.name!r}: quantizes the output of {producer.op_type} "
        f"{producer.name!r} but no INT8-capable op reads it; drop it (TensorRT propagates scales)"
    ]


def _weight_dq(node: onnx.NodeProto, index: GraphIndex) -> tuple[onnx.NodeProto, int] | None:
    """The DQ of constant weights feeding input 0 or 1 of a weighted op, and which input it is."""
    for position in (1, 0):
        if position >= len(node.input):
            continue
        producer = index.producer.get(node.input[position])
        if producer is None or producer.op_type != "DequantizeLinear":
            continue
        if index.is_constant(producer.input[0]) or _quantized_constant(producer, index):
            return producer, position
    return None


def _quantized_constant(dq: onnx.NodeProto, index: GraphIndex) -> bool:
    """DQ(Q(float weight)): TensorRT quantizes such weights itself at build time."""
    q = index.producer.get(dq.input[0])
    return q is not None and q.op_type == "QuantizeLinear" and index.is_constant(q.input[0])


def _from_activation_dq(tensor: str, index: GraphIndex) -> bool:
    producer = index.producer.get(tensor)
    if producer is None or producer.op_type != "DequantizeLinear":
        return False
    q = index.producer.get(producer.input[0])
    return q is not None and q.op_type == "QuantizeLinear" and not index.is_constant(q.input[0])


def _is_activation(node: onnx.NodeProto, index: GraphIndex) -> bool:
    if node.op_type == "QuantizeLinear":
        return not index.is_constant(node.input[0])
    q = index.producer.get(node.input[0])
    return q is not None and q.op_type == "QuantizeLinear" and not index.is_constant(q.input[0])


def _weight_slot(consumer: onnx.NodeProto, tensor: str) -> bool:
    return consumer.op_type in LINEAR_OPS and list(consumer.input[1:2]) == [tensor]


def _int4(dq: onnx.NodeProto, index: GraphIndex) -> bool:
    return _elem_type(index, dq.input[0]) in INT4_TYPES


def _elem_type(index: GraphIndex, name: str) -> int | None:
    """ONNX element type of an initializer or Constant (None for computed tensors)."""
    if name in index.initializers:
        return index.initializers[name].data_type
    node = index.producer.get(name)
    if node is not None and node.op_type == "Constant":
        return onnx.helper.get_attribute_value(node.attribute[0]).data_type
    if node is not None and node.op_type == "QuantizeLinear":
        return _q_output_type(node, index)
    return None


def _q_output_type(node: onnx.NodeProto, index: GraphIndex) -> int:
    """A Q's output type: its zero point's, else its output_dtype attribute, else UINT8 (ONNX default)."""
    if len(node.input) > 2 and node.input[2]:
        zero_type = _elem_type(index, node.input[2])
        if zero_type is not None:
            return zero_type
    return attribute(node, "output_dtype", 0) or onnx.TensorProto.UINT8


def _show(values: np.ndarray) -> str:
    flat = values.reshape(-1)
    return str(flat[0].item()) if flat.size == 1 else f"{flat[:4].tolist()}{'...' if flat.size > 4 else ''}"
