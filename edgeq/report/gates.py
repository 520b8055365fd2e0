"""The one gate evaluator: `edgeq compile` and `edgeq report` mean the same thing by each gate.

- `max_drop`: the worst drop of the task's primary metrics (needs a task evaluator) must be <= limit;
- `min_speedup`: the *slowest* speedup over the target's batch sizes must be >= limit;
- `min_cosine`: the worst output cosine against fp32 must be >= limit.
A value that was not measured (no task, latency not measured on the target) fails its gate.
"""

from __future__ import annotations

from edgeq.recipe import Gates
from edgeq.report.schema import Gate, Report


def gate_value(report: Report, name: str) -> float | None:
    """The measured value a gate reads, or None when the report does not have it."""
    if name == "max_drop":
        return report.task.worst_primary_drop if report.task is not None else None
    if name == "min_speedup":
        return report.slowest_speedup
    if name == "min_cosine":
        return report.worst_cosine
    raise ValueError(f"unknown gate {name!r}")


def evaluate_gates(report: Report, limits: Gates) -> list[Gate]:
    """Each set limit checked against the report's own values."""
    gates = []
    for name, limit in vars(limits).items():
        if limit is None:
            continue
        value = gate_value(report, name)
        holds = value is not None and (value <= limit if name == "max_drop" else value >= limit)
        gates.append(Gate(name, limit, value, holds))
    return gates
