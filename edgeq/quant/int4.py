"""4-bit weights in the forms runtimes execute: MatMulNBits (ORT CPU), opset-21 blocked INT4
DequantizeLinear (TensorRT), block-quantized embedding tables, and the accuracy_level choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from edgeq.graph import GraphIndex, attribute, default_opset, drop_unused_initializers
from edgeq.quant.primitives import (
    QuantFormat,
    block_weight_params,
    dequantize_blocked,
    quantize,
    quantize_blocked,
    weight_params,
)

MS_DOMAIN = "com.microsoft"
BLOCKED_DQ_OPSET = 21
INT4_SYMMETRIC = QuantFormat(bits=4, signed=True, symmetric=True)
UINT4_ASYMMETRIC = QuantFormat(bits=4, signed=False, symmetric=False)
CONV_OUTPUT_AXIS = {"Conv": 0, "ConvTranspose": 1}  # weight axis indexing output channels
UINT4_DEFAULT_ZERO_POINT = 8
"""MatMulNBits / GatherBlockQuantized read uint4 codes; without zero points they subtract 8."""


@dataclass(frozen=True)
class LinearLayer:
    """A MatMul/Gemm computing A @ weight (+ bias) with a constant weight [K, N] (K = reduced)."""

    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | str | None


def lower_to_matmul_nbits(
    model: onnx.ModelProto,
    nodes: Iterable[str] | None = None,
    block_size: int = 32,
    symmetric: bool = True,
    accuracy_level: int | None = None,
) -> onnx.ModelProto:
    """Replace MatMul/Gemm with constant fp32 weights by com.microsoft MatMulNBits (4-bit blocks).

    `nodes` None lowers every eligible node; a named node that is not eligible raises ValueError.
    Gemm's transB/alpha fold into the weight; its bias (times beta) becomes a following Add.
    """
    _check_block_size(block_size)
    lowered = _copy(model)
    index = GraphIndex(lowered.graph)
    fmt = INT4_SYMMETRIC if symmetric else UINT4_ASYMMETRIC
    replacements: dict[str, list[onnx.NodeProto]] = {}
    shared: dict[tuple, list[str]] = {}  # an unrolled loop reuses one weight: pack it once
    for layer in _selected_layers(lowered, index, nodes):
        replacements[layer.node.name] = _matmul_nbits_nodes(
            lowered.graph, layer, fmt, block_size, accuracy_level, shared
        )
    _splice(lowered.graph, replacements)
    _ensure_opset(lowered, MS_DOMAIN, 1)
    drop_unused_initializers(lowered.graph)
    return lowered


def pack_uint4(codes: np.ndarray) -> np.ndarray:
    """Pack uint4 codes (0..15) two per byte along the last axis, first value in the low nibble."""
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.shape[-1] % 2:
        codes = np.concatenate([codes, np.zeros_like(codes[..., :1])], axis=-1)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def matmul_nbits_weights(
    weight: np.ndarray, fmt: QuantFormat, block_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """MatMulNBits inputs for a weight [K, N] in blocks of `block_size` along K: B [N, blocks,
    block_size/2] uint8, scales [N*blocks], packed zero points (None: symmetric), dequantized W."""
    k, n = weight.shape
    scale, zero = block_weight_params(weight, fmt, axis=0, block_size=block_size)
    q = quantize_blocked(weight, scale, zero, fmt, axis=0, block_size=block_size)
    offset = UINT4_DEFAULT_ZERO_POINT if fmt.signed else 0  # signed int4 -> uint4 code
    codes = (q.astype(np.int16) + offset).astype(np.uint8).T  # [N, K]
    blocks = scale.shape[0]
    padded = np.full((n, blocks * block_size), UINT4_DEFAULT_ZERO_POINT, np.uint8)
    padded[:, :k] = codes
    packed = pack_uint4(padded.reshape(n, blocks, block_size))
    zero_points = None if fmt.signed else pack_uint4(zero.T).reshape(-1)
    dequantized = dequantize_blocked(q, scale, zero, axis=0, block_size=block_size)
    return packed, scale.T.reshape(-1).astype(np.float32), zero_points, dequantized


def lower_to_blocked_dq(
    model: onnx.ModelProto, nodes: Iterable[str] | None = None, block_size: int = 32
) -> onnx.ModelProto:
    """Store MatMul/Gemm constant weights as INT4 blocks along K with an opset-21 DequantizeLinear
    (the form TensorRT 10 reads); the opset is converted to 21 first when lower."""
    _check_block_size(block_size)
    lowered = _at_least_opset(model, BLOCKED_DQ_OPSET)
    index = GraphIndex(lowered.graph)
    for layer in _selected_layers(lowered, index, nodes):
        node = layer.node
        weight = index.constant(node.input[1])
        axis = 1 if node.op_type == "Gemm" and attribute(node, "transB", 0) else 0
        node.input[1] = _blocked_dq(lowered.graph, node, weight, axis, block_size)
    drop_unused_initializers(lowered.graph)
    return lowered


def lower_conv_to_int4(model: onnx.ModelProto, nodes: Iterable[str]) -> onnx.ModelProto:
    """Store Conv/ConvTranspose weights as INT4 per output channel behind an opset-21 DequantizeLinear.

    No CPU kernel computes a convolution in 4 bits, so this is a size form: the runtime
    dequantizes the weights and convolves in float.
    """
    lowered = _at_least_opset(model, BLOCKED_DQ_OPSET)
    index = GraphIndex(lowered.graph)
    wanted = set(nodes)
    convs = [n for n in lowered.graph.node if n.name in wanted and n.op_type in CONV_OUTPUT_AXIS]
    for node in convs:
        weight = index.constant(node.input[1])
        if weight is None or weight.dtype != np.float32:
            raise ValueError(f"{node.op_type} {node.name!r} has no constant fp32 weight for 4 bits")
        axis = CONV_OUTPUT_AXIS[node.op_type]
        scale, zero = weight_params(weight, INT4_SYMMETRIC, axis=axis)
        q = quantize(weight, scale, zero, INT4_SYMMETRIC, axis=axis)
        base = f"{node.input[1]}_{node.name}_int4"
        lowered.graph.initializer.extend(
            [
                helper.make_tensor(base, TensorProto.INT4, q.shape, q.reshape(-1).tolist()),
                numpy_helper.from_array(scale.astype(np.float32), base + "_scale"),
            ]
        )
        output = base + "_dequantized"
        dq = helper.make_node(
            "DequantizeLinear", [base, base + "_scale"], [output], name=output + "_node", axis=axis
        )
        lowered.graph.node.insert(list(lowered.graph.node).index(node), dq)
        node.input[1] = output
    drop_unused_initializers(lowered.graph)
    return lowered


def _blocked_dq(
    graph: onnx.GraphProto, node: onnx.NodeProto, weight: np.ndarray, axis: int, block_size: int
) -> str:
    """Add INT4 weight + block scales + DequantizeLinear for one node; returns the DQ output."""
    scale, zero = block_weight_params(weight, INT4_SYMMETRIC, axis, block_size)
    q = quantize_blocked(weight, scale, zero, INT4_SYMMETRIC, axis, block_size)
    base = f"{node.input[1]}_{node.name}_int4"
    graph.initializer.extend(
        [
            helper.make_tensor(base, TensorProto.INT4, q.shape, q.reshape(-1).tolist()),
            numpy_helper.from_array(scale.astype(np.float32), base + "_scale"),
        ]
    )
    output = base + "_dequantized"
    dq = helper.make_node(
        "DequantizeLinear",
        [base, base + "_scale"],
        [output],
        name=output + "_node",
        axis=axis,
        block_size=block_size,
    )
    position = list(graph.node).index(node)
    graph.node.insert(position, dq)
    return output


def quantize_embeddings(model: onnx.ModelProto, bits: int = 8, block_size: int = 32) -> onnx.ModelProto:
    """Store constant Gather tables (axis 0, 2-D fp32) in 8 or 4 bits so the file really shrinks.

    8 bits: int8 table with per-row scales; Gather the int8 rows, then Cast and scale them
    (standard ONNX, and only the looked-up rows are dequantized per call).
    4 bits: com.microsoft GatherBlockQuantized on uint4 codes packed in uint8, blocks of
    `block_size` along each row (ORT's CPU kernel gathers on axis 0 and blocks the last axis).
    """
    if bits not in (4, 8):
        raise ValueError(f"embedding bits must be 4 or 8, got {bits!r}")
    if bits == 4:
        _check_block_size(block_size)
    quantized = _copy(model)
    index = GraphIndex(quantized.graph)
    for node in list(quantized.graph.node):
        table = _embedding_table(node, index)
        if table is None or (bits == 4 and table.shape[1] % 2):
            continue
        if bits == 8:
            _int8_rows_gather(quantized.graph, node, table, default_opset(quantized))
        else:
            _gather_block_quantized(quantized.graph, node, table, block_size)
    if bits == 4:
        _ensure_opset(quantized, MS_DOMAIN, 1)
    drop_unused_initializers(quantized.graph)
    return quantized


def _embedding_table(node: onnx.NodeProto, index: GraphIndex) -> np.ndarray | None:
    """The fp32 [rows, dim] constant a Gather reads rows of, or None."""
    if node.op_type != "Gather" or attribute(node, "axis", 0) != 0:
        return None
    table = index.constant(node.input[0])
    if table is None or table.dtype != np.float32 or table.ndim != 2:
        return None
    return table


def _int8_rows_gather(graph: onnx.GraphProto, node: onnx.NodeProto, table: np.ndarray, opset: int) -> None:
    """Gather int8 rows, then scale them: only the looked-up rows are dequantized per call."""
    fmt = QuantFormat(bits=8, signed=True, symmetric=True, narrow_range=True)
    scale, zero = weight_params(table, fmt, axis=0)
    q = quantize(table, scale, zero, fmt, axis=0)
    base = f"{node.input[0]}_{node.name}_int8"
    ids = node.input[1]
    graph.initializer.extend(
        [numpy_helper.from_array(q, base), numpy_helper.from_array(scale.astype(np.float32), base + "_scale")]
    )
    unsqueeze = (
        helper.make_node("Unsqueeze", [base + "_row_scale", base + "_last_axis"], [base + "_row_scale_1"])
        if opset >= 13
        else helper.make_node("Unsqueeze", [base + "_row_scale"], [base + "_row_scale_1"], axes=[-1])
    )
    if opset >= 13:
        graph.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), base + "_last_axis"))
    replacement = [
        helper.make_node("Gather", [base, ids], [base + "_rows"], name=node.name + "_int8_rows"),
        helper.make_node("Cast", [base + "_rows"], [base + "_rows_float"], to=TensorProto.FLOAT),
        helper.make_node("Gather", [base + "_scale", ids], [base + "_row_scale"]),
        unsqueeze,
        helper.make_node(
            "Mul", [base + "_rows_float", base + "_row_scale_1"], list(node.output), name=node.name
        ),
    ]
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new_node in enumerate(replacement):
        graph.node.insert(position + offset, new_node)


def _gather_block_quantized(
    graph: onnx.GraphProto, node: onnx.NodeProto, table: np.ndarray, block_size: int
) -> None:
    scale, zero = block_weight_params(table, INT4_SYMMETRIC, axis=1, block_size=block_size)
    q = quantize_blocked(table, scale, zero, INT4_SYMMETRIC, axis=1, block_size=block_size)
    base = f"{node.input[0]}_{node.name}_uint4"
    graph.initializer.extend(
        [
            numpy_helper.from_array(pack_uint4(q + UINT4_DEFAULT_ZERO_POINT), base),
            numpy_helper.from_array(scale.astype(np.float32), base + "_scale"),
        ]
    )
    replacement = helper.make_node(
        "GatherBlockQuantized",
        [base, node.input[1], base + "_scale"],
        list(node.output),
        name=node.name,
        domain=MS_DOMAIN,
        bits=4,
        block_size=block_size,
        gather_axis=0,
        quantize_axis=1,
    )
    graph.node.insert(list(graph.node).index(node), replacement)
    graph.node.remove(node)


def set_accuracy_level(model: onnx.ModelProto, level: int) -> onnx.ModelProto:
    """A copy with every MatMulNBits node's accuracy_level set (0 unset, 1 fp32, 2 fp16, 3 bf16,
    4 int8 compute)."""
    copy = _copy(model)
    nodes = [n for n in copy.graph.node if n.op_type == "MatMulNBits" and n.domain == MS_DOMAIN]
    if not nodes:
        raise ValueError("the model has no MatMulNBits node whose accuracy_level could be set")
    for node in nodes:
        _set_int_attribute(node, "accuracy_level", level)
    return copy


def _selected_layers(
    model: onnx.ModelProto, index: GraphIndex, nodes: Iterable[str] | None
) -> list[LinearLayer]:
    """Eligible MatMul/Gemm layers, restricted to `nodes` when given (ineligible names raise)."""
    eligible = {
        node.name: layer for node in model.graph.node if (layer := linear_layer(node, index)) is not None
    }
    if nodes is None:
        return list(eligible.values())
    wanted = list(nodes)
    missing = [name for name in wanted if name not in eligible]
    if missing:
        raise ValueError(
            f"nodes {missing} are not MatMul/Gemm with a constant fp32 2-D weight (Gemm: transA=0)"
        )
    return [eligible[name] for name in wanted]


def linear_layer(node: onnx.NodeProto, index: GraphIndex) -> LinearLayer | None:
    """The node as A @ W [K, N] (+ bias), with Gemm's alpha/beta/transB folded; None if not one."""
    if node.op_type not in ("MatMul", "Gemm") or node.domain not in ("", "ai.onnx"):
        return None
    weight = index.constant(node.input[1])
    if weight is None or weight.dtype != np.float32 or weight.ndim != 2:
        return None
    if node.op_type == "MatMul":
        return LinearLayer(node, weight, None)
    if attribute(node, "transA", 0):
        return None
    weight = weight.T if attribute(node, "transB", 0) else weight
    weight = np.float32(attribute(node, "alpha", 1.0)) * weight
    beta = np.float32(attribute(node, "beta", 1.0))
    bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias_name is None:
        return LinearLayer(node, weight, None)
    bias = index.constant(bias_name)
    if bias is not None:
        return LinearLayer(node, weight, beta * bias.astype(np.float32))
    return LinearLayer(node, weight, bias_name) if beta == 1.0 else None


