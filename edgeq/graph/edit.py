"""The one way edgeq rewrites graphs: onnx-ir use-def lists between a ModelProto in and one out.

Every pass that changes a graph opens a `GraphEditor`, edits values and nodes through it (no
name bookkeeping: replacing a value rewires all of its consumers, subgraph captures and graph
outputs included) and closes it with `finish`, which drops initializers nothing reads any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir


class GraphEditor:
    """An editable onnx-ir copy of a model's main graph, with its values and nodes by name."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = ir.from_proto(model)
        self.graph = self.model.graph
        self.nodes = {node.name: node for node in self.graph if node.name}
        self._last_first: ir.Node | None = None  # the last node put first by insert_first
        self._values: dict[str, ir.Value] = {}
        for value in [*self.graph.inputs, *self.graph.initializers.values()]:
            self._values[value.name] = value
        for node in self.graph:
            self._values.update((out.name, out) for out in node.outputs if out.name)

    def value(self, name: str) -> ir.Value | None:
        """The main-graph value called `name` (graph input, initializer or node output), or None."""
        return self._values.get(name)

    def constant(self, value: ir.Value | str | None) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        if isinstance(value, str):
            value = self.value(value)
        tensor = None if value is None else ir.convenience.get_const_tensor(value)
        return None if tensor is None else tensor.numpy()

    def initializer(self, name: str, array: np.ndarray, dtype: ir.DataType | None = None) -> ir.Value:
        """Add initializer `name` holding `array` (stored as `dtype`, e.g. INT4, when given)."""
        value = ir.Value(name=name, const_value=ir.Tensor(np.asarray(array), dtype=dtype, name=name))
        self.graph.register_initializer(value)
        self._values[name] = value
        return value

    def set_initializer(self, name: str, array: np.ndarray) -> ir.Value:
        """Overwrite initializer `name` with `array`, or add it."""
        existing = self.graph.initializers.get(name)
        if existing is None:
            return self.initializer(name, array)
        existing.const_value = ir.Tensor(np.asarray(array), name=name)
        if existing.is_graph_input():
            existing.type = ir.TensorType(existing.const_value.dtype)
            existing.shape = existing.const_value.shape
        return existing

    def node(
        self,
        op_type: str,
        inputs: Sequence[ir.Value | None],
        outputs: Sequence[str] = (),
        *,
        name: str | None = None,
        domain: str = "",
        attributes: Mapping[str, Any] | Iterable[ir.Attr] = (),
    ) -> ir.Node:
        """A new node (not yet in the graph) writing values named `outputs` (one unnamed if empty)."""
        values = [ir.Value(name=out) for out in outputs] or None
        if isinstance(attributes, Mapping):
            attributes = ir.convenience.convert_attributes(attributes)
        node = ir.Node(domain, op_type, inputs, attributes, outputs=values, name=name)
        for out in node.outputs:
            if out.name:
                self._values[out.name] = out
        if name:
            self.nodes[name] = node
        return node

    def insert_after(self, value: ir.Value, nodes: Sequence[ir.Node]) -> None:
        """Put `nodes` right after the producer of `value`, or first when `value` has none."""
        producer = value.producer()
        if producer is not None and producer.graph is self.graph:
            self.graph.insert_after(producer, nodes)
        else:
            self.insert_first(nodes)

    def insert_first(self, nodes: Sequence[ir.Node]) -> None:
        """Put `nodes` before every other node of the graph (after earlier `insert_first` calls)."""
        nodes = list(nodes)
        if self._last_first is not None and self._last_first.graph is self.graph:
            self.graph.insert_after(self._last_first, nodes)
        elif len(self.graph):
            self.graph.insert_before(self.graph.node(0), nodes)
        else:
            self.graph.extend(nodes)
        self._last_first = nodes[-1] if nodes else self._last_first

    def insert_before(self, node: ir.Node, nodes: Sequence[ir.Node]) -> None:
        """Put `nodes` right before `node` (e.g. what computes one of its new inputs)."""
        self.graph.insert_before(node, nodes)

    def replace(self, node: ir.Node, nodes: Sequence[ir.Node], outputs: Sequence[ir.Value] = ()) -> None:
        """`nodes` in place of `node`; `outputs` (default: the last node's) take over its outputs'
        names and every use of them, graph outputs included."""
        outputs = list(outputs) or list(nodes[-1].outputs)
        for old, new in zip(node.outputs, outputs, strict=True):
            self.reroute(old, new, rename=True)
        self.substitute(node, nodes)

    def substitute(self, node: ir.Node, nodes: Sequence[ir.Node]) -> None:
        """`nodes` where `node` was; nothing may read `node`'s outputs any more."""
        self.graph.insert_after(node, nodes)
        self.remove(node)

    def reroute(
        self, old: ir.Value, new: ir.Value, *, rename: bool = False, keep: Iterable[ir.Node] = ()
    ) -> None:
        """Every use of `old` (graph outputs included) reads `new`, except those by `keep`.

        `rename` gives `new` the name of `old` (a graph output keeps its name)."""
        kept = set(keep)
        for user, index in list(old.uses()):
            if user not in kept:
                user.replace_input_with(index, new)
        for i, output in enumerate(self.graph.outputs):
            if output is old:
                self.graph.outputs[i] = new
        if rename:
            name = old.name
            old.name = None
            new.name = name
            new.type = new.type or old.type
            new.shape = new.shape or old.shape
            self._values[name] = new

    def rewire(self, node: ir.Node, old: ir.Value, new: ir.Value) -> None:
        """`node` reads `new` wherever it read `old` (other readers, graph outputs: unchanged)."""
        for i, value in enumerate(node.inputs):
            if value is old:
                node.replace_input_with(i, new)

    def interpose(self, value: ir.Value, node: ir.Node, renamed: str) -> None:
        """Put `node` (which reads `value`) after `value`'s producer; its output takes over the name
        and every reader of `value`, which is renamed `renamed`."""
        name = value.name
        self.reroute(value, node.outputs[0], keep=[node])
        value.name = renamed
        output = node.outputs[0]
        output.name, output.type, output.shape = name, value.type, value.shape
        self._values |= {name: output, renamed: value}
        self.insert_after(value, [node])

    def remove(self, node: ir.Node) -> None:
        """Remove `node`, which nothing may read any more."""
        self.graph.remove(node, safe=True)
        if self.nodes.get(node.name) is node:
            del self.nodes[node.name]

    def bypass(self, node: ir.Node, replacement: ir.Value) -> None:
        """Remove a one-output node; its readers read `replacement` instead."""
        self.reroute(node.outputs[0], replacement)
        self.remove(node)

    def ensure_opset(self, domain: str, version: int) -> None:
        """Import `domain` (at `version`) unless the model already does."""
        self.model.opset_imports.setdefault(domain, version)

    def finish(self) -> onnx.ModelProto:
        """The edited model as a ModelProto, without initializers nothing reads any more."""
        drop_unused_initializers(self.graph)
        return _to_proto(self.model)


