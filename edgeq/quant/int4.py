"""4-bit weights in the forms runtimes execute: MatMulNBits (ORT CPU), INT4 MatMul weight blocks
behind an opset-21 DequantizeLinear (OpenVINO's compressed-weight layers), INT4 convolution weights
the same way, block-quantized embedding tables, and the accuracy_level choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
from onnx import version_converter

from edgeq.graph import GraphIndex, attribute, default_opset
from edgeq.graph.edit import GraphEditor
from edgeq.graph.ops import CONV_OPS, LINEAR_OPS, MS_DOMAIN, optional_input, output_axis, weighted_layer
from edgeq.quant.gptq import gptq_blocked
from edgeq.quant.primitives import (
    QuantFormat,
    block_weight_params,
    dequantize_blocked,
    quantize,
    quantize_blocked,
    weight_params,
)

INT4_DQ_OPSET = 21  # DequantizeLinear reads INT4 from opset 21
INT4_SYMMETRIC = QuantFormat(bits=4, signed=True, symmetric=True)
UINT4_ASYMMETRIC = QuantFormat(bits=4, signed=False, symmetric=False)
UINT4_DEFAULT_ZERO_POINT = 8
"""MatMulNBits / GatherBlockQuantized read uint4 codes; without zero points they subtract 8."""
INT8_BLOCKED = QuantFormat(bits=8, signed=True, symmetric=True, narrow_range=True)
UINT8_ASYMMETRIC = QuantFormat(bits=8, signed=False, symmetric=False)


def nbits_format(bits: int, symmetric: bool) -> QuantFormat:
    """The weight format MatMulNBits stores at `bits` (4 or 8): signed symmetric or unsigned."""
    formats = {(4, True): INT4_SYMMETRIC, (4, False): UINT4_ASYMMETRIC}
    formats |= {(8, True): INT8_BLOCKED, (8, False): UINT8_ASYMMETRIC}
    if (bits, symmetric) not in formats:
        raise ValueError(f"MatMulNBits bits must be 4 or 8, got {bits!r}")
    return formats[bits, symmetric]


@dataclass(frozen=True)
class LinearLayer:
    """A MatMul/Gemm weighted layer in folded form: A @ weight (+ bias), weight [K, N] (K = reduced)
    with Gemm's transB and alpha applied, bias times beta (or a computed bias's name)."""

    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | str | None


def lower_to_matmul_nbits(
    model: onnx.ModelProto,
    nodes: Iterable[str] | None = None,
    block_size: int = 32,
    symmetric: bool = True,
    accuracy_level: int | None = None,
    hessians: Mapping[str, np.ndarray] | None = None,
    bits: int = 4,
) -> onnx.ModelProto:
    """Replace MatMul/Gemm with constant fp32 weights by com.microsoft MatMulNBits (4- or 8-bit blocks).

    `nodes` None lowers every eligible node; a named node that is not eligible raises ValueError.
    Gemm's transB/alpha fold into the weight; its bias (times beta) becomes a following Add.
    `hessians` (by node name) round those nodes' weights by GPTQ. With accuracy_level 4 ORT
    quantizes each row of A to int8 per block of K as it runs: per-token activation scales.
    """
    _check_block_size(block_size)
    fmt = nbits_format(bits, symmetric)
    index = GraphIndex(model.graph)
    layers = _selected_layers(model, index, nodes)
    editor = GraphEditor(model)
    shared: dict[tuple, list[ir.Value]] = {}  # an unrolled loop reuses one weight: pack it once
    for layer in layers:
        hessian = (hessians or {}).get(layer.node.name)
        _lower_to_matmul_nbits(editor, layer, fmt, block_size, accuracy_level, shared, hessian)
    editor.ensure_opset(MS_DOMAIN, 1)
    return editor.finish()


def lower_to_int4_dequantize(
    model: onnx.ModelProto,
    block_size: int = 32,
    hessians: Mapping[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Every MatMul/Gemm with a constant fp32 weight as MatMul(A, DequantizeLinear(int4 W [K, N],
    blocks of `block_size` along K)) (+ bias Add): standard ONNX (opset 21), which OpenVINO keeps as
    i4 weights of a compressed FullyConnected. `hessians` (by node name) round by GPTQ."""
    _check_block_size(block_size)
    model = _at_least_opset(model, INT4_DQ_OPSET)
    index = GraphIndex(model.graph)
    layers = _selected_layers(model, index, None)
    editor = GraphEditor(model)
    shared: dict[tuple, ir.Value] = {}  # a weight several layers read: stored once
    for layer in layers:
        node = editor.nodes[layer.node.name]
        weight_name = node.inputs[1].name
        key = (weight_name, attribute(layer.node, "transB", 0), attribute(layer.node, "alpha", 1.0))
        if key not in shared:
            shared[key] = _int4_blocks(editor, f"{weight_name}_{node.name}_int4", layer, block_size, hessians)
        output = node.outputs[0].name
        matmul_output = output if layer.bias is None else f"{output}_before_bias"
        matmul = editor.node("MatMul", [node.inputs[0], shared[key]], [matmul_output], name=node.name)
        _replace_adding_bias(editor, node, layer, matmul, f"{node.name}_int4")
    return editor.finish()


