"""The graph facts IFM needs on top of `edgeq.graph.GraphIndex`: shapes, boundaries, subgraphs."""

from __future__ import annotations

import onnx

from edgeq.graph import GraphIndex

Shape = tuple  # dims are ints when static, None when symbolic or unknown

_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)


def _value_shape(value: onnx.ValueInfoProto) -> Shape | None:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim)


class StreamIndex(GraphIndex):
    """A shape-inferred graph's producers, consumers, shapes and boundaries, built once per pass."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        super().__init__(graph)
        self.shapes: dict[str, Shape] = {}
        for value in [*graph.input, *graph.value_info, *graph.output]:
            shape = _value_shape(value)
            if shape is not None:
                self.shapes[value.name] = shape
        self.shapes |= {name: tuple(tensor.dims) for name, tensor in self.initializers.items()}
        self.declared_inputs = {value.name for value in graph.input}
        self.graph_inputs = self.declared_inputs - set(self.initializers)

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    def is_rewritable_initializer(self, name: str) -> bool:
        """A float initializer read by exactly one node, so resizing it changes nothing else."""
        tensor = self.initializers.get(name)
        return (
            tensor is not None
            and tensor.data_type in _FLOAT_TYPES
            and len(self.consumers.get(name, ())) == 1
            and name not in self.subgraph_references
            and name not in self.declared_inputs
        )
