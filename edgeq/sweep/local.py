"""Runs on a local process pool: compiles in parallel, their latency measurements one at a time."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from edgeq.sweep.runs import RunResult, compile_run, worker_setup
from edgeq.sweep.spec import RunSpec


def run_local(runs: Sequence[RunSpec], out: Path, jobs: int, cache: bool = True) -> Iterator[RunResult]:
    """Each run's result as it finishes; `jobs` compiles at a time (1: in this process). An interrupt
    stops the workers at once (their half-done outputs are staging folders the next compile clears)."""
    if jobs <= 1:
        yield from (compile_run(run, out, cache) for run in runs)
        return
    lock = str(out / ".edgeq-timing.lock")
    context = multiprocessing.get_context("spawn")  # no fork of a process holding ORT threads
    pool = context.Pool(min(jobs, len(runs)), initializer=worker_setup, initargs=(lock,))
    try:
        yield from pool.imap_unordered(partial(compile_run, out=out, cache=cache), runs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
