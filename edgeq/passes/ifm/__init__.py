"""Iterative Feature Merging: data-free structured pruning of ONNX graphs (METHODS.md §1)."""

from edgeq.passes.ifm.feature_merging import merge_features
from edgeq.passes.ifm.summary import GroupSummary, LayerSummary, PruneSearch, PruneTrial, PruningSummary

__all__ = ["GroupSummary", "LayerSummary", "PruneSearch", "PruneTrial", "PruningSummary", "merge_features"]
