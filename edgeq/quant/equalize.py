"""Data-free cross-layer equalisation (Nagel et al. 2019): rescale channels between two layers so
their per-channel weight ranges even out and per-tensor (or low-bit) weight grids fit every channel.

ReLU(x / s) = ReLU(x) / s for s > 0, so dividing output channel i of layer 1 (weights and bias) by
s_i and multiplying input channel i of layer 2 by s_i leaves the fp32 function unchanged.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from edgeq.graph import GraphIndex
from edgeq.graph.edit import with_initializers
from edgeq.graph.ops import LAYER_OPS, POSITIVE_HOMOGENEOUS, WeightedLayer, weighted_layer

MAX_ITERATIONS = 20
TOLERANCE = 1e-4  # stop once no channel scale moves by more than this (relative)


@dataclass
class Pair:
    first: WeightedLayer
    second: WeightedLayer
    activation: str | None


def equalize_cross_layer(
    model: onnx.ModelProto, iterations: int = MAX_ITERATIONS
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Equalise every Conv/Gemm/MatMul → (ReLU | LeakyReLU | nothing) → Conv/Gemm/MatMul pair.

    Returns the rescaled model and a summary: the pairs, and per pair the spread (max/min) of
    layer 1's output-channel and layer 2's input-channel weight ranges before and after.
    """
    index = GraphIndex(model.graph)
    pairs = find_pairs(index)
    values = {
        name: index.constant(name).astype(np.float64)
        for pair in pairs
        for layer in (pair.first, pair.second)
        for name in (layer.weight, layer.bias)
        if name is not None
    }
    before = [_spreads(pair, values) for pair in pairs]
    done = _iterate(pairs, values, iterations)
    equalized = with_initializers(model, {name: value.astype(np.float32) for name, value in values.items()})
    summary = {
        "iterations": done,
        "pairs": [
            {
                "first": pair.first.node.name,
                "second": pair.second.node.name,
                "activation": pair.activation,
                "spread_before": spread,
                "spread_after": _spreads(pair, values),
            }
            for pair, spread in zip(pairs, before, strict=True)
        ],
    }
    return equalized, summary


def _iterate(pairs: list[Pair], values: dict[str, np.ndarray], iterations: int) -> int:
    """Sweep all pairs until no scale moves (chains need several sweeps); returns sweeps run."""
    for sweep in range(1, iterations + 1):
        largest_move = max((_equalize_pair(pair, values) for pair in pairs), default=0.0)
        if largest_move < TOLERANCE:
            return sweep
    return iterations


def find_pairs(index: GraphIndex) -> list[Pair]:
    """Layer pairs joined by a single-consumer path through at most one positive-homogeneous op,
    whose weights (and layer 1's bias) are constants used nowhere else."""
    uses = Counter(name for node in index.graph.node for name in node.input)
    pairs = []
    for node in index.graph.node:
        first = _layer(node, index, uses, as_first=True)
        if first is None:
            continue
        feeding = _layer_output(first, index)
        consumer = _sole_consumer(feeding, index)
        activation = None
        if consumer is not None and consumer.op_type in POSITIVE_HOMOGENEOUS:
            activation, feeding = consumer.op_type, consumer.output[0]
            consumer = _sole_consumer(feeding, index)
        if consumer is None or consumer.input[0] != feeding:
            continue
        second = _layer(consumer, index, uses, as_first=False)
        if second is not None and _channels_match(first, second, index):
            pairs.append(Pair(first, second, activation))
    return pairs


def _layer(node: onnx.NodeProto, index: GraphIndex, uses: Counter, as_first: bool) -> WeightedLayer | None:
    """The node as an equalisable layer, or None (non-constant/shared weight, transA, bias...)."""
    if node.op_type not in LAYER_OPS or len(node.input) < 2:
        return None
    weight = index.constant(node.input[1])
    if weight is None or weight.dtype != np.float32 or uses[node.input[1]] != 1:
        return None
    layer = weighted_layer(node, weight.ndim)
    bias_name = _bias_name(node, index) if as_first else None
    if layer is None or (as_first and bias_name == ""):
        return None  # a bias that is not a private constant vector cannot be rescaled
    return dataclasses.replace(layer, bias=bias_name)


