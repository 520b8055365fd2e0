"""Prepare the graph: fold BatchNorm, constants and static shapes; equalize; sub-pixel ConvTranspose."""

from __future__ import annotations

import warnings

import onnx

from edgeq.cache import digest_arrays, digest_bytes
from edgeq.cache.memo import memo
from edgeq.frontend.runs_on_data import check_runs_on
from edgeq.passes.opset import upgrade_opset
from edgeq.passes.prepare import prepare_model
from edgeq.passes.subpixel import lower_conv_transposes, subpixel_summary
from edgeq.quant.equalize import equalize_cross_layer
from edgeq.quant.plan import ensure_node_names
from edgeq.runtime.machine import describe_machine
from edgeq.stages.base import Stage, first_refusal
from edgeq.stages.state import CompileState

GIVEN = "the model arrived quantized and is compiled as given"


class OpsetWarning(UserWarning):
    """The model's opset was raised for per-channel Q/DQ (or could not be, and weights go per tensor)."""


def check_data(state: CompileState) -> None:
    """The source model runs on the calibration samples a compile uses (the first `calibration.samples`,
    as calibration, AdaRound and bias correction take them) and on every evaluation sample."""
    check_runs_on(state.source.model, state.calib, "calibration", state.recipe.calibration.samples)
    check_runs_on(state.source.model, state.evaluation, "evaluation")


class Prepare(Stage):
    """The fp32 graph made ready to quantize (checked on the evaluation data), equalized if asked."""

    name = "prepare"

    def run(self, state: CompileState) -> CompileState:
        progress = state.progress
        with progress.stage("prepare", "prepare graph (fold BatchNorm, constants and static shapes)"):
            state.prepared, note = memo("prepared", lambda: _prepare_key(state), lambda: _prepare(state))
            if note:  # the artifact's opset is not the user's: the report lists this warning
                warnings.warn(note, OpsetWarning, stacklevel=1)
                progress.note(note)
            ensure_node_names(state.prepared)
        if state.recipe.methods.equalize:
            with progress.stage("equalize", "equalize cross-layer weight ranges"):
                prepared, summary = equalize_cross_layer(state.prepared)
                progress.note(f"{len(summary['pairs'])} layer pairs equalized")
                state.prepared = onnx.shape_inference.infer_shapes(prepared)
        return state


def _prepare(state: CompileState) -> tuple[onnx.ModelProto, str | None]:
    check_data(state)
    model, note = upgrade_opset(state.source.model, state.evaluation)
    return prepare_model(model, check=state.evaluation), note


def _prepare_key(state: CompileState) -> dict:
    """What the prepared graph follows from: the model and the data it was checked on."""
    samples = state.recipe.calibration.samples
    return {
        "model": state.source.sha256,
        "calib": digest_arrays(state.calib, samples),
        "eval": digest_arrays(state.evaluation),
    }


class PrepareGiven(Stage):
    """An already-quantized graph, prepared without changing what its Q/DQ mean."""

    name = "prepare-given"

    def check(self, state: CompileState) -> str | None:
        recipe = state.recipe
        return first_refusal(
            [
                ("prune", recipe.prune is not None, f"{GIVEN}; prune the fp32 model before quantizing it"),
                ("mrl", recipe.mrl is not None, f"{GIVEN}; cut the fp32 embedding before quantizing it"),
                ("methods.equalize", recipe.methods.equalize, f"{GIVEN}; equalize the fp32 model first"),
            ]
        )

    def run(self, state: CompileState) -> CompileState:
        with state.progress.stage("prepare", "prepare the given quantized graph"):
            check_data(state)
            state.prepared = prepare_model(state.source.model)
            ensure_node_names(state.prepared)
        return state


class Subpixel(Stage):
    """ConvTranspose timed against its sub-pixel Conv form, the faster kept (ONNX Runtime targets).

    Runs after pruning: IFM prunes ConvTranspose channels, which a Conv feeding DepthToSpace would not allow.
    """

    name = "subpixel"

    def run(self, state: CompileState) -> CompileState:
        if not any(n.op_type == "ConvTranspose" for n in state.prepared.graph.node):
            return state
        latency, prepared = state.target.latency, state.prepared

        def parts() -> dict:  # a timing: reused on this machine only, like the candidates' latency
            graph = digest_bytes(prepared.SerializeToString())
            return {"graph": graph, "latency": latency, "machine": describe_machine()}

        def lower() -> tuple[onnx.ModelProto, list]:
            return lower_conv_transposes(prepared, latency.batch_sizes, latency.threads)

        with state.progress.stage("subpixel", "time ConvTranspose against its sub-pixel Conv form"):
            state.prepared, decisions = memo("subpixel", parts, lower)
            state.progress.note(subpixel_summary(decisions))
        return state
