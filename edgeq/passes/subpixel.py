"""ConvTranspose as sub-pixel convolution: one stride-1 Conv for all output phases, then DepthToSpace.

ONNX Runtime's CPU ConvTranspose is a GEMM plus col2im, with no NCHWc and no int8 kernel: in the
binary-latent autoencoder (examples/binary_ae) its two k=4 s=2 p=1 decoder layers took ~70% of fp32
time at batch 32, and the INT8 compile measured ~1.0x fp32. A ConvTranspose with stride s is exactly
a stride-1 Conv whose s*s*C_out output channels are the s*s output phases, interleaved by
DepthToSpace (pixel shuffle) and cropped by a Slice where the phases overshoot (Shi et al. 2016).
The Conv holds zeros for the taps a phase does not use (k=4 s=2: 3x3 for 4 phases, 2.25x the
multiply-adds) and ORT's DepthToSpace is a slow generic transpose, but the Conv runs on ORT's NCHWc
path and becomes QLinearConv under INT8. Measured on the binary AE, 2 threads, median of 5
(ConvTranspose time / sub-pixel time): 64->64 on 2x2, 1.60x at batch 1 and 3.0x at batch 32;
64->32 on 4x4, 0.86x and 1.37x (at batch 1 DepthToSpace and the NCHWc reorders cost more than the
Conv saves). So each rewrite is timed against its node alone, at the target's batch sizes and
threads, and kept only where faster at all of them: on the binary AE the first, which makes the
whole fp32 model 1.18x faster at batch 1 and 1.29x at batch 32 (both rewritten: 1.06x and 1.52x).
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import onnx
import onnx_ir as ir
from onnx import helper, numpy_helper

from edgeq.graph import GraphIndex, attribute, default_opset
from edgeq.graph.edit import GraphEditor, attr
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import measure_interleaved, speedup

# A rewrite must beat the ConvTranspose by this factor at every batch size to be kept: the compile
# reads nothing inside 3% (two sessions of one model differ that much, candidates.MIN_NOISE), and a
# single small op times noisier than a whole model, so 5% keeps a coin toss from changing the graph.
REQUIRED_SPEEDUP = 1.05
TIMING = {"warmup": 3, "rounds": 7, "seconds_per_round": 0.1}  # per node and batch: at most ~0.7 s
MIN_OPSET = 11  # DepthToSpace's mode attribute
INT64_MAX = np.iinfo(np.int64).max


def lower_conv_transposes(
    model: onnx.ModelProto, batch_sizes: list[int], threads: int
) -> tuple[onnx.ModelProto, list[dict]]:
    """Rewrite every eligible ConvTranspose that measures faster as sub-pixel Conv; one decision per node."""
    transposes = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    if not transposes:
        return model, []
    index = GraphIndex(model.graph)
    shapes = _known_shapes(model)
    decisions = []
    for node in transposes:
        reason = ineligible_reason(model, node, index)
        shape = shapes.get(node.input[0])
        if reason is None and (shape is None or any(d is None for d in shape[1:])):
            reason = "input shape is not static apart from the batch axis, so it cannot be timed"
        if reason is not None:
            decisions.append({"node": node.name, "kept": False, "reason": reason, "speedups": {}})
            continue
        decisions.append(_time_rewrite(node, index, default_opset(model), shape, batch_sizes, threads))
    kept = [d["node"] for d in decisions if d["kept"]]
    return (subpixel_rewrite(model, kept) if kept else model), decisions


def subpixel_summary(decisions: list[dict]) -> str:
    """One line for the console: how many were rewritten, and each node's measured speedups or reason."""
    kept = sum(d["kept"] for d in decisions)
    parts = []
    for d in decisions:
        speedups = "/".join(f"{s:.2f}x" for s in d["speedups"].values())
        batches = "/".join(str(b) for b in d["speedups"])
        measured = f" {speedups} at batch {batches}" if speedups else ""
        parts.append(f"{d['node']}{measured}: {'rewritten' if d['kept'] else d['reason']}")
    return f"{kept} of {len(decisions)} ConvTranspose rewritten as sub-pixel Conv; " + "; ".join(parts)


