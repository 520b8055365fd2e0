"""Backend compile: each candidate becomes the target runtime's artifact, opened in a session."""

from __future__ import annotations

import warnings
from pathlib import Path

from edgeq.backends.artifact import Artifact
from edgeq.backends.registry import Backend
from edgeq.errors import InputError, InternalError
from edgeq.frontend.onnx_load import load_onnx
from edgeq.graph import save_model
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.lower import GIVEN_QDQ
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.targets import TargetSpec

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
                candidate.artifact = compile_candidate(state.backend, target, candidate, state.work)
                candidate.runner = open_session(state, candidate.artifact.path)
        if not state.recipe.reference and (why := state.backend.unreadable(state.reference)):
            state.reference = prepared_reference(state, why)
        return state


class PreparedReference(UserWarning):
    """The target's runtime cannot read the model as given: fp32 is its prepared form."""


def prepared_reference(state: CompileState, why: str) -> Path:
    """The fp32 candidate as the reference (the model as edgeq prepared it: the same function, in
    forms the runtime reads, e.g. a whole-map AveragePool as a GlobalAveragePool), with a warning;
    `why` refuses a model that has no fp32 candidate."""
    fp32 = next((c for c in state.candidates if c.name == "fp32"), None)
    if fp32 is None:
        raise InputError(why)
    warnings.warn(
        f"{why}; fp32 is measured as edgeq prepared it, which {state.target.runtime} reads",
        PreparedReference,
        stacklevel=2,
    )
    return save_model(fp32.model, state.work / "reference.onnx")


def compile_candidate(backend: Backend, target: TargetSpec, candidate: Candidate, work: Path) -> Artifact:
    """The backend's artifact; a candidate edgeq wrote (all but the fp32 model and an
    already-quantized one compiled as given) that the runtime refuses is edgeq's failure, not the
    user's model's."""
    try:
        return backend.compile(candidate.model, target, work / candidate.name)
    except InputError as exc:
        if candidate.name in (GIVEN_QDQ, "fp32"):
            raise
        raise InternalError(f"edgeq wrote an invalid {candidate.name} candidate: {exc}") from exc
