"""Sessions the stages measure on: the target's own, or ONNX Runtime CPU for fidelity only."""

from __future__ import annotations

from pathlib import Path

from edgeq.runtime.session import OrtRunner
from edgeq.stages.state import CompileState

CPU_ONLY = ("CPUExecutionProvider",)


def open_session(state: CompileState, path: Path) -> OrtRunner:
    """A session on the target's providers; on CPU when they are missing and the user allowed that
    (such a session is read for fidelity only, never timed for the target)."""
    if state.unmeasured is not None:
        return OrtRunner(path, threads=state.target.latency.threads, providers=CPU_ONLY)
    return state.backend.session(path, state.target)
