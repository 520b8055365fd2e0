"""Sessions the stages measure on: the target's own, or ONNX Runtime CPU for fidelity only."""

from __future__ import annotations

from pathlib import Path

from edgeq.runtime.session import CPU_ONLY, OrtRunner
from edgeq.stages.state import CompileState


def open_session(state: CompileState, path: Path, reference: bool = False) -> OrtRunner:
    """A session on the target's providers (`reference`: the fp32 model compared against); on CPU
    when they are missing and the user allowed that (read for fidelity only, never timed)."""
    providers = CPU_ONLY if state.unmeasured is not None else None
    return state.backend.session(path, state.target, providers, reference=reference)