def _bias_name(node: onnx.NodeProto, index: GraphIndex) -> str | None:
    """Layer 1's bias initializer (a MatMul's: its sole following constant Add); "" if unusable."""
    if node.op_type == "MatMul":
        add = _sole_consumer(node.output[0], index)
        if add is None or add.op_type != "Add":
            return None
        name = add.input[1] if add.input[0] == node.output[0] else add.input[0]
    else:
        if len(node.input) < 3 or not node.input[2]:
            return None
        name = node.input[2]
    value = index.constant(name)
    usable = name in index.initializers and value is not None and value.ndim == 1
    return name if usable and len(index.consumers[name]) == 1 else ""


def _layer_output(layer: WeightedLayer, index: GraphIndex) -> str:
    """What follows layer 1: its output, or its bias Add's output for a MatMul with one."""
    output = layer.node.output[0]
    if layer.node.op_type == "MatMul" and layer.bias:
        return _sole_consumer(output, index).output[0]
    return output


def _sole_consumer(tensor: str, index: GraphIndex) -> onnx.NodeProto | None:
    consumers = index.consumers.get(tensor, [])
    if len(consumers) != 1 or tensor in index.outputs:
        return None
    return consumers[0]


def _channels_match(first: WeightedLayer, second: WeightedLayer, index: GraphIndex) -> bool:
    out_channels = index.constant(first.weight).shape[first.out_axis]
    weight = index.constant(second.weight)
    if second.node.op_type == "Conv":
        return weight.shape[1] * second.groups == out_channels
    return weight.shape[1 - second.out_axis] == out_channels


def _equalize_pair(pair: Pair, values: dict[str, np.ndarray]) -> float:
    """Apply s_i = sqrt(r1_i · r2_i) / r2_i to one pair; returns the largest |s_i − 1|."""
    r1 = output_ranges(pair.first, values[pair.first.weight])
    r2 = input_ranges(pair.second, values[pair.second.weight])
    usable = (r1 > 0) & (r2 > 0)
    scale = np.where(usable, np.sqrt(r1 * r2) / np.where(usable, r2, 1.0), 1.0)
    first, second = pair.first, pair.second
    values[first.weight] = _scaled_along(values[first.weight], 1 / scale, first.out_axis)
    if first.bias:
        values[first.bias] = values[first.bias] / scale
    values[second.weight] = _scaled_inputs(second, values[second.weight], scale)
    return float(np.max(np.abs(scale - 1.0), initial=0.0))


def output_ranges(layer: WeightedLayer, weight: np.ndarray) -> np.ndarray:
    """max |w| of each output channel."""
    moved = np.moveaxis(np.abs(weight), layer.out_axis, 0)
    return moved.reshape(moved.shape[0], -1).max(axis=1)


def input_ranges(layer: WeightedLayer, weight: np.ndarray) -> np.ndarray:
    """max |w| of each input channel (a grouped Conv's channel spans its group's outputs)."""
    magnitude = np.abs(weight)
    if layer.node.op_type != "Conv":
        return magnitude.max(axis=layer.out_axis)
    per_kernel = magnitude.reshape(weight.shape[0], weight.shape[1], -1).max(axis=2)  # [O, C/g]
    return per_kernel.reshape(layer.groups, -1, weight.shape[1]).max(axis=1).reshape(-1)


def _scaled_along(weight: np.ndarray, factors: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * weight.ndim
    shape[axis] = -1
    return weight * factors.reshape(shape)


def _scaled_inputs(layer: WeightedLayer, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Multiply each input channel's weights by its scale."""
    if layer.node.op_type != "Conv":
        return _scaled_along(weight, scale, 1 - layer.out_axis)
    groups, per_group = layer.groups, weight.shape[1]
    factors = np.repeat(scale.reshape(groups, per_group), weight.shape[0] // groups, axis=0)
    return weight * factors.reshape(*factors.shape, *([1] * (weight.ndim - 2)))


def _spreads(pair: Pair, values: dict[str, np.ndarray]) -> dict[str, float]:
    """max/min of layer 1's output-channel ranges and of layer 2's input-channel ranges."""
    r1 = output_ranges(pair.first, values[pair.first.weight])
    r2 = input_ranges(pair.second, values[pair.second.weight])
    return {"first": _spread(r1), "second": _spread(r2)}


def _spread(ranges: np.ndarray) -> float:
    positive = ranges[ranges > 0]
    return float(positive.max() / positive.min()) if positive.size else 1.0
