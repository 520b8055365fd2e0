"""Find channel groups: every tensor axis and weight axis that indexes the same features.

A group starts at a weight layer's output and follows the stream through channel-wise ops and
residual Add/Sub to every reader, so that removing channel j from all of its slots keeps the graph
valid. Anything not understood (Concat, Reshape, Transpose, Softmax, normalisations, graph inputs
and outputs, protected names) blocks the group: it is reported but never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx

from edgeq.graph import attribute
from edgeq.graph.ops import (
    ADDITIVE,
    ELEMENTWISE_BINARY,
    HOMOGENEOUS_UNARY,
    MULTIPLICATIVE,
    NONHOMOGENEOUS_UNARY,
    POOLING,
    REDUCTIONS,
    WeightedLayer,
)
from edgeq.passes.ifm.graph_index import StreamIndex
from edgeq.passes.ifm.layers import weight_layer

SlotRole = Literal["incoming", "bias", "outgoing"]


@dataclass(frozen=True)
class Slot:
    """One initializer axis indexed by the group's channels, and how a merge treats it."""

    initializer: str
    axis: int
    role: SlotRole  # incoming weight rows, incoming 1-D constants, or outgoing weight columns
    node: str


@dataclass
class ChannelGroup:
    """Stream tensors (name -> channel axis counted from the end) and the slots they touch."""

    width: int
    tensors: dict[str, int] = field(default_factory=dict)
    slots: list[Slot] = field(default_factory=list)
    homogeneous: bool = True
    blocked_by: str | None = None

    @property
    def mergeable(self) -> bool:
        return self.blocked_by is None and any(s.role == "outgoing" for s in self.slots)


