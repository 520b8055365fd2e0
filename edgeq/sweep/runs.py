"""One run of a sweep: its compile, or the complete output an earlier sweep left (resume)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from edgeq.errors import EdgeqError, GateError
from edgeq.report.read import load_report
from edgeq.report.schema import Report
from edgeq.stages.reuse import TIMING_LOCK
from edgeq.sweep.spec import RunSpec

REPORT = "report.json"


@dataclass
class RunResult:
    """What one run gave: its report's folder (relative to the sweep's output) or why it failed."""

    run: RunSpec
    folder: Path | None
    error: str | None = None
    seconds: float = 0.0
    resumed: bool = False
    """Its output was complete before this sweep started: nothing was compiled."""

    def report(self, out: Path) -> Report | None:
        return load_report(out / self.folder / REPORT) if self.folder is not None else None


def done(out: Path, run: RunSpec) -> bool:
    """An output is put in place only once its report is written: a folder with one is complete."""
    return (out / run.folder / REPORT).is_file()


def compile_run(run: RunSpec, out: Path, cache: bool = True) -> RunResult:
    """Compile `run` into `out/<run.folder>` (recorded by the caller, not here). A gate failure is a
    result, a bad input a one-line failure."""
    from edgeq.api import compile as compile_model

    start = time.perf_counter()
    try:
        compile_model(run.model, out=out / run.folder, recipe=run.recipe, runs=False, cache=cache)
    except GateError:
        pass  # the report is written and says which gate failed
    except EdgeqError as exc:
        return RunResult(run, None, _one_line(exc), time.perf_counter() - start)
    except Exception as exc:  # a bug in one run must not lose the others' results
        error = f"internal error: {type(exc).__name__}: {_one_line(exc)}"
        return RunResult(run, None, error, time.perf_counter() - start)
    return RunResult(run, run.folder, seconds=time.perf_counter() - start)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def worker_setup(timing_lock: str) -> None:
    """In each worker: every compile on this machine takes the same timing lock while it measures."""
    os.environ[TIMING_LOCK] = timing_lock
