"""TensorRT: leave what the engine build needs, and build it now where TensorRT and a GPU are here."""

from __future__ import annotations

import onnx

from edgeq.backends.tensorrt import REFERENCE_NAME, finish_later_hint, tensorrt_available
from edgeq.graph import save_model
from edgeq.stages.base import Stage
from edgeq.stages.engine_finish import finish_engine
from edgeq.stages.state import CompileState


class EngineInputs(Stage):
    """The fp32 baseline (`reference.fp32.onnx`, the deployed MRL cut when there is one) made part of
    the artifact, beside the QDQ graph; without TensorRT here, the engine is marked pending with the
    commands to build it."""

    name = "engine-inputs"

    def run(self, state: CompileState) -> CompileState:
        fp32 = onnx.load(str(state.deployed)) if state.deployed else state.source.model
        artifact = state.chosen.artifact
        artifact.files.append(save_model(fp32, artifact.path.parent / REFERENCE_NAME))
        ready, why = tensorrt_available()
        state.engine = "pending" if ready else f"pending: {why}"
        if not ready:
            state.finish_later = finish_later_hint(state.out, state.chosen.model, state.target)
        return state


class BuildEngine(Stage):
    """Where TensorRT is here: `edgeq build-engine` on the staged output, before it is renamed into
    place (that command measures the engine and rewrites the report it finds, with report.html)."""

    name = "build-engine"

    def run(self, state: CompileState) -> CompileState:
        if state.finish_later is not None:
            return state
        with state.progress.stage("build-engine", "build the TensorRT engine and time it on this GPU"):
            state.report = finish_engine(state.staging)
        return state
