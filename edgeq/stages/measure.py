"""Measure every candidate's artifact: fidelity and task metric, then one interleaved latency run."""

from __future__ import annotations

from edgeq.errors import InputError
from edgeq.feeds import EXTRA
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.kinds import kind_metrics, recognise, unknown_kinds
from edgeq.measure.tasks import evaluate_task, resolve_evaluator
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.selection import size_tied_leaders
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.stages.timing import time_candidates


class Measure(Stage):
    """Fidelity against fp32 (the deployed MRL cut when there is one); latency against the fp32 model
    being replaced where the target runtime is here; `runoff`: time size-tied leaders again, longer."""

    name = "measure"

    def __init__(self, runoff: bool = False) -> None:
        self.runoff = runoff

    def check(self, state: CompileState) -> str | None:
        """A kind override of an output the model lacks, or a task evaluator that is unknown or cannot
        be loaded, is refused before any work."""
        if (why := unknown_kinds(state.source.model, state.recipe.kinds)) is not None:
            return why
        if state.recipe.task is None:
            return None
        try:
            resolve_evaluator(state.recipe.task.name)
        except InputError as exc:
            return str(exc)
        return None

    def run(self, state: CompileState) -> CompileState:
        measure_fidelity(state, state.candidates)
        if not state.measures_latency:
            return state
        state.noise = time_candidates(state, state.candidates)
        if self.runoff:
            self._runoff(state)
        return state

    def _runoff(self, state: CompileState) -> None:
        """Static and dynamic INT8 of a transformer differ by less than these machines' noise and by < 1%
        in bytes, so the first run cannot tell them apart; a second run between only them, with twice
        the rounds, can (stopping early once one is faster in every round). Its noise is the one to
        select with."""
        leaders = size_tied_leaders(state.candidates, state.recipe, state.noise)
        if len(leaders) >= 2:
            rounds = 2 * state.target.latency.rounds
            state.noise = time_candidates(state, leaders, rounds, stage="runoff", until_ordered=True)


def measure_fidelity(state: CompileState, candidates: list[Candidate]) -> None:
    """Each candidate's outputs, kind metrics and task metric against fp32 (the deployed MRL cut when
    there is one), on its compiled artifact: the one fidelity path, also for candidates built later."""
    judge_against = open_session(state, state.deployed or state.reference, reference=True)
    reference = judge_against.predict(state.evaluation)
    state.kinds = recognise(state.source.model, reference, state.recipe.kinds)
    labels = state.evaluation.get(EXTRA)
    for candidate in candidates:
        with state.progress.stage(f"fidelity-{candidate.name}", f"measure {candidate.name} fidelity"):
            predicted = candidate.runner.predict(state.evaluation)
            candidate.outputs = compare_outputs(reference, predicted)
            candidate.metrics = kind_metrics(state.kinds, reference, predicted, labels)
            candidate.task = evaluate_task(state.recipe, judge_against, candidate.runner, state.evaluation)
