"""Collect what quantized layers see: their input tensors on calibration data, and the layer
weights in one [out, in] matrix layout, for the data-driven weight methods (AdaRound, bias
correction). The one place that runs the fp32 model to expose layer inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from edgeq.graph import GraphIndex, attribute
from edgeq.graph.edit import with_outputs
from edgeq.graph.ops import LAYER_OPS, WeightedLayer, weighted_layer
from edgeq.quant.plan import QuantPlan
from edgeq.runtime.session import OrtRunner


@dataclass(frozen=True)
class QuantizedLayer:
    """A planned Conv/Gemm/MatMul whose constant weight is quantized per `axis` (plan's layout)."""

    layer: WeightedLayer
    weight: np.ndarray
    axis: int | None

    @property
    def node(self) -> onnx.NodeProto:
        return self.layer.node

    @property
    def weight_name(self) -> str:
        return self.layer.weight

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def input_name(self) -> str:
        return self.node.input[0]

    def as_matrix(self, array: np.ndarray) -> np.ndarray:
        """An array shaped like the weight, as [out, in] rows that multiply layer input columns."""
        if self.op_type == "Conv":
            return array.reshape(array.shape[0], -1)
        return array if self.layer.out_axis == 0 else array.T  # MatMul / Gemm weight [K, N]

    def from_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Inverse of `as_matrix`: [out, in] rows back to the weight's own layout."""
        if self.op_type == "Conv":
            return matrix.reshape(self.weight.shape)
        return matrix if self.layer.out_axis == 0 else matrix.T

    def input_matrix(self, x: np.ndarray) -> np.ndarray:
        """Layer input as rows [samples, in] that `as_matrix(weight)` multiplies (Conv: im2col)."""
        if self.op_type != "Conv":
            return x.reshape(-1, x.shape[-1])
        return conv_patches(self.node, x, self.weight.shape[2:])

    def channel_axis(self) -> int:
        """The axis of the layer input that holds its input channels."""
        return 1 if self.op_type == "Conv" else -1


def planned_layers(model: onnx.ModelProto, plan: QuantPlan, *, im2col: bool = True) -> list[QuantizedLayer]:
    """Quantized layers with constant fp32 weights: Gemm (transA=0), 2-D MatMul and Conv.

    `im2col` (AdaRound needs input patches) keeps only 1-D/2-D Conv with groups=1 and explicit or
    VALID padding; without it any Conv qualifies (per-channel input means suffice).
    """
    index = GraphIndex(model.graph)
    nodes = {n.name: n for n in model.graph.node}
    layers = []
    for spec in plan.weights:
        node = nodes[spec.node]
        name = node.input[spec.input_index]
        weight = index.constant(name)
        if weight is None or weight.dtype != np.float32 or node.op_type not in LAYER_OPS:
            continue
        layer = weighted_layer(node, weight.ndim)
        if layer is None or (im2col and node.op_type == "Conv" and not _im2col_supported(node, weight)):
            continue
        axis = None if spec.axis is None or weight.ndim < 2 else spec.axis % weight.ndim
        layers.append(QuantizedLayer(layer, weight, axis))
    return layers


def _im2col_supported(node: onnx.NodeProto, weight: np.ndarray) -> bool:
    auto_pad = attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return weight.ndim <= 4 and attribute(node, "group", 1) == 1 and auto_pad in ("NOTSET", "VALID")


def stream_layer_inputs(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    data: Mapping[str, np.ndarray],
    *,
    samples: int,
    batch_size: int = 32,
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of the named intermediate tensors of the fp32 model run on the first `samples`
    calibration samples (streamed, so memory stays one batch deep)."""
    exposed = with_outputs(model, list(tensors)).SerializeToString()
    runner = OrtRunner(exposed, batch_size=batch_size)
    count = min(samples, len(data[runner.input_names[0]]))
    for start in range(0, count, runner.batch_size):
        for outputs in runner.calls(data, start, min(start + runner.batch_size, count)):
            yield {name: outputs[name] for name in tensors}


def input_means(
    model: onnx.ModelProto,
    layers: Sequence[QuantizedLayer],
    data: Mapping[str, np.ndarray],
    *,
    samples: int,
) -> dict[str, np.ndarray]:
    """Per-input-channel mean of each layer's input over the calibration samples, by node name."""
    tensors = sorted({layer.input_name for layer in layers})
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = dict.fromkeys(tensors, 0)
    axes = {layer.input_name: layer.channel_axis() for layer in layers}
    for batch in stream_layer_inputs(model, tensors, data, samples=samples):
        for name, value in batch.items():
            channels = np.moveaxis(value, axes[name], -1).reshape(-1, value.shape[axes[name]])
            sums[name] = sums.get(name, 0.0) + channels.astype(np.float64).sum(axis=0)
            counts[name] += channels.shape[0]
    return {layer.node.name: sums[layer.input_name] / counts[layer.input_name] for layer in layers}


def input_second_moments(
    model: onnx.ModelProto,
    layers: Sequence[QuantizedLayer],
    data: Mapping[str, np.ndarray],
    *,
    samples: int,
) -> dict[str, np.ndarray]:
    """E[x xᵀ] over the input rows (Conv: im2col patches) of each layer, by node name: the whole
    calibration set's output-error energy ‖ΔW x‖² is then tr(ΔW E[x xᵀ] ΔWᵀ)."""
    tensors = sorted({layer.input_name for layer in layers})
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in stream_layer_inputs(model, tensors, data, samples=samples):
        for layer in layers:
            rows = layer.input_matrix(batch[layer.input_name]).astype(np.float64)
            name = layer.node.name
            sums[name] = sums.get(name, 0.0) + rows.T @ rows
            counts[name] = counts.get(name, 0) + rows.shape[0]
    return {name: sums[name] / counts[name] for name in sums}


def conv_patches(node: onnx.NodeProto, x: np.ndarray, kernel: Sequence[int]) -> np.ndarray:
    """im2col rows [batch * positions, C * prod(kernel)] matching weight.reshape(O, -1).

    Plain numpy (strided windows), so bias correction and AdaRound's statistics need no torch."""
    spatial = len(kernel)
    x4 = np.ascontiguousarray(x, dtype=np.float32)
    pads = list(attribute(node, "pads", [0] * 2 * spatial))
    strides = list(attribute(node, "strides", [1] * spatial))
    dilations = list(attribute(node, "dilations", [1] * spatial))
    kernel = list(kernel)
    if spatial == 1:  # a 1-D conv is a 2-D conv over a height-1 image
        x4, kernel = x4[:, :, None, :], [1, *kernel]
        pads, strides, dilations = [0, pads[0], 0, pads[1]], [1, *strides], [1, *dilations]
    padded = np.pad(x4, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))  # ONNX [t, l, b, r]
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))  # [B, C, H', W', sh, sw]
    windows = windows[:, :, :: strides[0], :: strides[1], :: dilations[0], :: dilations[1]]
    batch, channels, rows, cols = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(batch * rows * cols, channels * kernel[0] * kernel[1])
