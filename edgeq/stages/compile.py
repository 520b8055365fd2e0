"""Backend compile: each candidate becomes the target runtime's artifact, opened in a session."""

from __future__ import annotations

from pathlib import Path

from edgeq.frontend.onnx_load import load_onnx
from edgeq.graph import save_model
from edgeq.stages.base import Stage
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState

UNMEASURED_HINT = (
    "pass --allow-unmeasured (recipe allow_unmeasured: true) to compile anyway: fidelity is measured "
    "in ONNX Runtime CPU, latency is not measured"
)


class CompileCandidates(Stage):
    """The fp32 reference saved (or the user's, for an already-quantized model) and every candidate
    compiled by the target's backend. Refuses a target whose runtime is not here unless allowed."""

    name = "compile"

    def check(self, state: CompileState) -> str | None:
        if state.unmeasured is not None and not state.recipe.allow_unmeasured:
            return f"{state.unmeasured}; {UNMEASURED_HINT}"
        return None

    def run(self, state: CompileState) -> CompileState:
        if state.recipe.reference:
            state.reference = Path(state.recipe.reference)
            load_onnx(state.reference)  # one clear line if the reference is not a usable model
        else:
            state.reference = save_model(state.source.model, state.work / "reference.onnx")
        target = state.target
        for candidate in state.candidates:
            with state.progress.stage(
                f"compile-{candidate.name}", f"compile {candidate.name} for {target.name}"
            ):
                candidate.artifact = state.backend.compile(
                    candidate.model, target, state.work / candidate.name
                )
                candidate.runner = open_session(state, candidate.artifact.path)
        return state
