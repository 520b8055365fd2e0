"""Rewrite an fp32 graph into standard QDQ ONNX from a plan and measured activation ranges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import onnx
import onnx_ir as ir

from edgeq.graph import default_opset
from edgeq.graph.edit import GraphEditor
from edgeq.quant.plan import PER_CHANNEL_OPSET, QuantPlan
from edgeq.quant.primitives import QuantFormat, quantize, scale_zero_point, weight_params
from edgeq.targets import Int8Scheme

Params = tuple[np.ndarray, np.ndarray]


def activation_format(scheme: Int8Scheme) -> QuantFormat:
    return QuantFormat(bits=8, signed=scheme.activations.signed, symmetric=scheme.activations.symmetric)


def weight_format(scheme: Int8Scheme) -> QuantFormat:
    return QuantFormat(
        bits=8,
        signed=True,
        symmetric=True,
        narrow_range=True,
        reduce_range=scheme.weights.reduce_range,
    )


class QdqWriter:
    """Adds Q/DQ nodes and quantized initializers to one graph through the graph editor."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.editor = GraphEditor(model)
        self.sources: dict[ir.Value, str] = {}  # a DQ output -> the activation it dequantizes
        self.per_channel = default_opset(model) >= PER_CHANNEL_OPSET  # DequantizeLinear has `axis`

    def dequantize(
        self, source: ir.Value, scale: ir.Value, zero: ir.Value, output: str, axis=None
    ) -> ir.Node:
        attributes = {} if axis is None else {"axis": axis}
        return self.editor.node(
            "DequantizeLinear", [source, scale, zero], [output], name=output + "_node", attributes=attributes
        )

    def quantize_activation(self, tensor: ir.Value, params: Params) -> ir.Value:
        """Insert T -> QuantizeLinear -> DequantizeLinear after T's producer; returns the DQ output."""
        editor, name = self.editor, tensor.name
        scale = editor.initializer(f"{name}_scale", params[0].astype(np.float32).reshape(()))
        zero = editor.initializer(f"{name}_zero_point", params[1].reshape(()))
        q = editor.node(
            "QuantizeLinear", [tensor, scale, zero], [f"{name}_quantized"], name=f"{name}_QuantizeLinear"
        )
        dq = self.dequantize(q.outputs[0], scale, zero, f"{name}_dequantized")
        editor.insert_after(tensor, [q, dq])
        self.sources[dq.outputs[0]] = name
        return dq.outputs[0]

    def quantize_weight(
        self, name: str, value: np.ndarray, fmt: QuantFormat, axis, q: np.ndarray | None = None
    ) -> tuple[ir.Value, np.ndarray]:
        """A float weight's int8 values + DQ (placed first); returns the DQ output and the scales.

        `q` (e.g. AdaRound's) replaces round-to-nearest; it must use `weight_params` scales."""
        scale, zero = weight_params(value, fmt, axis)
        if q is None:
            q = quantize(value, scale, zero, fmt, axis=axis)
        elif q.shape != value.shape or q.dtype != fmt.numpy_dtype:
            raise ValueError(f"integer weights for {name!r} must be {fmt.numpy_dtype} {value.shape}")
        base = f"{name}_{axis}" if axis is not None else name
        return self._dequantized_constant(base, q, scale.astype(np.float32), zero, axis), scale

    def quantize_bias(self, name: str, value: np.ndarray, scale: np.ndarray) -> ir.Value:
        """Int32 bias with scale = input scale x weight scale, as integer kernels accumulate it.

        `name` is the consuming node's: a bias shared by two nodes gets one int32 copy per scale.
        Below opset 13 (weights per tensor, one scale) the scale is a scalar: DQ has no `axis` there.
        """
        scale = np.broadcast_to(scale, value.shape).astype(np.float32)
        q = np.clip(np.rint(value / scale), -(2**31), 2**31 - 1).astype(np.int32)
        if not self.per_channel:
            return self._dequantized_constant(
                f"{name}_bias", q, np.asarray(scale.flat[0]), np.asarray(0, np.int32), None
            )
        return self._dequantized_constant(f"{name}_bias", q, scale, np.zeros(value.shape, np.int32), 0)

    def _dequantized_constant(self, base: str, q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis):
        editor = self.editor
        scale_value = editor.initializer(f"{base}_scale", scale)
        zero_value = editor.initializer(f"{base}_zero_point", zero)
        q_value = editor.initializer(f"{base}_quantized", q)
        dq = self.dequantize(q_value, scale_value, zero_value, f"{base}_dequantized", axis)
        editor.insert_first([dq])
        return dq.outputs[0]


