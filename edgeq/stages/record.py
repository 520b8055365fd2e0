"""Record the run in the runs store; a broken store costs the record, never the compile."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edgeq.report.schema import ReportWarning
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState
from edgeq.store.runs import StoreError, record_run


class Record(Stage):
    """Runs before the report is written (so a store failure is a warning inside it) and names the
    final output directory; `runs=False` records nothing."""

    name = "record"

    def run(self, state: CompileState) -> CompileState:
        if state.runs is False:
            return state
        try:
            record_run(state.report, state.out, Path(state.runs) if state.runs else None)
        except (StoreError, sqlite3.Error, OSError) as exc:
            state.report.warnings.append(ReportWarning("runs store", str(exc), 1))
            state.progress.note(f"runs store not updated: {exc}")
        return state