class _GroupBuilder:
    """Grows one group from a weight layer's output until every member tensor is explained."""

    def __init__(self, index: StreamIndex, width: int, protected: frozenset[str]) -> None:
        self.index = index
        self.protected = protected
        self.group = ChannelGroup(width=width)
        self.pending: list[str] = []
        self.handled: set[tuple[int, str]] = set()

    def block(self, reason: str) -> None:
        if self.group.blocked_by is None:
            self.group.blocked_by = reason

    def add_tensor(self, name: str, axis: int) -> None:
        known = self.group.tensors.get(name)
        if known is None:
            self.group.tensors[name] = axis
            self.pending.append(name)
        elif known != axis:
            self.block(f"{name} is reached with two different channel axes")

    def run(self) -> ChannelGroup:
        while self.pending:
            name = self.pending.pop()
            self.check_boundaries(name)
            self.explain_producer(name)
            for node in self.index.consumers.get(name, []):
                self.explain_consumer(node, name)
        return self.group

    def check_boundaries(self, name: str) -> None:
        if name in self.index.outputs:
            self.block(f"reaches graph output {name}")
        if name in self.index.graph_inputs:
            self.block(f"reaches graph input {name}")
        if name in self.protected:
            self.block(f"tensor {name} is protected")
        if name in self.index.subgraph_references:
            self.block(f"{name} is read inside a subgraph")

    def first_visit(self, node: onnx.NodeProto, role: str) -> bool:
        key = (id(node), role)
        if key in self.handled:
            return False
        self.handled.add(key)
        if node.name and node.name in self.protected:
            self.block(f"node {node.name} is protected")
        return True

    def explain_producer(self, name: str) -> None:
        node = self.index.producer.get(name)
        if node is None:
            if name not in self.index.graph_inputs:
                self.block(f"{name} has no producing node")
            return
        layer = weight_layer(node, self.index)
        if layer is not None and node.output[0] == name:
            if self.first_visit(node, "produce"):
                self.add_producer(layer, name)
        elif self.first_visit(node, "pass"):
            self.absorb(node, name)

    def explain_consumer(self, node: onnx.NodeProto, name: str) -> None:
        layer = weight_layer(node, self.index)
        if layer is not None:
            if self.first_visit(node, "consume"):
                self.add_consumer(layer, name)
        elif self.first_visit(node, "pass"):
            self.absorb(node, name)

    def check_weight(self, layer: WeightedLayer, name: str, axis: int) -> bool:
        """Whether the layer's weight can be resized along `axis` for this group."""
        dims = self.index.initializers[layer.weight].dims
        problem = None
        if layer.groups != 1:
            problem = f"grouped/depthwise {layer.node.op_type} {layer.label}"
        elif self.group.tensors[name] != layer.stream_axis:
            problem = f"{layer.label} uses {name} along another axis"
        elif dims[axis] != self.group.width:
            problem = f"{layer.label} has {dims[axis]} channels, stream {self.group.width}"
        elif not self.index.is_rewritable_initializer(layer.weight):
            problem = f"weight {layer.weight} is shared or not float"
        elif layer.weight in self.protected:
            problem = f"weight {layer.weight} is protected"
        if problem:
            self.block(problem)
        return problem is None

    def add_producer(self, layer: WeightedLayer, name: str) -> None:
        if not self.check_weight(layer, name, layer.out_axis):
            return
        self.group.slots.append(Slot(layer.weight, layer.out_axis, "incoming", layer.label))
        if layer.bias is not None:
            self.add_per_channel_constant(layer.bias, -1, layer.label)

    def add_consumer(self, layer: WeightedLayer, name: str) -> None:
        if list(layer.node.input).index(name) != 0 or name in layer.node.input[1:]:
            self.block(f"{layer.label} reads {name} as a weight or bias")
        elif self.check_weight(layer, name, layer.in_axis):
            self.group.slots.append(Slot(layer.weight, layer.in_axis, "outgoing", layer.label))

    def add_per_channel_constant(self, name: str, axis: int, node_label: str) -> None:
        """A constant added to the stream: merged like the incoming weights (a bias)."""
        tensor = self.index.initializers.get(name)
        dims = list(tensor.dims) if tensor is not None else []
        position = len(dims) + axis
        if (
            tensor is None
            or position < 0
            or dims[position] != self.group.width
            or any(d != 1 for i, d in enumerate(dims) if i != position)
            or not self.index.is_rewritable_initializer(name)
        ):
            self.block(f"{node_label} adds {name}, which is not a per-channel initializer")
        else:
            self.group.slots.append(Slot(name, position, "bias", node_label))

    def absorb(self, node: onnx.NodeProto, via: str) -> None:
        op = node.op_type
        if op in HOMOGENEOUS_UNARY | POOLING | NONHOMOGENEOUS_UNARY:
            self.absorb_unary(node, via)
        elif op in ELEMENTWISE_BINARY:
            self.absorb_binary(node, via)
        elif op == "Flatten":
            self.absorb_flatten(node)
        elif op in REDUCTIONS:
            self.absorb_reduction(node, via)
        else:
            self.block(f"{op} node {node.name or node.output[0]} touches {via}")

    def absorb_unary(self, node: onnx.NodeProto, via: str) -> None:
        axis = self.group.tensors[via]
        stream_input, extra_inputs = node.input[0], [n for n in node.input[1:] if n]
        used_outputs = [
            n for n in node.output[1:] if n and (self.index.consumers.get(n) or n in self.index.outputs)
        ]
        rank = self.index.rank(stream_input)
        if via in extra_inputs or used_outputs:
            self.block(f"{node.op_type} {node.name} uses {via} in a way IFM does not model")
            return
        if any(not _is_scalar(self.index.constant(n)) for n in extra_inputs):
            self.block(f"{node.op_type} {node.name} has non-scalar parameters")
            return
        if node.op_type in POOLING and (rank is None or axis != -(rank - 1)):
            self.block(f"{node.op_type} {node.name} does not pool over axes after the channels")
            return
        if node.op_type in NONHOMOGENEOUS_UNARY:
            self.group.homogeneous = False
        self.add_tensor(stream_input, axis)
        self.add_tensor(node.output[0], axis)

    def absorb_binary(self, node: onnx.NodeProto, via: str) -> None:
        axis = self.group.tensors[via]
        streams = 0
        for position, name in enumerate(node.input):
            value = None if name in self.group.tensors else self.index.constant(name)
            if value is None:
                streams += 1
                self.add_tensor(name, axis)
            else:
                self.absorb_constant_operand(node, position, name, value, axis)
        if streams == 2 and node.op_type in MULTIPLICATIVE:
            self.group.homogeneous = False
        self.add_tensor(node.output[0], axis)

    def absorb_constant_operand(
        self, node: onnx.NodeProto, position: int, name: str, value: np.ndarray, axis: int
    ) -> None:
        channel_position = value.ndim + axis
        uniform = channel_position < 0 or value.shape[channel_position] == 1
        op = node.op_type
        if uniform:
            scales_stream = op == "Mul" or (op == "Div" and position == 1)
            self.group.homogeneous &= scales_stream
        elif op in ADDITIVE:
            self.add_per_channel_constant(name, axis, node.name or node.output[0])
        else:
            self.block(f"{op} {node.name} scales channels by a per-channel constant")

    def absorb_flatten(self, node: onnx.NodeProto) -> None:
        shape = self.index.shapes.get(node.input[0])
        if shape is None or attribute(node, "axis", 1) != 1 or any(dim != 1 for dim in shape[2:]):
            self.block(f"Flatten {node.name} mixes channels with other axes")
            return
        self.add_tensor(node.input[0], -(len(shape) - 1))
        self.add_tensor(node.output[0], -1)

    def absorb_reduction(self, node: onnx.NodeProto, via: str) -> None:
        rank = self.index.rank(node.input[0])
        axes = _reduction_axes(node, self.index)
        if rank is None or not axes:
            self.block(f"{node.op_type} {node.name} reduces unknown axes")
            return
        axes = {a % rank for a in axes}
        keep = attribute(node, "keepdims", 1)
        mapping = {a: _reduced_axis(a, rank, axes, keep) for a in range(-rank, 0) if (rank + a) not in axes}
        if via == node.input[0]:
            in_axis = self.group.tensors[via]
        else:
            in_axis = next((a for a, out in mapping.items() if out == self.group.tensors[via]), None)
        if in_axis not in mapping:
            self.block(f"{node.op_type} {node.name} reduces over the channel axis")
            return
        self.add_tensor(node.input[0], in_axis)
        self.add_tensor(node.output[0], mapping[in_axis])


