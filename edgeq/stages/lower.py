"""Lowering candidates: every way this target can run the model, built before any is measured."""

from __future__ import annotations

from functools import partial

from edgeq.graph.ops import LINEAR_OPS
from edgeq.measure.tasks import evaluate_task
from edgeq.quant.dynamic import lower_dynamic
from edgeq.quant.int4 import quantize_embeddings
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.quant.prequantized import is_quantized, recognise
from edgeq.quant.trt_rules import check_tensorrt_placement
from edgeq.stages.base import Stage, first_refusal
from edgeq.stages.candidate import Candidate
from edgeq.stages.lower4 import mixed_candidates
from edgeq.stages.prepare import GIVEN
from edgeq.stages.quantize import quantize_static
from edgeq.stages.runtime_candidates import for_runtime
from edgeq.stages.state import CompileState

GIVEN_QDQ = "given-qdq"


def _given_only(state: CompileState) -> str | None:
    """Options that mean something only for an already-quantized model."""
    if state.recipe.qat is not None:
        return (
            "qat: the QAT check compares an already-quantized model with its simulation; this model is fp32"
        )
    if state.recipe.reference is not None:
        return "reference: the fp32 reference is for an already-quantized model; this model is fp32"
    return None


class LowerCandidates(Stage):
    """fp32 (ORT-optimized), every INT8 mode that quantizes a node, and 4-bit plans when asked."""

    name = "lower"

    def check(self, state: CompileState) -> str | None:
        return _given_only(state)

    def run(self, state: CompileState) -> CompileState:
        prepared, recipe, target, progress = state.prepared, state.recipe, state.target, state.progress
        scheme = target.quantization.int8
        candidates = [Candidate("fp32", prepared)]
        if recipe.bits == 4 or recipe.analyze:
            run_task = partial(evaluate_task, recipe, evaluation=state.evaluation)
            candidates_4bit, state.analysis = mixed_candidates(state, run_task)
            candidates += candidates_4bit
        modes = ["static", "dynamic"] if recipe.mode == "auto" else [recipe.mode]
        for mode in modes:
            for per_tensor in (False, True) if scheme.weights.per_channel else (False,):
                plan = plan_int8(prepared, scheme, recipe.exclude, mode=mode, per_tensor_matmul=per_tensor)
                if (not plan.quantized and not plan.dynamic) or (per_tensor and not _int8_matmuls(plan)):
                    continue
                variant = mode + ("-per-tensor" if per_tensor else "")
                with progress.stage(f"quantize-{variant}", f"quantize: {variant.replace('-', ' ')} int8"):
                    model = prepared
                    if mode == "static":
                        model, plan = quantize_static(prepared, plan, recipe, target, state.calib, progress)
                    model = lower_dynamic(model, plan.dynamic, scheme.weights.reduce_range, per_tensor)
                    model = quantize_embeddings(model, bits=8)
                candidates.append(Candidate(f"int8-{variant}", model, plan))
        state.candidates = for_runtime(state, candidates)
        return state


def _int8_matmuls(plan: QuantPlan) -> bool:
    """Whether any MatMul/Gemm runs int8: the only ops whose weight granularity is a candidate."""
    return any(d.op_type in LINEAR_OPS and d.precision != "fp32" for d in plan.decisions)


class LowerGiven(Stage):
    """The given Q/DQ read as a plan and checked against the target's conventions, never quantized twice."""

    name = "lower-given"

    def check(self, state: CompileState) -> str | None:
        recipe, methods = state.recipe, state.recipe.methods
        again = f"{GIVEN}, not quantized again"
        return first_refusal(
            [
                ("bits 4", recipe.bits == 4, again),
                ("analyze", recipe.analyze, again),
                (f"mode {recipe.mode}", recipe.mode != "auto", again),
                ("methods.bias_correction", methods.bias_correction, again),
                ("methods.adaround", methods.adaround, again),
            ]
        )

    def run(self, state: CompileState) -> CompileState:
        decisions, state.target_problems = recognise(state.prepared, state.target.quantization.int8)
        state.candidates = [Candidate(GIVEN_QDQ, state.prepared, QuantPlan(decisions))]
        return state


class LowerTensorRT(Stage):
    """The TensorRT-ready graph: static INT8 QDQ by TensorRT's rules, or fp32 for an FP16 target
    (TensorRT picks FP16 kernels itself when it builds the engine)."""

    name = "lower-tensorrt"

    def check(self, state: CompileState) -> str | None:
        recipe, target, methods = state.recipe, state.target, state.recipe.methods
        on = f"target {target.name} (TensorRT)"
        fp16 = f"{on} is FP16: nothing is quantized"
        refusal = first_refusal(
            [
                ("bits 4", recipe.bits == 4, f"{on} takes static INT8 QDQ or FP16 only"),
                ("mode dynamic", recipe.mode == "dynamic", f"{on} takes static INT8 QDQ only"),
                ("analyze", recipe.analyze, f"{on} builds one engine: layer sensitivity is for CPU targets"),
                ("methods.adaround", target.precision == "fp16" and methods.adaround, fp16),
                ("methods.bias_correction", target.precision == "fp16" and methods.bias_correction, fp16),
                (
                    "an already-quantized model",
                    is_quantized(state.source.model),
                    f"{on} quantizes fp32 models",
                ),
            ]
        )
        return refusal or _given_only(state)

    def run(self, state: CompileState) -> CompileState:
        prepared, recipe, target = state.prepared, state.recipe, state.target
        if target.precision == "fp16":
            state.candidates = [Candidate("fp16", prepared)]
            state.tensorrt_violations = check_tensorrt_placement(prepared)
            return state
        plan = plan_int8(prepared, target.quantization.int8, recipe.exclude, mode="static")
        with state.progress.stage("quantize-static", "quantize: static int8 for TensorRT"):
            model, plan = quantize_static(prepared, plan, recipe, target, state.calib, state.progress)
        state.candidates = [Candidate("int8-qdq", model, plan)]
        state.tensorrt_violations = check_tensorrt_placement(model)
        return state
