"""An AveragePool whose one window covers the whole feature map is a GlobalAveragePool: say so.

Hugging Face's EfficientNet pools its 7x7 map with `AvgPool2d(1280, ceil_mode=True)`: a kernel far
larger than the map, one ceil-mode window clipped to it. ONNX Runtime averages the map; OpenVINO
2026.4 refuses to convert the node (its kernel is larger than the data), so the whole model with it.
"""

from __future__ import annotations

import math

import onnx
import onnx_ir as ir

from edgeq.graph.edit import GraphEditor, attr


def globalize_whole_map_pools(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every AveragePool that averages its whole (static) map as a GlobalAveragePool."""
    editor = GraphEditor(model)
    pools = [node for node in editor.graph if node.op_type == "AveragePool" and _whole_map(node)]
    if not pools:
        return model
    for node in pools:
        pool = editor.node("GlobalAveragePool", [node.inputs[0]], name=node.name)
        pool.outputs[0].shape, pool.outputs[0].type = node.outputs[0].shape, node.outputs[0].type
        editor.replace(node, [pool])
    return editor.finish()


def _whole_map(node: ir.Node) -> bool:
    """One window per map, starting at its origin and reaching past its end on every spatial axis:
    no padding or dilation, and static spatial dims the kernel is at least as long as."""
    shape = node.inputs[0].shape
    if shape is None or len(shape) < 3 or not all(isinstance(d, int) for d in shape[2:]):
        return False
    dims, kernel = list(shape[2:]), list(attr(node, "kernel_shape", []))
    rank = len(dims)
    strides = list(attr(node, "strides", [1] * rank))
    if len(kernel) != rank or any(p != 0 for p in attr(node, "pads", [0] * 2 * rank)):
        return False
    if attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID") or any(
        d != 1 for d in attr(node, "dilations", [1] * rank)
    ):
        return False
    rounding = math.ceil if attr(node, "ceil_mode", 0) else math.floor
    return all(
        k >= d and rounding((d - k) / s) + 1 == 1 for d, k, s in zip(dims, kernel, strides, strict=True)
    )
