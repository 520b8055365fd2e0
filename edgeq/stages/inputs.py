"""Options that name parts of the model are checked against it before any work: a typo in `--exclude`
or an unrelated `--reference` would otherwise be accepted silently."""

from __future__ import annotations

import onnx

from edgeq.frontend.onnx_load import input_signatures, load_onnx
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class CheckModelOptions(Stage):
    """Checks only; runs nothing."""

    name = "check-options"

    def check(self, state: CompileState) -> str | None:
        model = state.source.model
        return unknown_exclude(model, state.recipe.exclude) or (
            unrelated_reference(model, state.recipe.reference) if state.recipe.reference else None
        )

    def run(self, state: CompileState) -> CompileState:
        return state


def unknown_exclude(model: onnx.ModelProto, exclude: list[str]) -> str | None:
    """The first `--exclude` entry that is neither a node name nor an op type of the model."""
    known = {node.name for node in model.graph.node} | {node.op_type for node in model.graph.node}
    missing = [name for name in exclude if name not in known]
    if not missing:
        return None
    ops = ", ".join(sorted({node.op_type for node in model.graph.node}))
    return f"exclude: the model has no node or op type {missing[0]!r} (its op types: {ops})"


def unrelated_reference(model: onnx.ModelProto, reference: str) -> str | None:
    """Why the fp32 `reference` cannot be the model the quantized one was made from, or None."""
    fp32 = load_onnx(reference)

    def signature(graph_of: onnx.ModelProto) -> tuple:
        inputs = sorted((s.name, s.dtype.str, len(s.shape)) for s in input_signatures(graph_of))
        return inputs, sorted(output.name for output in graph_of.graph.output)

    (ours, our_outputs), (theirs, their_outputs) = signature(model), signature(fp32)
    if ours != theirs or our_outputs != their_outputs:
        return (
            f"reference: {reference} has inputs {theirs} and outputs {their_outputs}, the model "
            f"{ours} and {our_outputs}; give the fp32 model this one was quantized from"
        )
    return None
