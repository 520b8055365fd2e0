"""Lowering candidates: every way this target can run the model, built before any is measured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import onnx

from edgeq.graph import default_opset
from edgeq.graph.ops import LINEAR_OPS
from edgeq.measure.tasks import evaluate_task
from edgeq.quant.dynamic import PER_TOKEN_OPSET, lower_dynamic
from edgeq.quant.int4 import quantize_embeddings
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.quant.prequantized import is_quantized, recognise
from edgeq.quant.qdq import rewrite_qdq
from edgeq.quant.smoothquant import PER_TENSOR_RULE, PER_TOKEN_RULE, smooth_matmul_inputs
from edgeq.quant.trt_rules import check_tensorrt_placement
from edgeq.recipe import Recipe
from edgeq.stages.base import Stage, first_refusal
from edgeq.stages.candidate import Candidate
from edgeq.stages.lower4 import mixed_candidates
from edgeq.stages.prepare import GIVEN
from edgeq.stages.quantize import quantize_static
from edgeq.stages.runtime_candidates import for_runtime
from edgeq.stages.state import CompileState

GIVEN_QDQ = "given-qdq"
OPENVINO_4BIT = (
    "OpenVINO's 4-bit candidate is int4-weights (round-to-nearest blocks); the per-layer 4-bit "
    "analysis and GPTQ plan MatMulNBits, which OpenVINO cannot run"
)


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
    """fp32 (ORT-optimized), every INT8 mode that quantizes a node, and 4-bit plans when asked (on
    OpenVINO alone its own 4-bit form, added by `for_runtime`)."""

    name = "lower"

    def check(self, state: CompileState) -> str | None:
        recipe = state.recipe
        gptq = recipe.methods.gptq and recipe.bits != 4
        openvino = state.target.runtime == "openvino"
        return first_refusal(
            [
                ("methods.gptq", gptq, "GPTQ rounds 4-bit weights; add --bits 4"),
                ("methods.gptq", openvino and recipe.methods.gptq, OPENVINO_4BIT),
                ("analyze", openvino and recipe.analyze, OPENVINO_4BIT),
            ]
        ) or (_given_only(state))

    def run(self, state: CompileState) -> CompileState:
        recipe = state.recipe
        candidates = [Candidate("fp32", state.prepared)]
        if (recipe.bits == 4 or recipe.analyze) and state.target.runtime != "openvino":
            run_task = partial(evaluate_task, recipe, evaluation=state.evaluation)
            candidates_4bit, state.analysis = mixed_candidates(state, run_task)
            candidates += candidates_4bit
        for variant in int8_variants(state):
            candidate = build_int8(state, variant)
            if candidate is not None:
                candidates.append(candidate)
        state.candidates = for_runtime(state, candidates)
        return state


@dataclass(frozen=True)
class Int8Variant:
    """One INT8 lowering: static QDQ or dynamic, MatMul/Gemm weights per channel or per tensor,
    dynamic activations per tensor or per token (row)."""

    mode: Literal["static", "dynamic"]
    per_tensor: bool = False
    smooth: bool = False  # built on the SmoothQuant-smoothed model (`methods.smoothquant`)
    per_token: bool = False  # dynamic only: one activation scale per row (`Int8Scheme.per_token`)

    @property
    def name(self) -> str:
        return (
            f"int8-{self.mode}"
            + ("-per-tensor" if self.per_tensor else "")
            + ("-per-token" if self.per_token else "")
            + ("-smooth" if self.smooth else "")
        )


def int8_variants(state: CompileState) -> list[Int8Variant]:
    """The INT8 lowerings this recipe and target ask for (`mode: auto`: static and dynamic); with
    `methods.smoothquant` each mode also on the smoothed model, measured beside the plain one; on a
    target with `per_token`, dynamic also with per-row activation scales on the smoothed model
    (SmoothQuant's own setting: the outlier channels per-row scales cannot fix go to the weights)."""
    modes = ["static", "dynamic"] if state.recipe.mode == "auto" else [state.recipe.mode]
    scheme = state.target.quantization.int8
    variants = [
        Int8Variant(m, t) for m in modes for t in ((False, True) if scheme.weights.per_channel else (False,))
    ]
    if state.recipe.methods.smoothquant or scheme.smoothquant:
        variants += [Int8Variant(m, smooth=True) for m in modes]
    if scheme.per_token and "dynamic" in modes and default_opset(state.prepared) >= PER_TOKEN_OPSET:
        variants.append(Int8Variant("dynamic", smooth=True, per_token=True))
    return variants


def int8_source(state: CompileState, variant: Int8Variant) -> onnx.ModelProto:
    """The fp32 graph a variant quantizes: the prepared model, or its copy smoothed by the rule
    for its activation scales (each made once)."""
    if not variant.smooth:
        return state.prepared
    rule = PER_TOKEN_RULE if variant.per_token else PER_TENSOR_RULE
    if rule not in state.smoothed:
        with state.progress.stage("smoothquant", "migrate activation outliers into MatMul weights"):
            samples = state.recipe.calibration.samples
            state.smoothed[rule] = smooth_matmul_inputs(state.prepared, state.calib, samples, rule)
    return state.smoothed[rule]


def quantized_from(state: CompileState, name: str) -> onnx.ModelProto:
    """The fp32 graph the candidate `name` was quantized from, so its layers are compared with the
    tensors they were computed from: its INT8 variant's (a name begins with it: repairs add
    `-keepK`, precision twins `-bf16`), smoothed or not; the prepared model for any other. Against
    the unsmoothed graph every input of a smoothed layer reads -44 dB and no layer ranks."""
    variants = [v for v in int8_variants(state) if name == v.name or name.startswith(v.name + "-")]
    return int8_source(state, max(variants, key=lambda v: len(v.name))) if variants else state.prepared


def build_int8(
    state: CompileState,
    variant: Int8Variant,
    keep: Sequence[str] = (),
    ranges: Mapping[str, tuple[float, float]] | None = None,
    name: str | None = None,
) -> Candidate | None:
    """The variant's candidate with the `keep` nodes left fp32 (None when nothing is quantized, or
    a per-tensor variant has no int8 MatMul). `ranges`, measured once on the full static plan
    (`calibrate(every=True)`), spare a static rebuild its calibration when no method changes weights."""
    prepared, recipe, target, progress = (
        int8_source(state, variant),
        state.recipe,
        state.target,
        state.progress,
    )
    scheme = target.quantization.int8
    exclude = [*recipe.exclude, *keep]
    plan = plan_int8(prepared, scheme, exclude, mode=variant.mode, per_tensor_matmul=variant.per_tensor)
    matmul_form = variant.per_tensor or variant.per_token  # forms of MatMul/Gemm only
    if (not plan.quantized and not plan.dynamic) or (matmul_form and not _int8_matmuls(plan)):
        return None
    name = name or variant.name
    variant_id = name.removeprefix("int8-")
    with progress.stage(f"quantize-{variant_id}", f"quantize: {variant_id.replace('-', ' ')} int8"):
        model = prepared
        if variant.mode == "static":
            reuse = ranges is not None and not (recipe.methods.bias_correction or recipe.methods.adaround)
            if reuse:
                model = rewrite_qdq(prepared, plan, ranges, scheme)
            else:
                own = calibrated_as(recipe, variant)
                model, plan = quantize_static(prepared, plan, own, target, state.calib, progress)
        model = lower_dynamic(
            model, plan.dynamic, scheme.weights.reduce_range, variant.per_tensor, variant.per_token
        )
        model = quantize_embeddings(model, bits=8)
    return Candidate(name, model, plan)


def calibrated_as(recipe: Recipe, variant: Int8Variant) -> Recipe:
    """A smoothed graph is calibrated min-max: SmoothQuant already moved the outliers that a
    clipping method (MSE, percentile) would cut, and clipping them costs (MiniLM recall@10 on
    OpenVINO 0.945 MSE, 0.961 min-max)."""
    if not variant.smooth:
        return recipe
    return replace(recipe, calibration=replace(recipe.calibration, method="minmax"))


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
                ("methods.gptq", methods.gptq, again),
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
