"""Record the run in the runs store; a broken store costs the record, never the compile."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from edgeq.report.schema import ReportWarning
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState
from edgeq.store.runs import record_or_explain


class Record(Stage):
    """Runs before the report is written (so a store failure is a warning inside it) and names the
    final output directory; `runs=False` records nothing."""

    name = "record"

    def run(self, state: CompileState) -> CompileState:
        if state.runs is False:
            return state
        why = record_or_explain(state.report, state.out, Path(state.runs) if state.runs else None)
        if why is not None:
            state.report.warnings.append(ReportWarning("runs store", why, 1))
            state.progress.note(escape(why))
        return state
