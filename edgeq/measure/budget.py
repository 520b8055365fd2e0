"""Whether measured kind metrics meet the accuracy budget: the one rule the selection and gates share."""

from __future__ import annotations

import math

from edgeq.measure.kinds import KindMetric, OutputKind
from edgeq.recipe import Budget

# metric name (before any "@k") → the budget field that limits it, and whether it is a floor
LIMITS: dict[str, tuple[str, bool]] = {
    "neighbour recall": ("min_recall", True),
    "mean cosine": ("min_cosine", True),
    "top-1 agreement": ("min_top1", True),
    "bit agreement": ("min_bit_agreement", True),
    "IoU": ("min_iou", True),
    "cosine": ("min_cosine", True),
    "rel L2": ("max_rel_l2", False),
    "agreement": ("min_cosine", True),
}


class CoarseBudget(UserWarning):
    """The evaluation set is too small for a budgeted metric to allow a single miss."""


def coarse_budgets(kinds: list[OutputKind], samples: int, budget: Budget) -> list[str]:
    """One line per class-score output whose top-1 budget fails on any one changed label at this
    many held-out samples (0.995 needs 200 to allow one): every candidate that flips a single
    near-tie label is then out of budget, which the user should know to read the verdict."""
    allowed = (1.0 - budget.min_top1) * samples
    if budget.min_top1 >= 1.0 or allowed >= 1.0:
        return []
    needed = math.ceil(1.0 / (1.0 - budget.min_top1) - 1e-9)
    return [
        f"output {kind.name!r}: top-1 agreement >= {budget.min_top1} on {samples} held-out samples "
        f"fails on one changed label (allowing one needs {needed}); give more evaluation data "
        "(eval:, or a larger calibration set) or set budget.min_top1"
        for kind in kinds
        if kind.kind == "class-scores"
    ]


def limit_of(metric: str, budget: Budget) -> tuple[float | None, bool]:
    """The budget's limit on `metric` (None: reported, not budgeted) and whether it is a floor."""
    field, floor = LIMITS.get(metric.split("@")[0], (None, True))
    return (getattr(budget, field) if field else None), floor


def metric_problems(metrics: list[KindMetric], budget: Budget) -> list[str]:
    """One line per metric outside its limit, e.g. `neighbour recall@10 0.89 < 0.97 (output 'e')`;
    NaN misses every limit."""
    problems = []
    for m in metrics:
        limit, floor = limit_of(m.metric, budget)
        if limit is None:
            continue
        holds = not math.isnan(m.value) and (m.value >= limit if floor else m.value <= limit)
        if not holds:
            sign = "<" if floor else ">"
            problems.append(f"{m.metric} {m.value:.4g} {sign} {limit} (output {m.output!r})")
    return problems


def budget_problem(
    budget: Budget, metrics: list[KindMetric], task_drop: float | None, worst_cosine: float | None
) -> str | None:
    """Why these measurements miss the budget, or None: the task's drop when there is a task, else
    every output by its kind's metric, else (kinds not measured) the worst output cosine."""
    if task_drop is not None:
        return None if task_drop <= budget.max_drop else f"task drop {task_drop:.3g} > {budget.max_drop}"
    if metrics:
        return "; ".join(metric_problems(metrics, budget)) or None
    if worst_cosine is None:
        return "no output fidelity measured"
    holds = worst_cosine >= budget.min_cosine
    return None if holds else f"output cosine {worst_cosine:.5f} < {budget.min_cosine}"


def budget_margin(
    budget: Budget, metrics: list[KindMetric], task_drop: float | None, worst_cosine: float | None
) -> float:
    """How far inside the budget the measurements are, in units of each limit's allowance (the
    worst budgeted metric; >= 0 within, < 0 outside): what `budget_problem` judges, as a number to
    rank by. The same precedence: the task's drop, else the kind metrics, else cosine."""
    if task_drop is not None:
        return (budget.max_drop - task_drop) / max(budget.max_drop, 1e-9)
    margins = []
    for m in metrics:
        limit, floor = limit_of(m.metric, budget)
        if limit is None:
            continue
        if math.isnan(m.value):
            return -math.inf
        allowance = max(1.0 - limit if floor else limit, 1e-9)
        margins.append((m.value - limit if floor else limit - m.value) / allowance)
    if margins:
        return min(margins)
    if worst_cosine is None:
        return -math.inf
    return (worst_cosine - budget.min_cosine) / max(1.0 - budget.min_cosine, 1e-9)
