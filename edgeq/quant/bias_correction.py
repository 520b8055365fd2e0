"""Empirical bias correction: quantized weights shift every output by (W_q − W)·E[x]; subtracting
that shift from the bias removes the mean error, which low-bit weights make large after ReLUs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgeq.graph import GraphIndex, attribute
from edgeq.graph.edit import GraphEditor
from edgeq.graph.ops import BIAS_INPUT_OPS
from edgeq.quant.layer_inputs import QuantizedLayer, input_means, planned_layers
from edgeq.quant.plan import QuantPlan
from edgeq.quant.primitives import QuantFormat, dequantize, quantize, weight_params


def corrected_biases(
    model: onnx.ModelProto,
    plan: QuantPlan,
    calib: Mapping[str, np.ndarray],
    fmt: QuantFormat,
    *,
    samples: int = 256,
    quantized_weights: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """New fp32 bias [out] by node name, b − (W_q − W)·E[x], for every planned Conv/Gemm/MatMul.

    W_q is round-to-nearest on the plan's axis, or `quantized_weights[initializer]` (e.g. AdaRound's
    integers). Layers without a bias get one; a MatMul's bias is its following constant Add's (see
    `apply_biases`). Values are what goes into the node's bias input (Gemm: before beta).
    """
    layers = planned_layers(model, plan, im2col=False)
    means = input_means(model, layers, calib, samples=samples)
    index = GraphIndex(model.graph)
    overrides = quantized_weights or {}
    biases = {}
    for layer in layers:
        q = overrides.get(layer.weight_name)
        delta = _weight_error(layer, fmt, q)
        shift = _output_shift(layer, delta, means[layer.node.name])
        current = _current_bias(layer, index)
        if current is None:
            continue
        bias, beta = current
        biases[layer.node.name] = (bias - shift / beta).astype(np.float32)
    return biases


def apply_biases(model: onnx.ModelProto, biases: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy with the given biases: Conv/Gemm bias input set (added if absent); a MatMul's goes
    into its sole following Add with a constant [N] operand, or into a new Add after it."""
    index = GraphIndex(model.graph)
    adds = {
        node.name: (add.name, _constant_position(add, index))
        for node in model.graph.node
        if node.name in biases and node.op_type == "MatMul" and (add := _bias_add(node, index)) is not None
    }
    editor = GraphEditor(model)
    for node in [n for n in editor.graph if n.name in biases]:
        bias = editor.initializer(f"{node.name}_corrected_bias", biases[node.name])
        if node.op_type in BIAS_INPUT_OPS:
            if len(node.inputs) < 3:
                node.resize_inputs(3)
            node.replace_input_with(2, bias)
        elif node.name in adds:
            add, position = adds[node.name]
            editor.nodes[add].replace_input_with(position, bias)
        else:  # a new Add after the MatMul takes over its output's name and readers
            output = node.outputs[0]
            add = editor.node("Add", [output, bias], name=f"{node.name}_bias")
            editor.interpose(output, add, f"{output.name}_before_bias")
    return editor.finish()


def _weight_error(layer: QuantizedLayer, fmt: QuantFormat, q: np.ndarray | None) -> np.ndarray:
    """W_q − W in the weight's own layout (float64)."""
    scale, zero = weight_params(layer.weight, fmt, layer.axis)
    if q is None:
        q = quantize(layer.weight, scale, zero, fmt, axis=layer.axis)
    dequantized = dequantize(q, scale, zero, axis=layer.axis)
    return dequantized.astype(np.float64) - layer.weight.astype(np.float64)


def _output_shift(layer: QuantizedLayer, delta: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(W_q − W)·E[x] per output; a Conv sums each kernel and pairs it with its channel's mean."""
    if layer.op_type != "Conv":
        alpha = attribute(layer.node, "alpha", 1.0) if layer.op_type == "Gemm" else 1.0
        return alpha * (layer.as_matrix(delta) @ mean)
    groups = attribute(layer.node, "group", 1)
    kernel_sums = delta.reshape(delta.shape[0], delta.shape[1], -1).sum(axis=2)  # [O, C/g]
    per_group = kernel_sums.reshape(groups, -1, kernel_sums.shape[1])  # [g, O/g, C/g]
    return np.einsum("goc,gc->go", per_group, mean.reshape(groups, -1)).reshape(-1)


def _current_bias(layer: QuantizedLayer, index: GraphIndex) -> tuple[np.ndarray, float] | None:
    """The bias the layer adds now ([out], zeros if none) and the factor the node scales it by;
    None when the bias is computed at run time (nothing constant to correct)."""
    outputs = layer.as_matrix(layer.weight).shape[0]
    node = layer.node
    if node.op_type == "MatMul":
        add = _bias_add(node, index)
        value = None if add is None else index.constant(add.input[_constant_position(add, index)])
        beta = 1.0
    else:
        has_bias = len(node.input) > 2 and bool(node.input[2])
        value = index.constant(node.input[2]) if has_bias else None
        if has_bias and value is None:
            return None
        beta = attribute(node, "beta", 1.0) if node.op_type == "Gemm" else 1.0
    if value is None:
        return np.zeros(outputs), beta
    return np.broadcast_to(value.astype(np.float64), (outputs,)).copy(), beta


def _bias_add(node: onnx.NodeProto, index: GraphIndex) -> onnx.NodeProto | None:
    """The Add that is a MatMul's sole consumer and adds a constant vector, else None."""
    output = node.output[0]
    consumers = index.consumers.get(output, [])
    if len(consumers) != 1 or consumers[0].op_type != "Add" or output in index.outputs:
        return None
    add = consumers[0]
    position = _constant_position(add, index)
    if position is None:
        return None
    value = index.constant(add.input[position])
    return add if value is not None and value.ndim <= 1 else None


def _constant_position(add: onnx.NodeProto, index: GraphIndex) -> int | None:
    constants = [i for i, name in enumerate(add.input) if index.is_constant(name)]
    return constants[0] if len(constants) == 1 else None
