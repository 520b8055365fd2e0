"""The IFM pass: find channel groups, merge near-duplicate channels, write narrower weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from edgeq.graph.edit import GraphEditor
from edgeq.passes.ifm.channel_groups import ChannelGroup, find_channel_groups
from edgeq.passes.ifm.graph_index import StreamIndex
from edgeq.passes.ifm.merging import GroupMerger, Weights
from edgeq.passes.ifm.summary import (
    GroupSummary,
    PruningSummary,
    compare_layers,
    layer_costs,
    model_parameters,
)
from edgeq.progress import Progress


def merge_features(
    model: onnx.ModelProto,
    *,
    threshold: float = 0.25,
    max_ratio: float = 0.2,
    protected: Iterable[str] = (),
    approximate: bool = False,
    lossless: bool = True,
    progress: Progress | None = None,
) -> tuple[onnx.ModelProto, PruningSummary]:
    """Data-free structured pruning by Iterative Feature Merging (Chen et al., ICLR 2024).

    First every set of identical channels (equal incoming weights and bias; on positively homogeneous
    streams such as ReLU, positive multiples too) merges into one: lossless, never capped (`lossless`
    False skips it, so that max_ratio 0 describes the groups without changing the model). Then
    near-duplicates merge by similarity: `threshold` is β in the stopping rule
    min‖w_i−w_j‖² ≤ β·max‖w_k−w_l‖² per group, and `max_ratio` caps the share of a group's channels
    merged away by similarity. Names in `protected` (tensors, weights or nodes) and graph outputs keep
    their channels; `approximate` lets near-duplicates merge through non-homogeneous activations
    (GELU, SiLU, ...), which changes outputs slightly. Overcomplete groups (more channels than inputs
    per channel) merge identical channels only. `progress` shows one bar and a summary line.

    Defaults β = 0.25, max_ratio = 0.2: once a wide layer starts merging, averaging pulls merged
    channels closer to the rest and it merges up to the cap, so β decides whether a layer is
    redundant at all and the cap how much goes. The pass has no data, so the cap is conservative;
    a compile chooses it by measurement instead (edgeq.stages.prune_search).
    """
    report = progress or Progress(enabled=False)
    original = onnx.shape_inference.infer_shapes(model)
    index = StreamIndex(original.graph)
    groups = find_channel_groups(index, frozenset(protected))
    weights = _working_weights(index, groups)
    mergers = [
        GroupMerger.start(group, weights, max_ratio=max_ratio, approximate=approximate)
        for group in groups
        if group.mergeable
    ]
    report.note(f"IFM: {len(groups)} channel groups, {len(mergers)} mergeable")
    passes = _merge_round_robin(mergers, lambda merger: lossless and merger.merge_identical(weights))
    similar_total = sum(0 if merger.exact_only else merger.limit for merger in mergers)
    with report.bar("IFM: merging channel pairs", similar_total) as advance:
        passes += _merge_round_robin(mergers, lambda merger: merger.try_similar(weights, threshold), advance)
    for merger in mergers:
        merger.finish(weights)
    changed = [merger for merger in mergers if merger.merged]
    pruned = _rewrite(original, weights, changed)
    summary = _summarise(original, pruned, groups, mergers, threshold, max_ratio, approximate)
    summary.passes = passes
    report.note(
        f"IFM: merged {summary.channels_merged} channels ({summary.channels_lossless} identical, "
        f"{summary.channels_merged - summary.channels_lossless} by similarity) in {passes} "
        f"pass{'' if passes == 1 else 'es'}, "
        f"parameters kept {100 * summary.parameters_kept:.1f}%"
    )
    return pruned, summary


def _working_weights(index: StreamIndex, groups: list[ChannelGroup]) -> Weights:
    names = {slot.initializer for group in groups if group.mergeable for slot in group.slots}
    return {name: numpy_helper.to_array(index.initializers[name]).astype(np.float64) for name in names}


def _merge_round_robin(
    mergers: list[GroupMerger],
    merge_one: Callable[[GroupMerger], int],
    advance: Callable[[], None] = lambda: None,
) -> int:
    """Each group merges once per pass (one pair, or every identical set), distances recomputed each
    time, until nothing merges; returns the passes that merged."""
    passes = 0
    while True:
        merged = sum(merge_one(merger) for merger in mergers)
        if not merged:
            return passes
        passes += 1
        for _ in range(merged):
            advance()


def _rewrite(model: onnx.ModelProto, weights: Weights, changed: list[GroupMerger]) -> onnx.ModelProto:
    """A copy of `model` with the changed initializers replaced and stale shapes re-inferred."""
    editor = GraphEditor(model)
    for name in {slot.initializer for merger in changed for slot in merger.group.slots}:
        dtype = editor.constant(name).dtype
        editor.set_initializer(name, weights[name].astype(dtype))
    for tensor in {tensor for merger in changed for tensor in merger.group.tensors}:
        value = editor.value(tensor)
        if value is not None and not value.is_graph_output():
            value.type, value.shape = None, None
    return onnx.shape_inference.infer_shapes(editor.finish(), strict_mode=True)


def _summarise(
    original: onnx.ModelProto,
    pruned: onnx.ModelProto,
    groups: list[ChannelGroup],
    mergers: list[GroupMerger],
    threshold: float,
    max_ratio: float,
    approximate: bool,
) -> PruningSummary:
    by_group = {id(merger.group): merger for merger in mergers}
    layers = compare_layers(layer_costs(original), layer_costs(pruned))
    summary = PruningSummary(threshold, max_ratio, approximate, layers=layers)
    for group in groups:
        merger = by_group.get(id(group))
        merged = merger.merged if merger else 0
        reason = group.blocked_by or (None if merger else "no weight layer reads it")
        summary.groups.append(
            GroupSummary(
                group.width,
                group.width - merged,
                merged,
                bool(merger and merger.exact_only),
                sorted(group.tensors),
                sorted({slot.initializer for slot in group.slots}),
                reason,
                merger.exact_only_because if merger else None,
                lossless=merger.lossless if merger else 0,
            )
        )
    for merger in mergers:
        for layer in summary.layers:
            if any(s.role == "incoming" and s.node == layer.node for s in merger.group.slots):
                layer.lossless_merged, layer.similar_merged = merger.lossless, merger.similar
    summary.parameters_before = model_parameters(original)
    summary.parameters_after = model_parameters(pruned)
    summary.flops_before = sum(layer.flops_before or 0 for layer in layers)
    summary.flops_after = sum(layer.flops_after or 0 for layer in layers)
    summary.flops_unknown_layers = [layer.node for layer in layers if layer.flops_before is None]
    return summary
