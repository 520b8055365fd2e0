"""Read helpers over an ONNX graph (who produces and reads a tensor, its weights) and model files.

Rewriting goes through `edgeq.graph.edit`; op-type sets and the weighted-layer view live in
`edgeq.graph.ops`."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

PROTOBUF_LIMIT = 1_800_000_000  # bytes: above this a model is saved with external data


class GraphIndex:
    """Producers, consumers and initializers of a graph, by tensor name (rebuild after edits)."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in graph.node:
            for name in node.output:
                if name:
                    self.producer[name] = node
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.outputs = {o.name for o in graph.output}
        self.subgraph_references = subgraph_references(graph)

    def is_pinned(self, name: str) -> bool:
        """A graph output or a name read inside If/Loop/Scan bodies: it must keep its name and value."""
        return name in self.outputs or name in self.subgraph_references

    def is_constant(self, name: str) -> bool:
        return name in self.initializers or (
            name in self.producer and self.producer[name].op_type == "Constant"
        )

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(onnx.helper.get_attribute_value(node.attribute[0]))
        return None


def all_nodes(graph: onnx.GraphProto):
    """Nodes of a graph and of every subgraph inside them (If branches, Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for subgraph in [attr.g, *attr.graphs]:
                yield from all_nodes(subgraph)


def default_opset(model: onnx.ModelProto) -> int:
    """The default-domain (ai.onnx) opset version, 0 when the model imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def subgraph_references(graph: onnx.GraphProto) -> set[str]:
    """Names read inside If/Loop/Scan bodies (outer-scope values those bodies capture)."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            bodies = list(attr.graphs)
            if attr.type == onnx.AttributeProto.GRAPH:
                bodies.append(attr.g)
            for body in bodies:
                names |= {name for inner in body.node for name in inner.input}
                names |= subgraph_references(body)
    return names


def attribute(node: onnx.NodeProto, name: str, default=None):
    """A node attribute's Python value, or `default` when absent."""
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Save, moving weights to an external-data file beside it when protobuf's 2 GB limit is near."""
    large = model.ByteSize() > PROTOBUF_LIMIT
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=path.name + ".data",
        size_threshold=1024,
    )
    return path


def model_bytes(path: Path) -> int:
    """Bytes on disk of a model file plus its external-data file, if any."""
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


def layer_role(name: str) -> str:
    """A node's place in a repeated block: its name with the block numbers blanked
    (`/encoder/layer.3/attention/self/value/MatMul` -> `/encoder/layer.#/attention/self/value/MatMul`),
    so the six blocks' value projections are probed and planned as one."""
    return re.sub(r"\d+", "#", name)
