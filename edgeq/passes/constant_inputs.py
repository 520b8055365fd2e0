"""Inputs declared constant are computed with their value: the graph reads a constant tensor instead,
so constant folding can resolve what depends on it (silero-vad's `If(sr == 16000)` branch).

The input stays in the graph's interface (a caller may go on feeding it); the compiled model
computes with the declared value whatever it is fed.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from edgeq.runtime.roles import InputRoles


def bake_constant_inputs(model: onnx.ModelProto, roles: InputRoles) -> onnx.ModelProto:
    """A copy of `model` whose nodes (subgraphs included) read each constant input's value."""
    constants = {name: role.constant for name, role in roles.inputs.items() if role.constant is not None}
    if not constants:
        return model
    baked = onnx.ModelProto.FromString(model.SerializeToString())
    renamed = {name: f"{name}__constant" for name in constants}
    baked.graph.initializer.extend(numpy_helper.from_array(constants[n], renamed[n]) for n in constants)
    _rename_uses(baked.graph, renamed)
    return baked


def _rename_uses(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for subgraph in (
                [attribute.g, *attribute.graphs] if attribute.HasField("g") or attribute.graphs else []
            ):
                _rename_uses(subgraph, renamed)