def _int4_blocks(
    editor: GraphEditor,
    base: str,
    layer: LinearLayer,
    block_size: int,
    hessians: Mapping[str, np.ndarray] | None,
) -> ir.Value:
    """The layer's weight as signed int4 blocks along K and its DequantizeLinear (placed first)."""
    hessian = (hessians or {}).get(layer.node.name)
    if hessian is not None:
        q, scale = gptq_blocked(layer.weight, hessian, INT4_SYMMETRIC, block_size)
    else:
        scale, zero = block_weight_params(layer.weight, INT4_SYMMETRIC, axis=0, block_size=block_size)
        q = quantize_blocked(layer.weight, scale, zero, INT4_SYMMETRIC, axis=0, block_size=block_size)
    inputs = [
        editor.initializer(base, q, ir.DataType.INT4),
        editor.initializer(base + "_scale", scale.astype(np.float32)),
    ]
    attributes = {"axis": 0, "block_size": block_size}
    output = base + "_dequantized"
    dq = editor.node("DequantizeLinear", inputs, [output], name=output + "_node", attributes=attributes)
    editor.insert_first([dq])
    return dq.outputs[0]


def pack_uint4(codes: np.ndarray) -> np.ndarray:
    """Pack uint4 codes (0..15) two per byte along the last axis, first value in the low nibble."""
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros_like(codes[..., :1])], axis=-1)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def matmul_nbits_weights(
    weight: np.ndarray, fmt: QuantFormat, block_size: int, hessian: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """MatMulNBits inputs for a weight [K, N] in blocks of `block_size` along K: B [N, blocks,
    block_size·bits/8] uint8, scales [N*blocks], zero points (None: symmetric; 4 bits packed),
    dequantized W. `hessian` (the layer's E[x xᵀ], symmetric formats): GPTQ rounding instead of
    round-to-nearest."""
    k, n = weight.shape
    if hessian is not None and fmt.symmetric:
        q, scale = gptq_blocked(weight, hessian, fmt, block_size)
        zero = np.zeros_like(scale, dtype=np.int8)
    else:
        scale, zero = block_weight_params(weight, fmt, axis=0, block_size=block_size)
        q = quantize_blocked(weight, scale, zero, fmt, axis=0, block_size=block_size)
    default_zero = 2 ** (fmt.bits - 1)  # what MatMulNBits subtracts without zero points
    offset = default_zero if fmt.signed else 0  # signed code -> unsigned code
    codes = (q.astype(np.int16) + offset).astype(np.uint8).T  # [N, K]
    blocks = scale.shape[0]
    padded = np.full((n, blocks * block_size), default_zero, np.uint8)
    padded[:, :k] = codes
    packed = padded.reshape(n, blocks, block_size)
    zero_points = None if fmt.signed else zero.T.astype(np.uint8)
    if fmt.bits == 4:
        packed = pack_uint4(packed)
        zero_points = None if zero_points is None else pack_uint4(zero_points)
    zero_points = None if zero_points is None else zero_points.reshape(-1)
    dequantized = dequantize_blocked(q, scale, zero, axis=0, block_size=block_size)
    return packed, scale.T.reshape(-1).astype(np.float32), zero_points, dequantized


def lower_conv_to_int4(model: onnx.ModelProto, nodes: Iterable[str]) -> onnx.ModelProto:
    """Store Conv/ConvTranspose weights as INT4 per output channel behind an opset-21 DequantizeLinear.

    No CPU kernel computes a convolution in 4 bits, so this is a size form: the runtime
    dequantizes the weights and convolves in float.
    """
    editor = GraphEditor(_at_least_opset(model, INT4_DQ_OPSET))
    wanted = set(nodes)
    for node in [n for n in editor.graph if n.name in wanted and n.op_type in CONV_OPS]:
        weight = editor.constant(node.inputs[1])
        if weight is None or weight.dtype != np.float32:
            raise ValueError(f"{node.op_type} {node.name!r} has no constant fp32 weight for 4 bits")
        axis = output_axis(node.op_type)
        scale, zero = weight_params(weight, INT4_SYMMETRIC, axis=axis)
        q = quantize(weight, scale, zero, INT4_SYMMETRIC, axis=axis)
        base = f"{node.inputs[1].name}_{node.name}_int4"
        inputs = [
            editor.initializer(base, q, ir.DataType.INT4),
            editor.initializer(base + "_scale", scale.astype(np.float32)),
        ]
        output = base + "_dequantized"
        dq = editor.node(
            "DequantizeLinear", inputs, [output], name=output + "_node", attributes={"axis": axis}
        )
        editor.insert_before(node, [dq])
        node.replace_input_with(1, dq.outputs[0])
    return editor.finish()


def quantize_embeddings(
    model: onnx.ModelProto, bits: int = 8, block_size: int = 32, nodes: Iterable[str] | None = None
) -> onnx.ModelProto:
    """Store constant Gather tables (axis 0, 2-D fp32) in 8 or 4 bits so the file really shrinks
    (`nodes`: only those Gathers, as a precision plan chooses).

    8 bits: int8 table with per-row scales; Gather the int8 rows, then Cast and scale them
    (standard ONNX, and only the looked-up rows are dequantized per call).
    4 bits: com.microsoft GatherBlockQuantized on uint4 codes packed in uint8, blocks of
    `block_size` along each row (ORT's CPU kernel gathers on axis 0 and blocks the last axis).
    """
    if bits not in (4, 8):
        raise ValueError(f"embedding bits must be 4 or 8, got {bits!r}")
    if bits == 4:
        _check_block_size(block_size)
    index = GraphIndex(model.graph)
    wanted = None if nodes is None else set(nodes)
    tables = {
        n.name: table
        for n in model.graph.node
        if (wanted is None or n.name in wanted) and (table := embedding_table(n, index)) is not None
    }
    editor = GraphEditor(model)
    for name, table in tables.items():
        if bits == 4 and table.shape[1] % 2:
            continue
        if bits == 8:
            _int8_rows_gather(editor, editor.nodes[name], table, default_opset(model))
        else:
            _gather_block_quantized(editor, editor.nodes[name], table, block_size)
    if bits == 4:
        editor.ensure_opset(MS_DOMAIN, 1)
    return editor.finish()


def embedding_table(node: onnx.NodeProto, index: GraphIndex) -> np.ndarray | None:
    """The fp32 [rows, dim] constant a Gather reads rows of, or None."""
    if node.op_type != "Gather" or attribute(node, "axis", 0) != 0:
        return None
    table = index.constant(node.input[0])
    if table is None or table.dtype != np.float32 or table.ndim != 2:
        return None
    return table


def _int8_rows_gather(editor: GraphEditor, node: ir.Node, table: np.ndarray, opset: int) -> None:
    """Gather int8 rows, then scale them: only the looked-up rows are dequantized per call."""
    fmt = QuantFormat(bits=8, signed=True, symmetric=True, narrow_range=True)
    scale, zero = weight_params(table, fmt, axis=0)
    q = quantize(table, scale, zero, fmt, axis=0)
    base = f"{node.inputs[0].name}_{node.name}_int8"
    ids = node.inputs[1]
    rows = editor.node(
        "Gather", [editor.initializer(base, q), ids], [base + "_rows"], name=node.name + "_int8_rows"
    )
    to_float = {"to": ir.DataType.FLOAT}
    cast = editor.node(
        "Cast", rows.outputs, [base + "_rows_float"], name=f"{node.name}_int8_cast", attributes=to_float
    )
    scales = editor.initializer(base + "_scale", scale.astype(np.float32))
    row_scale = editor.node("Gather", [scales, ids], [base + "_row_scale"], name=f"{node.name}_int8_scales")
    if opset >= 13:
        last_axis = editor.initializer(base + "_last_axis", np.array([-1], np.int64))
        inputs, attributes = [*row_scale.outputs, last_axis], {}
    else:
        inputs, attributes = row_scale.outputs, {"axes": [-1]}
    unsqueeze = editor.node(
        "Unsqueeze", inputs, [base + "_row_scale_1"], name=f"{node.name}_int8_unsq", attributes=attributes
    )
    mul = editor.node("Mul", [*cast.outputs, *unsqueeze.outputs], [node.outputs[0].name], name=node.name)
    editor.replace(node, [rows, cast, row_scale, unsqueeze, mul])


def _gather_block_quantized(editor: GraphEditor, node: ir.Node, table: np.ndarray, block_size: int) -> None:
    scale, zero = block_weight_params(table, INT4_SYMMETRIC, axis=1, block_size=block_size)
    q = quantize_blocked(table, scale, zero, INT4_SYMMETRIC, axis=1, block_size=block_size)
    base = f"{node.inputs[0].name}_{node.name}_uint4"
    codes = editor.initializer(base, pack_uint4(q + UINT4_DEFAULT_ZERO_POINT))
    scales = editor.initializer(base + "_scale", scale.astype(np.float32))
    attributes = {"bits": 4, "block_size": block_size, "gather_axis": 0, "quantize_axis": 1}
    replacement = editor.node(
        "GatherBlockQuantized",
        [codes, node.inputs[1], scales],
        [node.outputs[0].name],
        name=node.name,
        domain=MS_DOMAIN,
        attributes=attributes,
    )
    editor.replace(node, [replacement])


def set_accuracy_level(model: onnx.ModelProto, level: int) -> onnx.ModelProto:
    """A copy with every MatMulNBits node's accuracy_level set (0 unset, 1 fp32, 2 fp16, 3 bf16,
    4 int8 compute)."""
    editor = GraphEditor(model)
    nodes = [n for n in editor.graph if n.op_type == "MatMulNBits" and n.domain == MS_DOMAIN]
    if not nodes:
        raise ValueError("the model has no MatMulNBits node whose accuracy_level could be set")
    for node in nodes:
        node.attributes["accuracy_level"] = ir.AttrInt64("accuracy_level", level)
    return editor.finish()


def _selected_layers(
    model: onnx.ModelProto, index: GraphIndex, nodes: Iterable[str] | None
) -> list[LinearLayer]:
    """Eligible MatMul/Gemm layers in graph order (so a weight several read is packed under the
    first reader's name, whatever order `nodes` has), restricted to `nodes` when given (ineligible
    names raise)."""
    eligible = {
        node.name: layer for node in model.graph.node if (layer := linear_layer(node, index)) is not None
    }
    if nodes is None:
        return list(eligible.values())
    wanted = set(nodes)
    missing = sorted(name for name in wanted if name not in eligible)
    if missing:
        raise ValueError(
            f"nodes {missing} are not MatMul/Gemm with a constant fp32 2-D weight (Gemm: transA=0)"
        )
    return [layer for name, layer in eligible.items() if name in wanted]


def linear_layer(node: onnx.NodeProto, index: GraphIndex) -> LinearLayer | None:
    """The node as A @ W [K, N] (+ bias), with Gemm's alpha/beta/transB folded; None if not one."""
    weight = index.constant(node.input[1]) if node.op_type in LINEAR_OPS else None
    if weight is None or weight.dtype != np.float32 or weighted_layer(node, weight.ndim) is None:
        return None
    if node.op_type == "MatMul":
        return LinearLayer(node, weight, None)
    weight = weight.T if attribute(node, "transB", 0) else weight
    weight = np.float32(attribute(node, "alpha", 1.0)) * weight
    beta = np.float32(attribute(node, "beta", 1.0))
    bias_name = optional_input(node, 2)
    if bias_name is None:
        return LinearLayer(node, weight, None)
    bias = index.constant(bias_name)
    if bias is not None:
        return LinearLayer(node, weight, beta * bias.astype(np.float32))
    return LinearLayer(node, weight, bias_name) if beta == 1.0 else None


def _lower_to_matmul_nbits(
    editor: GraphEditor,
    layer: LinearLayer,
    fmt: QuantFormat,
    block_size: int,
    accuracy_level: int | None,
    shared: dict[tuple, list[ir.Value]],
    hessian: np.ndarray | None = None,
) -> None:
    """Replace one layer by MatMulNBits (+ a bias Add), packing its weight unless already packed."""
    node = editor.nodes[layer.node.name]
    k, n = layer.weight.shape
    weight_name = node.inputs[1].name
    base = f"{weight_name}_{node.name}_q{fmt.bits}"
    key = (weight_name, attribute(layer.node, "transB", 0), attribute(layer.node, "alpha", 1.0))
    if key not in shared:
        packed, scales, zero_points, _ = matmul_nbits_weights(layer.weight, fmt, block_size, hessian)
        shared[key] = [editor.initializer(base, packed), editor.initializer(base + "_scales", scales)]
        if zero_points is not None:
            shared[key].append(editor.initializer(base + "_zero_points", zero_points))
    output = node.outputs[0].name
    attributes = {"K": k, "N": n, "bits": fmt.bits, "block_size": block_size}
    if accuracy_level is not None:
        attributes["accuracy_level"] = accuracy_level
    matmul_output = output if layer.bias is None else f"{output}_before_bias"
    matmul = editor.node(
        "MatMulNBits",
        [node.inputs[0], *shared[key]],
        [matmul_output],
        name=node.name,
        domain=MS_DOMAIN,
        attributes=attributes,
    )
    _replace_adding_bias(editor, node, layer, matmul, base)


def _replace_adding_bias(
    editor: GraphEditor, node: ir.Node, layer: LinearLayer, matmul: ir.Node, base: str
) -> None:
    """`matmul` in place of `node`, followed by an Add of the layer's bias when it has one."""
    nodes = [matmul]
    if layer.bias is not None:
        bias = editor.value(layer.bias) if isinstance(layer.bias, str) else None
        if bias is None:
            bias = editor.initializer(f"{base}_bias", layer.bias)
        output = node.outputs[0].name
        nodes.append(editor.node("Add", [*matmul.outputs, bias], [output], name=f"{node.name}_bias"))
    editor.replace(node, nodes)


def _at_least_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """A copy whose default-domain opset is >= version (converted by onnx's version converter)."""
    if default_opset(model) >= version:
        return model
    return version_converter.convert_version(model, version)


def _check_block_size(block_size: int) -> None:
    """ORT's 4-bit kernels take power-of-two blocks of at least 16."""
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16, got {block_size!r}")
