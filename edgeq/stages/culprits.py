"""The culprit table: the quantized layers ranked by the noise each adds on its own."""

from __future__ import annotations

from edgeq.measure.layers import layer_damage
from edgeq.stages.base import Stage
from edgeq.stages.lower import quantized_from
from edgeq.stages.state import CompileState


class Culprits(Stage):
    """Layer damage of the chosen candidate, or of the most faithful quantized one when fp32 wins."""

    name = "layers"

    def run(self, state: CompileState) -> CompileState:
        chosen = state.chosen
        quantized = [c for c in state.candidates if c.plan is not None]
        explained = chosen if chosen.plan else max(quantized, key=lambda c: c.worst_cosine, default=chosen)
        state.explained = explained
        if explained.plan is not None:
            plan = explained.plan
            with state.progress.stage("layers", "rank layers by the noise they add"):
                nodes = plan.int8_nodes()
                source = quantized_from(state, explained.name)
                state.layers = layer_damage(source, explained.model, nodes, state.evaluation)
        return state
