"""Measure every candidate's artifact: fidelity and task metric, then one interleaved latency run."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edgeq.errors import InputError
from edgeq.feeds import EXTRA
from edgeq.measure.budget import CoarseBudget, coarse_budgets
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.kinds import kind_metrics, recognise, unknown_kinds
from edgeq.measure.tasks import evaluate_task, resolve_evaluator
from edgeq.runtime.session import OrtRunner
from edgeq.source import sample_count
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.selection import size_tied_leaders
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.stages.timing import decided_already, runoff_can_decide, time_candidates


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
        if state.recipe.task is None:  # a task's own metric is budgeted instead
            samples = sample_count(state.evaluation, state.prepared)  # the report's held-out count
            for line in coarse_budgets(state.kinds, samples, state.recipe.budget):
                warnings.warn(line, CoarseBudget, stacklevel=2)
        if not state.measures_latency:
            return state
        state.noise = time_candidates(state, state.candidates)
        if self.runoff:
            self._runoff(state)
        return state

    def _runoff(self, state: CompileState) -> None:
        """Static and dynamic INT8 of a transformer differ by less than these machines' noise and by < 1%
        in bytes, so the first run may not tell them apart; a second run between only them, with up
        to twice the rounds, can (stopping once they are ordered or tied within the noise floor). Its
        noise is the one to select with. No run-off when the first run's rounds already decide them,
        nor when at their round-to-round spread twice the rounds could not (`runoff_can_decide`):
        selection then reads them as the ties they are within the noise."""
        leaders = size_tied_leaders(state.candidates, state.recipe, state.noise)
        if len(leaders) < 2 or decided_already(leaders):
            return
        rounds = 2 * state.target.latency.rounds
        if not runoff_can_decide(leaders, rounds):
            state.progress.note(
                f"no run-off: {', '.join(c.name for c in leaders)} vary more round to round than "
                f"{rounds} rounds could tell apart; read as tied"
            )
            return
        state.noise = time_candidates(state, leaders, rounds, stage="runoff")


@dataclass(frozen=True)
class Fp32Judge:
    """The fp32 session candidates are judged against and its outputs on the evaluation data."""

    runner: OrtRunner
    outputs: dict[str, np.ndarray]


def fp32_judge(state: CompileState) -> Fp32Judge:
    """fp32 (the deployed MRL cut when there is one) run once on the evaluation data; recognises the
    outputs' kinds from it."""
    runner = open_session(state, state.deployed or state.reference, reference=True)
    outputs = runner.predict(state.evaluation)
    state.kinds = recognise(state.source.model, outputs, state.recipe.kinds)
    return Fp32Judge(runner, outputs)


def measure_fidelity(
    state: CompileState, candidates: list[Candidate], judge: Fp32Judge | None = None
) -> None:
    """Each candidate's outputs, kind metrics and task metric against fp32, on its compiled artifact:
    the one fidelity path, also for candidates built later (`judge`: fp32's run, when already made)."""
    judge = judge or fp32_judge(state)
    labels = state.evaluation.get(EXTRA)
    for candidate in candidates:
        with state.progress.stage(f"fidelity-{candidate.name}", f"measure {candidate.name} fidelity"):
            predicted = candidate.runner.predict(state.evaluation)
            candidate.outputs = compare_outputs(judge.outputs, predicted)
            candidate.metrics = kind_metrics(state.kinds, judge.outputs, predicted, labels)
            candidate.task = evaluate_task(state.recipe, judge.runner, candidate.runner, state.evaluation)
