"""Choose the artifact to keep, with the reason the report gives, for each kind of compile."""

from __future__ import annotations

import warnings

from edgeq.stages.base import Stage
from edgeq.stages.runtime_candidates import other_runtime_fp32
from edgeq.stages.selection import (
    fastest_fp32,
    problem,
    select,
    select_across_runtimes,
    select_unmeasured,
    slow_batches,
)
from edgeq.stages.state import CompileState


class RuntimeTradeoff(UserWarning):
    """The kept artifact is slower than another runtime's fp32 at some batch: nothing within budget
    beat every runtime's fp32 at every batch."""


def _summarise(state: CompileState, floor: dict[int, float] | None = None) -> None:
    size = state.source.bytes
    state.summaries = [
        c.summary(
            state.recipe,
            size,
            problem(c, state.recipe, state.noise, floor) if c.plan else c.budget_problem(state.recipe),
        )
        for c in state.candidates
    ]


class SelectFastest(Stage):
    """The fastest candidate within budget (`edgeq.stages.selection.select`); size first within budget
    when latency could not be measured on the target."""

    name = "select"

    def run(self, state: CompileState) -> CompileState:
        baselines = other_runtime_fp32(state.candidates)
        floor = fastest_fp32(baselines) if state.measures_latency else {}
        if state.measures_latency and baselines:
            state.chosen, state.reason = select_across_runtimes(
                state.candidates, state.recipe, state.noise, baselines
            )
            _warn_tradeoff(state, floor)
        elif state.measures_latency:
            state.chosen, state.reason = select(state.candidates, state.recipe, state.noise)
        else:
            state.chosen, state.reason = select_unmeasured(state.candidates, state.recipe)
        _summarise(state, floor)
        return state


def _warn_tradeoff(state: CompileState, floor: dict[int, float]) -> None:
    """Say where the kept artifact is slower than the fastest fp32 of the target's runtimes."""
    slow = [
        f"batch {batch}: {speedup / floor[batch]:.2f}x of it"
        for batch, speedup in slow_batches(state.chosen, state.noise, floor).items()
    ]
    if not slow:
        return
    warnings.warn(
        f"{state.chosen.name} is slower than the fastest fp32 among the target's runtimes at "
        f"{', '.join(slow)}: no candidate within budget is faster at every batch; list only the batch "
        "sizes you deploy at in the target's latency.batch_sizes to choose for them",
        RuntimeTradeoff,
        stacklevel=2,
    )


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
