"""The one gate evaluator: `edgeq compile`, `edgeq report` and `edgeq build-engine` mean the same thing.

- `max_drop`: the worst drop of the task's primary metrics (needs a task evaluator) must be <= limit;
- `min_speedup`: the *slowest* speedup over the target's batch sizes must be >= limit;
- `min_cosine`: the worst output cosine against fp32 must be >= limit;
- `budget` (on unless the recipe's `budget.enforce` is false): the kept artifact meets the accuracy
  budget, every output by its kind's metric (`edgeq.measure.budget`), so a compile never exits 0
  with an artifact outside it.
A value that was not measured (no task, latency not measured on the target) fails its gate, and so
does a NaN. A report read from a file keeps only its gates' names and limits: values and verdicts
are recomputed here, never trusted from the file.
"""

from __future__ import annotations

from edgeq.config import from_dict
from edgeq.errors import InputError
from edgeq.measure.budget import budget_problem
from edgeq.recipe import Budget, Gates
from edgeq.report.schema import Gate, Report

BUDGET = "budget"

MEANING = {
    "max_drop": "worst primary task drop <= limit",
    "min_speedup": "slowest speedup over the batch sizes >= limit",
    "min_cosine": "worst output cosine vs fp32 >= limit",
    BUDGET: "kept artifact within the accuracy budget by each output's kind metric (1 = yes)",
}


def gate_value(report: Report, name: str) -> float | None:
    """The measured value a gate reads, or None when the report does not have it."""
    if name == "max_drop":
        return report.task_drop
    if name == "min_speedup":
        return report.slowest_speedup
    if name == "min_cosine":
        return report.worst_cosine
    raise ValueError(f"unknown gate {name!r}")


def check(name: str, limit: float, value: float | None) -> Gate:
    """`value` against `limit` under gate `name`'s rule; None and NaN fail."""
    holds = value is not None and (value <= limit if name == "max_drop" else value >= limit)
    return Gate(name, limit, value, holds)


def evaluate_gates(report: Report, limits: Gates) -> list[Gate]:
    """Each set limit checked against the report's own values."""
    return [
        check(name, limit, gate_value(report, name))
        for name, limit in vars(limits).items()
        if limit is not None
    ]


def compile_gates(report: Report, limits: Gates) -> list[Gate]:
    """A compile's gates: the recipe's limits, and the accuracy budget unless `budget.enforce` is off."""
    enforce = _budget(report).enforce
    return evaluate_gates(report, limits) + ([budget_gate(report)] if enforce else [])


def budget_gate(report: Report) -> Gate:
    """The kept artifact against the recipe's budget (value 1 within, 0 outside; None: not measured)."""
    accuracy = report.accuracy
    if not accuracy.metrics and report.task is None and report.worst_cosine is None:
        return Gate(BUDGET, 1.0, None, False, "no output fidelity in the report")
    why = budget_problem(_budget(report), accuracy.metrics, report.task_drop, report.worst_cosine)
    return Gate(BUDGET, 1.0, 0.0 if why else 1.0, why is None, why)


def _budget(report: Report) -> Budget:
    return from_dict(Budget, report.recipe.get("budget") or {}, "report.recipe.budget")


def recheck_gates(report: Report) -> list[Gate]:
    """The report's gates evaluated again from their limits; refuses unknown, repeated or odd limits."""
    names = [gate.name for gate in report.gates]
    for index, name in enumerate(names):
        if name not in MEANING:
            raise InputError(
                f"report.gates[{index}].name: unknown gate {name!r}; known: {', '.join(MEANING)}"
            )
        if name in names[:index]:
            raise InputError(f"report.gates[{index}].name: gate {name!r} appears twice")
    try:
        limits = Gates(**{gate.name: gate.limit for gate in report.gates if gate.name != BUDGET})
    except ValueError as exc:
        raise InputError(f"report.gates: {exc}") from None
    return evaluate_gates(report, limits) + ([budget_gate(report)] if BUDGET in names else [])


def verdict(gates: list[Gate]) -> str | None:
    """One line for a run's gates, the same in the terminal, the HTML page and the dashboard."""
    if not gates:
        return None
    failed = [gate.name for gate in gates if not gate.passed]
    return f"FAIL: {', '.join(failed)}" if failed else "pass"
