"""Rewrite an fp32 graph into standard QDQ ONNX from a plan and measured activation ranges."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeq.graph import GraphIndex, drop_unused_initializers
from edgeq.quant.plan import QuantPlan
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
    """Accumulates Q/DQ nodes and quantized initializers for one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.ModelProto.FromString(model.SerializeToString())
        self.graph = self.model.graph
        self.index = GraphIndex(self.graph)
        self.nodes_by_name = {n.name: n for n in self.graph.node}
        self.new_nodes: dict[str, list[onnx.NodeProto]] = {}  # after the producer of a tensor; "" first

    def constant(self, name: str, value: np.ndarray) -> str:
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def add_node(self, node: onnx.NodeProto, after: str = "") -> None:
        """Queue a node to go right after the producer of tensor `after` (graph start if none)."""
        key = after if after in self.index.producer else ""
        self.new_nodes.setdefault(key, []).append(node)

    def dequantize_node(self, source: str, scale: str, zero: str, output: str, axis=None, after=""):
        attrs = {} if axis is None else {"axis": axis}
        self.add_node(
            helper.make_node(
                "DequantizeLinear", [source, scale, zero], [output], name=output + "_node", **attrs
            ),
            after,
        )

    def finish(self) -> onnx.ModelProto:
        """Splice the queued nodes in, keeping the original topological order."""
        ordered = list(self.new_nodes.get("", []))
        for node in self.graph.node:
            ordered.append(node)
            for output in node.output:
                ordered.extend(self.new_nodes.get(output, []))
        copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
        del self.graph.node[:]
        self.graph.node.extend(copies)
        drop_unused_initializers(self.graph)
        return self.model

    def quantize_activation(self, tensor: str, params: Params) -> str:
        """Insert T -> QuantizeLinear -> DequantizeLinear; returns the dequantized tensor's name."""
        scale = self.constant(f"{tensor}_scale", params[0].astype(np.float32).reshape(()))
        zero = self.constant(f"{tensor}_zero_point", params[1].reshape(()))
        self.add_node(
            helper.make_node(
                "QuantizeLinear",
                [tensor, scale, zero],
                [f"{tensor}_quantized"],
                name=f"{tensor}_QuantizeLinear",
            ),
            tensor,
        )
        self.dequantize_node(f"{tensor}_quantized", scale, zero, f"{tensor}_dequantized", after=tensor)
        return f"{tensor}_dequantized"

    def quantize_weight(
        self, name: str, value: np.ndarray, fmt: QuantFormat, axis, q: np.ndarray | None = None
    ) -> tuple[str, np.ndarray]:
        """Replace a float weight by its int8 values + DQ; returns the DQ output and the scales.

        `q` (e.g. AdaRound's) replaces round-to-nearest; it must use `weight_params` scales."""
        scale, zero = weight_params(value, fmt, axis)
        if q is None:
            q = quantize(value, scale, zero, fmt, axis=axis)
        elif q.shape != value.shape or q.dtype != fmt.numpy_dtype:
            raise ValueError(f"integer weights for {name!r} must be {fmt.numpy_dtype} {value.shape}")
        base = f"{name}_{axis}" if axis is not None else name
        scale_name = self.constant(f"{base}_scale", scale.astype(np.float32))
        zero_name = self.constant(f"{base}_zero_point", zero)
        self.constant(f"{base}_quantized", q)
        self.dequantize_node(f"{base}_quantized", scale_name, zero_name, f"{base}_dequantized", axis)
        return f"{base}_dequantized", scale

    def quantize_bias(self, name: str, value: np.ndarray, scale: np.ndarray) -> str:
        """Int32 bias with scale = input scale x weight scale, as integer kernels accumulate it.

        `name` is the consuming node's: a bias shared by two nodes gets one int32 copy per scale.
        """
        scale = np.broadcast_to(scale, value.shape).astype(np.float32)
        q = np.clip(np.rint(value / scale), -(2**31), 2**31 - 1).astype(np.int32)
        scale_name = self.constant(f"{name}_bias_scale", scale)
        zero_name = self.constant(f"{name}_bias_zero_point", np.zeros(value.shape, np.int32))
        self.constant(f"{name}_bias_quantized", q)
        self.dequantize_node(f"{name}_bias_quantized", scale_name, zero_name, f"{name}_bias_dequantized", 0)
        return f"{name}_bias_dequantized"


def activation_params(
    plan: QuantPlan, ranges: Mapping[str, tuple[float, float]], fmt: QuantFormat
) -> dict[str, Params]:
    """Scale and zero point of every Q/DQ'd activation; pass-through ops reuse their input's."""
    params: dict[str, Params] = {}
    for tensor in plan.activations:
        if tensor in plan.shared_params:
            params[tensor] = params[plan.shared_params[tensor]]
            continue
        lo, hi = ranges[plan.folded_relu.get(tensor, tensor)]
        scale, zero = scale_zero_point(np.float32(lo), np.float32(hi), fmt)
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
    index, graph = writer.index, writer.graph
    params = activation_params(plan, ranges, activation_format(scheme))
    quantized = plan.quantized
    for tensor in plan.activations:
        dequantized = writer.quantize_activation(tensor, params[tensor])
        producer = index.producer.get(tensor)
        rewire_all = producer is not None and producer.name in quantized and tensor not in index.outputs
        consumers = list(index.consumers.get(tensor, []))
        relu = consumers[0] if tensor in plan.folded_relu else None
        for consumer in consumers:
            if consumer is relu:
                _bypass(graph, relu, dequantized)
            elif rewire_all or consumer.name in quantized:
                _replace_input(consumer, tensor, dequantized)
    _quantize_weights(writer, plan, params, weight_format(scheme), weight_overrides or {})
    return writer.finish()


def _quantize_weights(
    writer: QdqWriter, plan: QuantPlan, params, fmt: QuantFormat, overrides: Mapping
) -> None:
    weight_scales: dict[str, np.ndarray] = {}
    done: dict[tuple[str, int | None], tuple[str, np.ndarray]] = {}  # tied weights quantized once
    for spec in plan.weights:
        node = writer.nodes_by_name[spec.node]
        name = node.input[spec.input_index]
        value = writer.index.constant(name)
        if value is None or value.dtype != np.float32:
            continue
        axis = None if spec.axis is None or value.ndim < 2 else spec.axis % value.ndim
        if (name, axis) not in done:
            done[(name, axis)] = writer.quantize_weight(name, value, fmt, axis, overrides.get(name))
        node.input[spec.input_index], weight_scales[spec.node] = done[(name, axis)]
    for node_name, position in plan.biases:
        node = writer.nodes_by_name[node_name]
        bias = writer.index.constant(node.input[position])
        activation = node.input[0].removesuffix("_dequantized")
        if bias is None or bias.ndim != 1 or node_name not in weight_scales or activation not in params:
            continue
        scale = params[activation][0] * weight_scales[node_name].reshape(-1)
        if scale.size not in (1, bias.size):
            continue
        node.input[position] = writer.quantize_bias(node_name, bias, scale)


def _replace_input(node: onnx.NodeProto, old: str, new: str) -> None:
    for i, name in enumerate(node.input):
        if name == old:
            node.input[i] = new


def _bypass(graph: onnx.GraphProto, relu: onnx.NodeProto, replacement: str) -> None:
    """Remove a ReLU whose work the following uint8 Q clamp already does."""
    output = relu.output[0]
    for node in graph.node:
        _replace_input(node, output, replacement)
    graph.node.remove(relu)
