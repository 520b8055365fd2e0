"""What IFM changed, per weight layer, per channel group and in total, for the JSON report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from edgeq.passes.ifm.graph_index import StreamIndex
from edgeq.passes.ifm.layers import layer_flops, layer_parameters, weight_layer


@dataclass
class LayerCost:
    """A weight layer's width, parameters and FLOPs per sample (None: spatial size unknown)."""

    node: str
    op_type: str
    out_channels: int
    in_channels: int
    parameters: int
    flops: int | None


@dataclass
class LayerSummary:
    node: str
    op_type: str
    channels_before: int
    channels_after: int
    in_channels_before: int
    in_channels_after: int
    parameters_before: int
    parameters_after: int
    flops_before: int | None
    flops_after: int | None
    note: str = ""
    lossless_merged: int = 0  # output channels removed as identical to another (no change in outputs)
    similar_merged: int = 0  # output channels removed as near-duplicates (measured, see PruneSearch)


@dataclass
class GroupSummary:
    """One channel group: how many channels merged, and which tensors and weights it spans.
    `exact_only_because` says why only identical channels could merge (None: near ones could)."""

    channels_before: int
    channels_after: int
    merged: int
    exact_only: bool
    tensors: list[str]
    weights: list[str]
    left_alone_because: str | None = None
    exact_only_because: str | None = None
    lossless: int = 0  # of `merged`, channels identical to another: merged without changing outputs

    @property
    def similar(self) -> int:
        return self.merged - self.lossless


@dataclass
class PruningSummary:
    """The IFM pass's result; `to_dict()` is the report's `pruning` section."""

    threshold: float
    max_ratio: float
    approximate: bool
    passes: int = 0
    layers: list[LayerSummary] = field(default_factory=list)
    groups: list[GroupSummary] = field(default_factory=list)
    parameters_before: int = 0
    parameters_after: int = 0
    flops_before: int = 0
    flops_after: int = 0
    flops_unknown_layers: list[str] = field(default_factory=list)

    @property
    def channels_merged(self) -> int:
        return sum(group.merged for group in self.groups)

    @property
    def channels_lossless(self) -> int:
        return sum(group.lossless for group in self.groups)

    @property
    def parameters_kept(self) -> float:
        return self.parameters_after / self.parameters_before if self.parameters_before else 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "channels_merged": self.channels_merged,
            "channels_lossless": self.channels_lossless,
            "parameters_kept": self.parameters_kept,
            "flops_kept": self.flops_after / self.flops_before if self.flops_before else 1.0,
        }


@dataclass
class PruneTrial:
    """One merge amount the compile measured: the pruned fp32 model against the unpruned one."""

    max_ratio: float  # 0: identical channels only
    channels_merged: int
    parameters_kept: float
    bytes: int
    worst_cosine: float
    task_drop: float | None
    problem: str | None  # why it spends more than pruning's share of the budget, or None
    threshold: float | None = None  # β of the similarity merges (None: identical channels only)


@dataclass
class PruneSearch:
    """How the compile chose the amount of merging: per β the largest measured `max_ratio` whose
    pruned model spends at most `budget_share` of the accuracy budget (the rest is left to
    quantization), then the one keeping the fewest parameters."""

    budget_share: float
    ratio_cap: float
    cap_from_recipe: bool
    trials: list[PruneTrial] = field(default_factory=list)
    chosen_max_ratio: float | None = None  # None: the unpruned model was kept
    chosen_threshold: float | None = None  # β of the kept model (None: identical merges only)
    lossless_verified: bool | None = None  # identical-channel merges reproduced the outputs
    lossless_max_abs: float | None = None  # their largest output difference on calibration data
    bytes_before: int = 0
    bytes_after: int = 0
    kept_unpruned_because: str | None = None


def layer_costs(model: onnx.ModelProto) -> list[LayerCost]:
    """Cost of every weight layer, in graph order; shapes must already be inferred."""
    index = StreamIndex(model.graph)
    costs = []
    for node in model.graph.node:
        layer = weight_layer(node, index)
        if layer is None:
            continue
        dims = index.initializers[layer.weight].dims
        costs.append(
            LayerCost(
                layer.label,
                node.op_type,
                dims[layer.out_axis] * _grouped(layer),
                dims[layer.in_axis],
                layer_parameters(layer, index),
                layer_flops(layer, index),
            )
        )
    return costs


def _grouped(layer) -> int:
    """ConvTranspose stores out-channels per group; Conv stores in-channels per group."""
    return layer.groups if layer.node.op_type == "ConvTranspose" else 1


def model_parameters(model: onnx.ModelProto) -> int:
    """Number of floating-point initializer elements: the model's learned parameters."""
    floating = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.BFLOAT16,
    }
    return sum(math.prod(t.dims) for t in model.graph.initializer if t.data_type in floating)


def compare_layers(before: list[LayerCost], after: list[LayerCost]) -> list[LayerSummary]:
    """Pair up the same layers before and after (the pass keeps every node, in order)."""
    return [
        LayerSummary(
            old.node,
            old.op_type,
            old.out_channels,
            new.out_channels,
            old.in_channels,
            new.in_channels,
            old.parameters,
            new.parameters,
            old.flops,
            new.flops,
            note="" if old.flops is not None else "FLOPs unknown: dynamic spatial size",
        )
        for old, new in zip(before, after, strict=True)
    ]