def ineligible_reason(model: onnx.ModelProto, node: onnx.NodeProto, index: GraphIndex) -> str | None:
    """Why this ConvTranspose has no exact sub-pixel form here, or None when it has one."""
    weight = index.constant(node.input[1])
    strides = attribute(node, "strides", [1, 1])
    checks = [
        (
            default_opset(model) < MIN_OPSET,
            f"opset below {MIN_OPSET} (DepthToSpace needs its mode attribute)",
        ),
        (weight is None, "weight is not a constant"),
        (weight is not None and weight.ndim != 4, "not 2-D"),
        (weight is not None and weight.dtype != np.float32, "not float32"),
        (
            len(node.input) > 2 and bool(node.input[2]) and index.constant(node.input[2]) is None,
            "bias is not a constant",
        ),
        (attribute(node, "group", 1) != 1, "grouped (group != 1)"),
        (any(d != 1 for d in attribute(node, "dilations", [1, 1])), "dilated"),
        (attribute(node, "output_shape") is not None, "output_shape attribute (pads implied by shape)"),
        (attribute(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"), "auto_pad is set"),
        (len(set(strides)) != 1, "unequal strides (DepthToSpace has one block size)"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def subpixel_rewrite(model: onnx.ModelProto, names: Collection[str]) -> onnx.ModelProto:
    """A copy of `model` with the named ConvTransposes replaced by their exact sub-pixel form."""
    editor = GraphEditor(model)
    for name in names:
        _rewrite(editor, editor.nodes[name])
    return onnx.shape_inference.infer_shapes(editor.finish(), strict_mode=False)


def _rewrite(editor: GraphEditor, node: ir.Node) -> None:
    """Conv, DepthToSpace (stride > 1) and Slice (where phases overshoot) in place of `node`."""
    weight = editor.constant(node.inputs[1])
    bias = editor.constant(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    stride = attr(node, "strides", [1])[0]
    kernel = list(weight.shape[2:])
    pads = attr(node, "pads", [0, 0, 0, 0])
    extra = attr(node, "output_padding", [0, 0])
    axes = [_axis_plan(kernel[i], stride, pads[i], pads[i + 2], extra[i]) for i in range(2)]
    name = node.name + "_subpixel"
    conv_inputs = [editor.initializer(name + ".weight", _phase_weight(weight, stride, axes))]
    if bias is not None:
        conv_inputs.append(editor.initializer(name + ".bias", np.tile(bias, stride * stride)))
    conv = {
        "kernel_shape": [axis["size"] for axis in axes],
        "pads": [axes[0]["begin"], axes[1]["begin"], axes[0]["end"], axes[1]["end"]],
    }
    steps = [("Conv", name, conv_inputs, conv)]
    if stride > 1:
        steps.append(("DepthToSpace", name + "_shuffle", [], {"blocksize": stride, "mode": "DCR"}))
    crops = [axis["crop"] for axis in axes]
    if any(crops):
        ends = np.array([-c if c else INT64_MAX for c in crops], dtype=np.int64)
        bounds = [
            editor.initializer(name + ".starts", np.zeros(2, np.int64)),
            editor.initializer(name + ".ends", ends),
            editor.initializer(name + ".axes", np.array([2, 3], np.int64)),
        ]
        steps.append(("Slice", name + "_crop", bounds, {}))
    nodes, previous = [], node.inputs[0]
    for op, step_name, inputs, attributes in steps:
        output = node.outputs[0].name if step_name == steps[-1][1] else step_name + "_output"
        nodes.append(editor.node(op, [previous, *inputs], [output], name=step_name, attributes=attributes))
        previous = nodes[-1].outputs[0]
    editor.replace(node, nodes)


def _axis_plan(kernel: int, stride: int, pad_begin: int, pad_end: int, extra: int) -> dict:
    """One spatial axis: which ConvTranspose tap each (phase, Conv tap) reads, the Conv's size, pads, crop.

    Output o = s*m + a reads input m + d through tap k = a + pad_begin - s*d. The Conv window
    spans d in [low, high] (low <= 0, so its begin pad is -low >= 0). The output length,
    (n-1)*s + kernel - pads + extra, needs ceil(that / s) Conv positions; what the last ones
    overshoot is cropped. Pads and crop do not depend on the input length n.
    """
    taps = [
        (phase, (phase + pad_begin - k) // stride, k)
        for phase in range(stride)
        for k in range(kernel)
        if (phase + pad_begin - k) % stride == 0
    ]
    low = min(0, *(d for _, d, _ in taps))
    high = max(d for _, d, _ in taps)
    tail = kernel - pad_begin - pad_end + extra  # output length beyond (n-1)*s
    end = max(0, math.ceil(tail / stride) - 1 + high)
    return {
        "taps": [(phase, d - low, k) for phase, d, k in taps],
        "size": high - low + 1,
        "begin": -low,
        "end": end,
        "crop": stride * (1 + end - high) - tail,
    }


def _phase_weight(weight: np.ndarray, stride: int, axes: list[dict]) -> np.ndarray:
    """Conv weight [s*s*C_out, C_in, kh, kw], channels phase-major as DepthToSpace's DCR mode reads them."""
    c_in, c_out = weight.shape[:2]
    phases = np.zeros((stride, stride, c_out, c_in, axes[0]["size"], axes[1]["size"]), weight.dtype)
    for row, j_row, k_row in axes[0]["taps"]:
        for col, j_col, k_col in axes[1]["taps"]:
            phases[row, col, :, :, j_row, j_col] = weight[:, :, k_row, k_col].T
    return phases.reshape(stride * stride * c_out, c_in, axes[0]["size"], axes[1]["size"])


def _time_rewrite(
    node: onnx.NodeProto,
    index: GraphIndex,
    opset: int,
    shape: list[int | None],
    batch_sizes: list[int],
    threads: int,
) -> dict:
    """Time the node alone against its rewrite, interleaved, at each batch size; keep it if faster at all."""
    original = _single_op_model(node, _constants(node, index), opset)
    rewritten = subpixel_rewrite(original, [node.name])
    runners = {
        "conv_transpose": OrtRunner(original.SerializeToString(), threads=threads),
        "subpixel": OrtRunner(rewritten.SerializeToString(), threads=threads),
    }
    batches = sorted({shape[0]} if shape[0] is not None else set(batch_sizes))
    rng = np.random.default_rng(0)
    speedups = {}
    for batch in batches:
        data = {node.input[0]: rng.standard_normal([batch, *shape[1:]]).astype(np.float32)}
        stats = measure_interleaved(runners, data, batch=batch, **TIMING)
        speedups[batch] = round(speedup(stats["conv_transpose"], stats["subpixel"]), 3)
    kept = all(s > REQUIRED_SPEEDUP for s in speedups.values())
    reason = "faster at every batch size" if kept else f"not {REQUIRED_SPEEDUP}x faster at every batch size"
    return {"node": node.name, "kept": kept, "reason": reason, "speedups": speedups}


def _single_op_model(
    node: onnx.NodeProto, initializers: list[onnx.TensorProto], opset: int
) -> onnx.ModelProto:
    """A model of just `node`, reading its activation input and writing its output."""
    graph = helper.make_graph(
        [node],
        "single_op",
        [helper.make_tensor_value_info(node.input[0], onnx.TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _constants(node: onnx.NodeProto, index: GraphIndex) -> list[onnx.TensorProto]:
    """`node`'s weight and bias as initializers, for a model of that node alone."""
    return [numpy_helper.from_array(index.constant(name), name) for name in node.input[1:] if name]


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Every tensor's shape that shape inference knows, None for a symbolic dim."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    shapes = {}
    for info in [*inferred.input, *inferred.value_info, *inferred.output]:
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return shapes
