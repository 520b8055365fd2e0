"""Choose the artifact to keep, with the reason the report gives, for each kind of compile."""

from __future__ import annotations

from edgeq.stages.base import Stage
from edgeq.stages.selection import problem, select, select_unmeasured
from edgeq.stages.state import CompileState


def _summarise(state: CompileState) -> None:
    size = state.source.bytes
    state.summaries = [
        c.summary(
            state.recipe,
            size,
            problem(c, state.recipe, state.noise) if c.plan else c.budget_problem(state.recipe),
        )
        for c in state.candidates
    ]


class SelectFastest(Stage):
    """The fastest candidate within budget (`edgeq.stages.selection.select`); size first within budget
    when latency could not be measured on the target."""

    name = "select"

    def run(self, state: CompileState) -> CompileState:
        if state.measures_latency:
            state.chosen, state.reason = select(state.candidates, state.recipe, state.noise)
        else:
            state.chosen, state.reason = select_unmeasured(state.candidates, state.recipe)
        _summarise(state)
        return state


class KeepGiven(Stage):
    """An already-quantized model is kept as given; the reason says what it was measured against."""

    name = "select-given"

    def run(self, state: CompileState) -> CompileState:
        (state.chosen,) = state.candidates
        reason = "the model arrived quantized: compiled as given, not quantized twice"
        if not state.recipe.reference:
            measured = "fidelity and speed are" if state.measures_latency else "fidelity is"
            reason += f"; no fp32 reference given, so {measured} measured against itself"
        slow = [f"batch {e.batch}: {e.speedup:.2f}x" for e in state.chosen.latency if e.speedup < 1.0]
        if slow:
            reason += f"; slower than the reference at {', '.join(slow)} (its Q/DQ placement is not ours)"
        state.reason = reason
        _summarise(state)
        return state


class KeepForEngine(Stage):
    """TensorRT fuses and times on the GPU itself, so no CPU latency picks a candidate: the one graph
    is the artifact the engine is built from."""

    name = "select-engine"

    def run(self, state: CompileState) -> CompileState:
        (state.chosen,) = state.candidates
        state.reason = "engine build and GPU latency run on the target: edgeq build-engine OUT/"
        _summarise(state)
        return state
