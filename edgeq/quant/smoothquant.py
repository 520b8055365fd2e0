"""SmoothQuant-style scale migration (Xiao et al. 2023): activation outlier channels moved into the
weights of the MatMuls that read them, so per-tensor INT8 activations keep their resolution.

For an activation X read by MatMuls with constant weights W [K, N], each input channel j gets
s_j = max|X_j|^α / max|W_j,:|^(1−α) (X maxima measured on calibration data); the readers then
compute (X · 1/s) · (diag(s) W) — the same product. 1/s is one inserted Mul, because in a
transformer the LayerNorm output that carries the outliers also feeds the residual Add, which
must keep the unscaled X.

Two rules. For one calibrated activation scale per tensor (static INT8, per-tensor dynamic):
α = 0.95 with s clipped to [its 10% quantile, 100] (NNCF's transformer rule): nearly all of the
outliers move into the per-channel-quantized weights, and the floor keeps quiet channels from
shrinking their weight rows below the weights' int8 step. On all-MiniLM-L6-v2 (OpenVINO, static
INT8) recall@10 0.919 plain → 0.961 (α = 0.5 without the clip: 0.90 on ONNX Runtime). For per-token
activation scales, which already absorb outlier tokens: α = 0.5 without the floor (the paper's
setting), so the weights keep their resolution. MiniLM per-token INT8 with 7-bit weights (AVX2):
recall@10 0.939 plain, 0.945 by NNCF's rule, 0.961 by this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from edgeq.graph import GraphIndex
from edgeq.quant.layer_inputs import stream_layer_inputs


@dataclass(frozen=True)
class SmoothRule:
    """s_j = x_j^alpha / w_j^(1-alpha), clipped to [its `floor_quantile` quantile, `ceiling`]."""

    alpha: float
    floor_quantile: float
    ceiling: float = 100.0


PER_TENSOR_RULE = SmoothRule(alpha=0.95, floor_quantile=0.1)
PER_TOKEN_RULE = SmoothRule(alpha=0.5, floor_quantile=0.0)


def smooth_matmul_inputs(
    model: onnx.ModelProto,
    data: Mapping[str, np.ndarray],
    samples: int,
    rule: SmoothRule = PER_TENSOR_RULE,
) -> onnx.ModelProto:
    """A copy of `model` with every activation read by constant-weight MatMuls smoothed."""
    index = GraphIndex(model.graph)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        weight = index.constant(node.input[1]) if node.op_type == "MatMul" else None
        constant_weight = weight is not None and weight.ndim == 2 and weight.dtype == np.float32
        if constant_weight and not index.is_constant(node.input[0]):
            readers.setdefault(node.input[0], []).append(node)
    types = {v.name: v for v in [*model.graph.input, *model.graph.value_info]}
    readers = {t: group for t, group in readers.items() if t in types}  # the plan needs its type
    if not readers:
        return model
    maxima = _channel_maxima(model, list(readers), data, samples)
    smoothed = onnx.ModelProto.FromString(model.SerializeToString())
    nodes = {n.name: n for n in smoothed.graph.node}
    added = []
    for tensor, group in readers.items():
        weights = [index.constant(r.input[1]) for r in group]
        w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        x_max = maxima[tensor]
        scale = _scales(x_max, w_max, rule)
        inverse = f"{tensor}_smooth_inverse"
        scaled = f"{tensor}_smoothed"
        smoothed.graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        added.append(onnx.helper.make_node("Mul", [tensor, inverse], [scaled], name=f"{tensor}_smooth"))
        typed = onnx.ValueInfoProto.FromString(types[tensor].SerializeToString())
        typed.name = scaled
        smoothed.graph.value_info.append(typed)
        for reader, weight in zip(group, weights, strict=True):
            node = nodes[reader.name]
            name = f"{node.input[1]}_{node.name}_smoothed"
            smoothed.graph.initializer.append(numpy_helper.from_array(weight * scale[:, None], name))
            node.input[0], node.input[1] = scaled, name
    _insert_in_order(smoothed, added)
    return smoothed


def _scales(x_max: np.ndarray, w_max: np.ndarray, rule: SmoothRule) -> np.ndarray:
    """The rule's per-channel scales (1 for dead channels)."""
    live, alpha = (x_max > 0) & (w_max > 0), rule.alpha
    scale = np.where(live, x_max**alpha / np.maximum(w_max, 1e-12) ** (1 - alpha), 1.0)
    return np.clip(scale, np.quantile(scale, rule.floor_quantile), rule.ceiling).astype(np.float32)


def _channel_maxima(
    model: onnx.ModelProto, tensors: list[str], data: Mapping[str, np.ndarray], samples: int
) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each tensor over the calibration samples."""
    maxima: dict[str, np.ndarray] = {}
    for batch in stream_layer_inputs(model, tensors, data, samples=samples):
        for name, value in batch.items():
            channels = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
            maxima[name] = np.maximum(maxima.get(name, channels), channels)
    return maxima


def _insert_in_order(model: onnx.ModelProto, added: list[onnx.NodeProto]) -> None:
    """Each inserted Mul right after the node that produces its input (graph inputs: first)."""
    by_input = {m.input[0]: m for m in added}
    ordered = [m for m in added if m.input[0] in {i.name for i in model.graph.input}]
    for node in model.graph.node:
        ordered.append(node)
        ordered += [by_input[o] for o in node.output if o in by_input]
    del model.graph.node[:]
    model.graph.node.extend(ordered)