def activation_params(
    plan: QuantPlan, ranges: Mapping[str, tuple[float, float]], fmt: QuantFormat
) -> dict[str, Params]:
    """Scale and zero point of every Q/DQ'd activation; pass-through ops reuse their input's
    (`QuantPlan.shares`)."""
    params: dict[str, Params] = {}
    for tensor in plan.activations:
        if (source := plan.shares(tensor)) is not None:
            params[tensor] = params[source]
            continue
        lo, hi = ranges[plan.folded_relu.get(tensor, tensor)]
        own = replace(fmt, signed=True, symmetric=True) if tensor in plan.signed else fmt
        scale, zero = scale_zero_point(np.float32(lo), np.float32(hi), own)
        params[tensor] = (np.asarray(scale), np.asarray(zero))
    return params


def rewrite_qdq(
    model: onnx.ModelProto,
    plan: QuantPlan,
    ranges: Mapping[str, tuple[float, float]],
    scheme: Int8Scheme,
    weight_overrides: Mapping[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """The QDQ model: activations, weights (per channel) and int32 biases of INT8 nodes quantized.

    `weight_overrides` maps weight initializer names to learned integer weights (AdaRound)."""
    writer = QdqWriter(model)
    editor = writer.editor
    params = activation_params(plan, ranges, activation_format(scheme))
    quantized = plan.quantized
    for name in plan.activations:
        tensor = editor.value(name)
        consumers = [node for node, _ in tensor.uses() if node.graph is editor.graph]  # not subgraphs
        dequantized = writer.quantize_activation(tensor, params[name])
        producer = tensor.producer()
        rewire_all = producer is not None and producer.name in quantized and not tensor.is_graph_output()
        relu = consumers[0] if name in plan.folded_relu else None
        for consumer in dict.fromkeys(consumers):
            if consumer is relu:
                editor.bypass(relu, dequantized)
            elif rewire_all or consumer.name in quantized:
                editor.rewire(consumer, tensor, dequantized)
    _quantize_weights(writer, plan, params, weight_format(scheme), weight_overrides or {})
    return editor.finish()


def rewrite_weights_only(model: onnx.ModelProto, plan: QuantPlan, scheme: Int8Scheme) -> onnx.ModelProto:
    """The plan's weights as int8 behind DequantizeLinear, activations and biases left float: the
    form OpenVINO runs as compressed-weight layers (quantizing their inputs itself, per call)."""
    only = replace(plan, activations=[], shared_params={}, folded_relu={}, biases=[])
    return rewrite_qdq(model, only, {}, scheme)


def _quantize_weights(
    writer: QdqWriter, plan: QuantPlan, params, fmt: QuantFormat, overrides: Mapping
) -> None:
    editor = writer.editor
    weight_scales: dict[str, np.ndarray] = {}
    done: dict[tuple[str, int | None], tuple[ir.Value, np.ndarray]] = {}  # tied weights quantized once
    for spec in plan.weights:
        node = editor.nodes[spec.node]
        weight = node.inputs[spec.input_index]
        value = editor.constant(weight)
        if value is None or value.dtype != np.float32:
            continue
        axis = None if spec.axis is None or value.ndim < 2 else spec.axis % value.ndim
        if (weight.name, axis) not in done:
            done[(weight.name, axis)] = writer.quantize_weight(
                weight.name, value, fmt, axis, overrides.get(weight.name)
            )
        dequantized, weight_scales[spec.node] = done[(weight.name, axis)]
        node.replace_input_with(spec.input_index, dequantized)
    for node_name, position in plan.biases:
        node = editor.nodes[node_name]
        bias = editor.constant(node.inputs[position])
        activation = writer.sources.get(node.inputs[0])
        if bias is None or bias.ndim != 1 or node_name not in weight_scales or activation not in params:
            continue
        scale = params[activation][0] * weight_scales[node_name].reshape(-1)
        if scale.size not in (1, bias.size):
            continue
        node.replace_input_with(position, writer.quantize_bias(node_name, bias, scale))
