"""Prune by Iterative Feature Merging, and measure what pruning alone cost against the fp32 model."""

from __future__ import annotations

from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.tasks import evaluate_task
from edgeq.report.schema import Accuracy, Pruning
from edgeq.runtime.session import OrtRunner
from edgeq.source import sample_count
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class Prune(Stage):
    """Merge redundant features when the recipe asks (`prune`); a no-op otherwise."""

    name = "prune"

    def run(self, state: CompileState) -> CompileState:
        settings = state.recipe.prune
        if settings is None:
            return state
        from edgeq.passes.ifm import merge_features

        with state.progress.stage("prune", "prune by iterative feature merging"):
            pruned, summary = merge_features(
                state.prepared,
                threshold=settings.threshold,
                max_ratio=settings.max_ratio,
                protected=settings.protected,
                approximate=settings.approximate,
                progress=state.progress,
            )
            fp32 = OrtRunner(state.source.model.SerializeToString())
            candidate = OrtRunner(pruned.SerializeToString())
            outputs = compare_outputs(fp32.predict(state.evaluation), candidate.predict(state.evaluation))
            task = evaluate_task(state.recipe, fp32, candidate, state.evaluation)
            accuracy = Accuracy(sample_count(state.evaluation, pruned), outputs, task)
            state.prepared, state.pruning = pruned, Pruning(settings.method, summary, accuracy)
        return state
