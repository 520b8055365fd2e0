"""Candidates per runtime: what a runtime cannot run is left out (a warning says why), the forms
only OpenVINO runs are added (bf16/f16 runs of the fp32 graph and of static INT8, compressed int8 or
int4 weights with activations quantized per call), and a target with several runtimes gets each
runtime's candidates, all measured against the first runtime's fp32."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from edgeq.backends.openvino import unconvertible, with_precision
from edgeq.backends.openvino_read import conversion_error
from edgeq.backends.openvino_runner import cpu_precisions
from edgeq.backends.registry import for_runtime as tag_runtime
from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.quant.int4 import lower_to_int4_dequantize, quantize_embeddings
from edgeq.quant.plan import plan_int8
from edgeq.quant.qdq import rewrite_weights_only
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.state import CompileState
from edgeq.targets import InferencePrecision

OPENVINO = "openvino-"  # the name prefix of OpenVINO's candidates beside another runtime's
DYNAMIC_GROUP = 64
"""Input channels per int8 scale when OpenVINO quantizes a compressed-weight layer's input per call
(per token; OpenVINO's CPU default is 32, always set explicitly here). all-MiniLM-L6-v2, int8
weights, batch 1 vs OpenVINO f32 (AMD Zen 4, 2 threads): recall@10 0.978 / 1.73x at 32, 0.977 /
1.90x at 64, 0.966 / 1.98x at 128."""


class CandidateLeftOut(UserWarning):
    """A candidate was not built: the target's runtime cannot run it, or the CPU lacks its precision."""


def for_runtime(state: CompileState, candidates: list[Candidate]) -> list[Candidate]:
    """`candidates` as the target's runtime(s) take them (unchanged for ONNX Runtime alone)."""
    target = state.target
    if len(target.runtimes) > 1:
        extra = _openvino(state, candidates, required=False)
        tagged = [Candidate(OPENVINO + c.name, tag_runtime(c.model, "openvino"), c.plan) for c in extra]
        return candidates + tagged
    if target.runtime == "openvino":
        return _openvino(state, candidates, required=True)
    return candidates


def other_runtime_fp32(candidates: list[Candidate]) -> list[Candidate]:
    """The fp32 model as the target's other runtimes run it (none for a one-runtime target)."""
    return [c for c in candidates if c.name == OPENVINO + "fp32"]


def _openvino(state: CompileState, candidates: list[Candidate], required: bool) -> list[Candidate]:
    """The candidates OpenVINO can run, plus the forms only it runs. `required`: the target runs
    nothing else, so an fp32 model it cannot convert is refused (else left out)."""
    target = state.target
    fp32, *others = candidates
    if why := unconvertible(fp32.model) or (None if required else _conversion_error(fp32)):
        if required:
            raise InputError(f"target {target.name}: {why}")
        _left_out(f"OpenVINO candidates left out: {why}")
        return []
    kept = [fp32]
    for candidate in others:
        if why := unconvertible(candidate.model):
            _left_out(f"{candidate.name} left out on OpenVINO: {why}")
        else:
            kept.append(candidate)
    reduced = _reduced_precisions(state)
    static = [c for c in kept if c.plan is not None and c.plan.quantized]
    for precision in reduced:
        kept.append(Candidate(precision, with_precision(fp32.model, precision)))
        kept += [
            Candidate(f"{c.name}-{precision}", with_precision(c.model, precision), c.plan) for c in static
        ]
    return kept + _compressed_weights(state, fp32, (reduced or ["f32"])[0])


def _reduced_precisions(state: CompileState) -> list[InferencePrecision]:
    """The target's reduced precisions this CPU has kernels for (a warning for each it lacks)."""
    have = cpu_precisions()
    for precision in state.target.openvino.precisions:
        if precision not in have:
            _left_out(f"{precision} left out: this CPU has no fast {precision} kernels")
    return [p for p in state.target.openvino.precisions if p in have]


def _compressed_weights(
    state: CompileState, fp32: Candidate, precision: InferencePrecision
) -> list[Candidate]:
    """`int8-weights` (not under `--mode static`: its activations are quantized per call) and
    `int4-weights` with `--bits 4`: MatMul/Gemm weights stored int8 (int4 blocks), activations
    quantized by OpenVINO per call in groups of DYNAMIC_GROUP channels, the rest run in `precision`;
    embedding tables int8."""
    scheme, recipe = state.target.quantization.int8, state.recipe
    plan = plan_int8(fp32.model, scheme, recipe.exclude, mode="static")
    if not plan.weights:
        return []
    forms = []
    if recipe.mode != "static":  # activations quantized per call: dynamic quantization, by OpenVINO
        forms.append(("int8-weights", rewrite_weights_only(fp32.model, plan, scheme)))
    if recipe.bits == 4:
        forms.append(("int4-weights", lower_to_int4_dequantize(fp32.model, recipe.block_size)))
    return [
        Candidate(name, with_precision(quantize_embeddings(model, bits=8), precision, DYNAMIC_GROUP), plan)
        for name, model in forms
    ]


def _conversion_error(fp32: Candidate) -> str | None:
    """Why OpenVINO cannot convert the fp32 model (tried once), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        return conversion_error(save_model(fp32.model, Path(tmp) / "model.onnx"))


def _left_out(message: str) -> None:
    warnings.warn(message, CandidateLeftOut, stacklevel=3)


class BestPerRuntime(Stage):
    """With several runtimes, the reason also names each runtime's fastest candidate within budget."""

    name = "best-per-runtime"

    def run(self, state: CompileState) -> CompileState:
        if len(state.target.runtimes) < 2 or not state.measures_latency:
            return state
        best = []
        for runtime in state.target.runtimes:
            own = [c for c in state.candidates if c.name.startswith(OPENVINO) == (runtime == "openvino")]
            within = [c for c in own if c.budget_problem(state.recipe) is None] or own
            if within:
                top = max(within, key=lambda c: c.mean_speedup)
                best.append(f"{runtime} {top.name} {top.mean_speedup:.2f}x")
        fp32 = f"{state.target.runtime} fp32"
        state.reason += f"; fastest within budget per runtime, vs {fp32}: {', '.join(best)}"
        return state
