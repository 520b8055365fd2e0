"""Weight layers IFM can resize (Gemm, MatMul, Conv, ConvTranspose) and what they cost."""

from __future__ import annotations

import math
from dataclasses import dataclass

import onnx

from edgeq.graph import attribute
from edgeq.passes.ifm.graph_index import StreamIndex


@dataclass(frozen=True)
class WeightLayer:
    """A node whose initializer weight has one axis per output and one per input channel."""

    node: onnx.NodeProto
    weight: str
    bias: str | None
    out_axis: int
    in_axis: int
    stream_axis: int  # channel axis of the data input and the output, counted from the end
    groups: int = 1

    @property
    def label(self) -> str:
        return self.node.name or f"{self.node.op_type}:{self.node.output[0]}"


def _optional_input(node: onnx.NodeProto, position: int) -> str | None:
    return node.input[position] if len(node.input) > position and node.input[position] else None


def weight_layer(node: onnx.NodeProto, index: StreamIndex) -> WeightLayer | None:
    """The node as a WeightLayer when its weight is an initializer, else None."""
    weight = _optional_input(node, 1)
    tensor = index.initializers.get(weight) if weight else None
    if tensor is None:
        return None
    rank = len(tensor.dims)
    op = node.op_type
    if op == "Gemm" and rank == 2 and not attribute(node, "transA", 0):
        out_axis = 0 if attribute(node, "transB", 0) else 1
        return WeightLayer(node, weight, _optional_input(node, 2), out_axis, 1 - out_axis, -1)
    if op == "MatMul" and rank == 2:
        return WeightLayer(node, weight, None, 1, 0, -1)
    if op in ("Conv", "ConvTranspose") and rank >= 3:
        out_axis = 0 if op == "Conv" else 1
        return WeightLayer(
            node,
            weight,
            _optional_input(node, 2),
            out_axis,
            1 - out_axis,
            -(rank - 1),
            attribute(node, "group", 1),
        )
    return None


def _static_product(dims) -> int | None:
    if any(dim is None or dim <= 0 for dim in dims):
        return None
    return math.prod(dims)


def layer_flops(layer: WeightLayer, index: StreamIndex) -> int | None:
    """FLOPs per sample (2 x multiply-accumulates); None when the spatial size is dynamic."""
    dims = tuple(index.initializers[layer.weight].dims)
    node = layer.node
    if node.op_type == "Gemm":
        return 2 * math.prod(dims)
    if node.op_type == "MatMul":
        data_shape = index.shapes.get(node.input[0])
        positions = None if data_shape is None else _static_product(data_shape[1:-1])
        return None if positions is None else 2 * positions * math.prod(dims)
    spatial_source = node.output[0] if node.op_type == "Conv" else node.input[0]
    shape = index.shapes.get(spatial_source)
    positions = None if shape is None else _static_product(shape[2:])
    return None if positions is None else 2 * positions * math.prod(dims)


def layer_parameters(layer: WeightLayer, index: StreamIndex) -> int:
    names = [layer.weight] + ([layer.bias] if layer.bias in index.initializers else [])
    return sum(math.prod(index.initializers[name].dims) for name in names)
