"""Deploy a Matryoshka embedding at a fixed dimension: cut the final projection to its first m rows.

An MRL embedding's first m dims are a usable embedding (Kusupati et al., 2022), so slicing the
layer that writes it is exact: the output equals the full model's output truncated to m, and the
layer really shrinks (m/d of its parameters and FLOPs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from edgeq.errors import InputError
from edgeq.graph import GraphIndex, attribute
from edgeq.graph.edit import GraphEditor
from edgeq.graph.ops import LINEAR_OPS


def slice_embedding(model: onnx.ModelProto, output: str, dim: int) -> onnx.ModelProto:
    """The model whose `output` has only its first `dim` features, made by slicing its projection."""
    index = GraphIndex(model.graph)
    if output not in index.outputs:
        raise InputError(f"mrl.output {output!r} is not a graph output (outputs: {sorted(index.outputs)})")
    node = index.producer.get(output)
    bias = None
    if node is not None and node.op_type == "Add":
        bias_name = next((i for i in node.input if index.is_constant(i)), None)
        bias = (node, bias_name) if bias_name else None
        node = index.producer.get(next(i for i in node.input if i != bias_name)) if bias else None
    if node is None or node.op_type not in LINEAR_OPS or index.constant(node.input[1]) is None:
        raise InputError(f"mrl.output {output!r} is not written by a Gemm/MatMul with constant weights")
    weight = index.constant(node.input[1])
    columns_first = node.op_type == "Gemm" and attribute(node, "transB", 0)
    width = weight.shape[0] if columns_first else weight.shape[-1]
    if not 0 < dim <= width:
        raise InputError(f"mrl.dim must be in 1..{width} (the embedding width), got {dim}")
    sliced = weight[:dim] if columns_first else weight[..., :dim]
    editor = GraphEditor(model)
    layer = editor.nodes[node.name]
    _rewire_constant(editor, layer, 1, sliced)
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        _rewire_constant(editor, layer, 2, np.broadcast_to(index.constant(node.input[2]), (width,))[:dim])
    if bias is not None:
        add, name = bias
        value = np.broadcast_to(index.constant(name), (width,))[:dim]
        _rewire_constant(editor, editor.nodes[add.name], list(add.input).index(name), value)
    for value in {editor.value(output), *layer.outputs}:
        if value.shape is not None and len(value.shape):
            value.shape = ir.Shape([*value.shape[:-1], dim])
    return editor.finish()


def _rewire_constant(editor: GraphEditor, node: ir.Node, position: int, value: np.ndarray) -> None:
    name = f"{node.inputs[position].name}_mrl{value.shape[-1] if value.ndim else ''}"
    node.replace_input_with(
        position, editor.set_initializer(name, np.ascontiguousarray(value, dtype=np.float32))
    )


def deployed_task_options(options: dict[str, Any], dim: int) -> dict[str, Any]:
    """An MRL evaluator's options with the nested dims limited to the deployed one."""
    dims = options.get("dims")
    if dims is None:
        return options | {"dims": [dim]}
    kept = [d for d in dims if d <= dim]
    return options | {"dims": kept if dim in kept else [*kept, dim]}
