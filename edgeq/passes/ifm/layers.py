"""Weight layers IFM can resize (Gemm, MatMul, Conv, ConvTranspose) and what they cost."""

from __future__ import annotations

import math

import onnx

from edgeq.graph.ops import WeightedLayer, optional_input, weighted_layer
from edgeq.passes.ifm.graph_index import StreamIndex


def weight_layer(node: onnx.NodeProto, index: StreamIndex) -> WeightedLayer | None:
    """The node as a weighted layer when its weight is an initializer, else None."""
    weight = optional_input(node, 1)
    tensor = index.initializers.get(weight) if weight else None
    return None if tensor is None else weighted_layer(node, len(tensor.dims))


def _static_product(dims) -> int | None:
    if any(dim is None or dim <= 0 for dim in dims):
        return None
    return math.prod(dims)


def layer_flops(layer: WeightedLayer, index: StreamIndex) -> int | None:
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


def layer_parameters(layer: WeightedLayer, index: StreamIndex) -> int:
    names = [layer.weight] + ([layer.bias] if layer.bias in index.initializers else [])
    return sum(math.prod(index.initializers[name].dims) for name in names)