def _matmul_nbits_nodes(
    graph: onnx.GraphProto,
    layer: LinearLayer,
    fmt: QuantFormat,
    block_size: int,
    accuracy_level: int | None,
    shared: dict[tuple, list[str]],
) -> list[onnx.NodeProto]:
    """The MatMulNBits node (+ bias Add) replacing one layer; adds its initializers to graph."""
    node = layer.node
    k, n = layer.weight.shape
    base = f"{node.input[1]}_{node.name}_q4"
    key = (node.input[1], attribute(node, "transB", 0), attribute(node, "alpha", 1.0))
    if key not in shared:
        packed, scales, zero_points, _ = matmul_nbits_weights(layer.weight, fmt, block_size)
        graph.initializer.extend(
            [numpy_helper.from_array(packed, base), numpy_helper.from_array(scales, base + "_scales")]
        )
        shared[key] = [base, base + "_scales"]
        if zero_points is not None:
            graph.initializer.append(numpy_helper.from_array(zero_points, base + "_zero_points"))
            shared[key].append(base + "_zero_points")
    inputs = [node.input[0], *shared[key]]
    output = node.output[0]
    matmul_output = output if layer.bias is None else f"{output}_before_bias"
    attrs = {"K": k, "N": n, "bits": 4, "block_size": block_size}
    if accuracy_level is not None:
        attrs["accuracy_level"] = accuracy_level
    nodes = [
        helper.make_node("MatMulNBits", inputs, [matmul_output], name=node.name, domain=MS_DOMAIN, **attrs)
    ]
    if layer.bias is not None:
        bias = layer.bias
        if isinstance(bias, np.ndarray):
            bias = f"{base}_bias"
            graph.initializer.append(numpy_helper.from_array(layer.bias, bias))
        nodes.append(helper.make_node("Add", [matmul_output, bias], [output], name=f"{node.name}_bias"))
    return nodes


def _splice(graph: onnx.GraphProto, replacements: Mapping[str, list[onnx.NodeProto]]) -> None:
    """Replace nodes by name with node lists, keeping topological order."""
    ordered: list[onnx.NodeProto] = []
    for node in graph.node:
        ordered.extend(replacements.get(node.name, [node]))
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


def _at_least_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """A copy whose default-domain opset is >= version (converted by onnx's version converter)."""
    if default_opset(model) >= version:
        return _copy(model)
    return version_converter.convert_version(model, version)


def _ensure_opset(model: onnx.ModelProto, domain: str, version: int) -> None:
    if not any(o.domain == domain for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(domain, version))


def _set_int_attribute(node: onnx.NodeProto, name: str, value: int) -> None:
    for attr in node.attribute:
        if attr.name == name:
            attr.i = value
            return
    node.attribute.append(helper.make_attribute(name, value))


def _check_block_size(block_size: int) -> None:
    """ORT's 4-bit kernels take power-of-two blocks of at least 16."""
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16, got {block_size!r}")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.ModelProto.FromString(model.SerializeToString())
