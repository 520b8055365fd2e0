"""Runs on a local process pool: compiles in parallel, their latency measurements one at a time."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from edgeq.sweep.runs import RunResult, compile_run, worker_setup
from edgeq.sweep.spec import RunSpec


def run_local(runs: Sequence[RunSpec], out: Path, jobs: int, cache: bool = True) -> Iterator[RunResult]:
    """Each run's result as it finishes; `jobs` compiles at a time (1: in this process)."""
    if jobs <= 1:
        yield from (compile_run(run, out, cache) for run in runs)
        return
    lock = str(out / ".edgeq-timing.lock")
    context = multiprocessing.get_context("spawn")  # no fork of a process holding ORT threads
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=worker_setup, initargs=(lock,)) as pool:
        for future in as_completed([pool.submit(compile_run, run, out, cache) for run in runs]):
            yield future.result()
