"""The sweep's answer: per model, the Pareto front of speed, fidelity and size over every target and
recipe, the recommended run under the budget, and the runs that failed with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeq.report.schema import Report
from edgeq.sweep.runs import RunResult

SPEED_TIE = 0.03  # speedups closer than this are a tie: the smaller artifact is recommended


@dataclass
class Point:
    """One finished run as the sweep compares it."""

    result: RunResult
    chosen: str
    speedup: float | None
    fidelity: float
    """The task's worst primary-metric drop when the recipe has a task (lower is better), else the
    worst output cosine vs fp32 (higher is better): `fidelity_name` says which."""
    fidelity_name: str
    size_ratio: float
    within_budget: bool
    on_front: bool = False
    recommended: bool = False

    @property
    def quality(self) -> float:
        """Fidelity as higher-is-better."""
        return -self.fidelity if self.fidelity_name == "task drop" else self.fidelity


def point(result: RunResult, report: Report) -> Point:
    chosen = report.decision.chosen
    summary = next((c for c in report.decision.candidates if c.name == chosen), None)
    task = report.task_drop is not None
    return Point(
        result,
        chosen,
        report.slowest_speedup,
        report.task_drop if task else (report.worst_cosine if report.worst_cosine is not None else 1.0),
        "task drop" if task else "worst cosine",
        report.size_ratio,
        summary.within_budget if summary is not None else True,
    )


def model_points(results: list[RunResult], out: Path) -> dict[str, list[Point]]:
    """Finished runs by model, each marked on or off its model's front and the one recommended."""
    by_model: dict[str, list[Point]] = {}
    for result in results:
        if result.folder is not None:
            by_model.setdefault(result.run.model_name, []).append(point(result, result.report(out)))
    for points in by_model.values():
        for p in points:
            p.on_front = not any(_dominates(other, p) for other in points)
        best = recommend(points)
        if best is not None:
            best.recommended = True
    return by_model


def _dominates(a: Point, b: Point) -> bool:
    """`a` is at least as fast, as faithful and as small as `b`, and better in one."""
    speed_a, speed_b = a.speedup or 0.0, b.speedup or 0.0
    at_least = speed_a >= speed_b and a.quality >= b.quality and a.size_ratio <= b.size_ratio
    better = speed_a > speed_b or a.quality > b.quality or a.size_ratio < b.size_ratio
    return at_least and better


def recommend(points: list[Point]) -> Point | None:
    """The fastest run within its budget; speeds within SPEED_TIE of it go to the smaller artifact."""
    within = [p for p in points if p.within_budget]
    if not within:
        return None
    fastest = max(p.speedup or 0.0 for p in within)
    tied = [p for p in within if (p.speedup or 0.0) >= fastest * (1 - SPEED_TIE)]
    return min(tied, key=lambda p: (p.size_ratio, -(p.speedup or 0.0)))


def failures(results: list[RunResult]) -> list[RunResult]:
    return [r for r in results if r.error is not None]


def table_rows(results: list[RunResult], out: Path) -> list[list[str]]:
    """The summary table, one row per run in sweep order (failed runs with their reason)."""
    points = {p.result.run.folder: p for ps in model_points(results, out).values() for p in ps}
    rows = []
    for result in results:
        run = result.run
        p = points.get(run.folder)
        if p is None:
            rows.append(
                [run.model_name, run.target_name, run.recipe_name, "failed", "", "", "", result.error]
            )
            continue
        speed = f"{p.speedup:.2f}x" if p.speedup is not None else "not measured"
        mark = "recommended" if p.recommended else ("front" if p.on_front else "")
        fidelity = f"{'drop' if p.fidelity_name == 'task drop' else 'cos'} {p.fidelity:.4g}"
        rows.append(
            [
                run.model_name,
                run.target_name,
                run.recipe_name,
                p.chosen,
                speed,
                fidelity,
                f"{p.size_ratio:.3f}",
                mark,
            ]
        )
    return rows


HEADERS = ["model", "target", "recipe", "chosen", "speedup", "fidelity", "size", "note"]
"""speedup: at the slowest batch; fidelity: `drop` (task) or `cos` (output cosine); size: vs fp32;
note: recommended, on the Pareto front, or why the run failed."""