def _is_scalar(value: np.ndarray | None) -> bool:
    return value is not None and value.size == 1


def _reduction_axes(node: onnx.NodeProto, index: StreamIndex) -> list[int] | None:
    axes = attribute(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        value = index.constant(node.input[1])
        axes = None if value is None else value.reshape(-1).tolist()
    return None if axes is None else list(axes)


def _reduced_axis(axis: int, rank: int, reduced: set[int], keepdims: int) -> int:
    """Where a kept axis (counted from the end) lands after the reduction."""
    if keepdims:
        return axis
    position = rank + axis
    new_rank = rank - len(reduced)
    return position - sum(1 for r in reduced if r < position) - new_rank


def find_channel_groups(
    model_index: StreamIndex, protected: frozenset[str] = frozenset()
) -> list[ChannelGroup]:
    """One group per distinct stream that starts at a weight layer, in graph order."""
    claimed: set[str] = set()
    groups = []
    for node in model_index.graph.node:
        layer = weight_layer(node, model_index)
        if layer is None or node.output[0] in claimed:
            continue
        width = model_index.initializers[layer.weight].dims[layer.out_axis]
        builder = _GroupBuilder(model_index, width, protected)
        builder.add_tensor(node.output[0], layer.stream_axis)
        group = builder.run()
        claimed |= group.tensors.keys()
        groups.append(group)
    return groups