def attr(node: ir.Node, name: str, default: Any = None) -> Any:
    """An onnx-ir node attribute's Python value, or `default` when absent."""
    found = node.attributes.get(name)
    return default if found is None else found.value


def drop_unused_initializers(graph: ir.Graph) -> None:
    """Remove initializers no node (nor subgraph, nor graph output) reads."""
    for name, value in list(graph.initializers.items()):
        if not value.uses() and not value.is_graph_output():
            del graph.initializers[name]


def with_initializers(model: onnx.ModelProto, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose named initializers hold `values` (added when absent)."""
    if not values:
        return onnx.ModelProto.FromString(model.SerializeToString())
    editor = GraphEditor(model)
    for name, array in values.items():
        editor.set_initializer(name, array)
    return _to_proto(editor.model)


def with_outputs(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of the model that also returns the given intermediate tensors.

    The extra outputs are declared untyped, so ONNX Runtime does not hold them to the static dims
    an export may have recorded (calibration runs other batch sizes); no node changes."""
    exposed = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in exposed.graph.output}
    for name in tensors:
        if name not in present:
            exposed.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return exposed


def _to_proto(model: ir.Model) -> onnx.ModelProto:
    """Serialize without a value_info per initializer (onnx-ir writes one; the tensor has it all)."""
    for value in model.graph.initializers.values():
        if not (value.is_graph_input() or value.is_graph_output()):
            value.type, value.shape = None, None
    return ir.to_proto(model)
