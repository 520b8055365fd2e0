"""A whole sweep: the runs not done yet, on the pool or the cluster, each recorded as it finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgeq.store.runs import RunStore, record_or_explain
from edgeq.sweep.runs import RunResult, done
from edgeq.sweep.spec import RunSpec

Shown = Callable[[str], None]


def run_sweep(
    runs: list[RunSpec],
    out: Path,
    *,
    jobs: int = 1,
    ray: str | None = None,
    cache: bool = True,
    runs_store: Path | None | bool = None,
    show: Shown = lambda line: None,
) -> list[RunResult]:
    """Every run's result in sweep order: complete outputs are kept (resume), the rest compiled on
    `jobs` local processes or, with `ray` (an address or "auto"), on a Ray cluster."""
    out.mkdir(parents=True, exist_ok=True)
    results = {run.folder: RunResult(run, run.folder, resumed=True) for run in runs if done(out, run)}
    todo = [run for run in runs if run.folder not in results]
    if results:
        show(f"{len(results)} of {len(runs)} runs already complete in {out}/ (resumed)")
        for result in results.values():  # a sweep killed after a run finished, before it was recorded
            _record(result, out, runs_store, show, unless_recorded=True)
    if todo:
        if ray is not None:
            from edgeq.sweep.ray_cluster import run_ray

            finished = run_ray(todo, out, ray, cache)
        else:
            from edgeq.sweep.local import run_local

            finished = run_local(todo, out, jobs, cache)
        start = time.perf_counter()
        for count, result in enumerate(finished, start=1):
            results[result.run.folder] = result
            _record(result, out, runs_store, show)
            elapsed = time.perf_counter() - start
            eta = elapsed / count * (len(todo) - count)
            status = f"failed: {result.error}" if result.error else f"{result.seconds:.1f}s"
            show(f"[{len(results)}/{len(runs)}] {result.run.label}: {status} (ETA {_duration(eta)})")
    return [results[run.folder] for run in runs]


def _record(
    result: RunResult, out: Path, runs_store: Path | None | bool, show: Shown, unless_recorded: bool = False
) -> None:
    if result.folder is None or runs_store is False:
        return
    report = result.report(out)
    if unless_recorded and _recorded(report.run_id, runs_store):
        return
    problem = record_or_explain(report, out / result.folder, runs_store)
    if problem:
        show(problem)


def _recorded(run_id: str, runs_store: Path | None) -> bool:
    try:
        return RunStore(runs_store).summary(run_id) is not None
    except Exception:  # noqa: BLE001 - an unreadable store: record_or_explain says why
        return False


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
