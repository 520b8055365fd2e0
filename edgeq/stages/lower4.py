"""4-bit candidates: per-role sensitivity, then uniform-4-bit and the planned mix under the budget;
per-layer sensitivity when analyzed."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import numpy as np
import onnx

from edgeq.data import Arrays
from edgeq.feeds import EXTRA
from edgeq.graph.ops import LINEAR_OPS
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.kinds import kind_metrics, recognise
from edgeq.measure.tasks import TaskResult
from edgeq.passes.nbits_accuracy import fastest_accuracy_level
from edgeq.quant.int4 import set_accuracy_level
from edgeq.quant.layer_inputs import input_second_moments, planned_layers
from edgeq.quant.mixed import (
    PrecisionPlan,
    build_mixed,
    layer_groups,
    layer_roles,
    measure_role_sensitivity,
    measure_sensitivity,
    plan_precision,
    smallest,
)
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import batch_feeds
from edgeq.stages.candidate import Analysis, Candidate
from edgeq.stages.quantize import calibrate
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.stages.timing import batch_sizes
from edgeq.targets import TargetSpec

TaskRunner = Callable[[OrtRunner, OrtRunner], TaskResult | None]


def mixed_candidates(state: CompileState, run_task: TaskRunner) -> tuple[list[Candidate], Analysis]:
    """Sensitivity of every layer role (`bits: 4`) or group (`analyze`); with `bits: 4` also the
    4-bit candidates."""
    prepared, recipe, target, progress = state.prepared, state.recipe, state.target, state.progress
    scheme = target.quantization.int8
    static = plan_int8(prepared, scheme, recipe.exclude, mode="static")
    with progress.stage("calibrate", f"calibrate activation ranges ({recipe.calibration.method})"):
        ranges = calibrate(prepared, static, recipe, target, state.calib, progress, every=True)
    groups = layer_groups(prepared, static)
    fp32 = OrtRunner(prepared.SerializeToString())
    reference = fp32.predict(state.evaluation)
    kinds, labels = recognise(state.source.model, reference, recipe.kinds), state.evaluation.get(EXTRA)

    hessians = _gptq_hessians(state, static) if recipe.methods.gptq and recipe.bits == 4 else None

    def mixed(plan: PrecisionPlan) -> tuple[onnx.ModelProto, QuantPlan]:
        return build_mixed(prepared, plan, scheme, ranges, recipe.exclude, recipe.block_size, hessians)

    def build(assignment: dict[str, str]) -> onnx.ModelProto:
        return mixed(PrecisionPlan(groups, assignment))[0]

    def judge_runner(model: onnx.ModelProto, runner: OrtRunner) -> tuple[str | None, float]:
        probe = Candidate("probe", model)
        predicted = runner.predict(state.evaluation)
        probe.outputs = compare_outputs(reference, predicted)
        probe.metrics = kind_metrics(kinds, reference, predicted, labels)  # judged as Measure judges
        probe.task = run_task(fp32, runner)
        damage = probe.task.worst_primary_drop if probe.task else 100 * (1 - probe.worst_cosine)
        return probe.budget_problem(recipe), damage

    def judge(model: onnx.ModelProto) -> tuple[str | None, float]:
        return judge_runner(model, OrtRunner(model.SerializeToString()))

    def measure_probes(stage: str, what: str, items: list, measure: Callable) -> None:
        """One probe per item and reduced precision not measured yet, with a progress bar."""
        steps = sum(1 for i in items for o in i.options if o != "fp32" and o not in i.sensitivity)
        with progress.stage(stage, what), progress.bar(f"{stage} probes", steps) as tick:
            measure(items, build, judge, tick)

    roles = layer_roles(groups)
    if recipe.bits == 4:
        what = f"measure sensitivity of {len(roles)} layer roles"
        measure_probes("sensitivity", what, roles, measure_role_sensitivity)
    if recipe.analyze:
        measure_probes("sensitivity-layers", "measure per-layer sensitivity", groups, measure_sensitivity)
    analysis = Analysis(groups)
    if recipe.bits != 4:
        return [], analysis
    uniform = PrecisionPlan(groups, smallest(groups))
    level = _fastest_4bit_compute(build(uniform.assignment), state.evaluation, target)

    def build_final(assignment: dict[str, str]) -> onnx.ModelProto:
        """The candidate exactly as it will ship: MatMulNBits at the chosen accuracy_level."""
        model = build(assignment)
        has_nbits = any(n.op_type == "MatMulNBits" for n in model.graph.node)
        return set_accuracy_level(model, level) if level is not None and has_nbits else model

    def judge_artifact(model: onnx.ModelProto) -> tuple[str | None, float]:
        """The plan is judged on the compiled artifact, so the plan it stops at measures in budget."""
        folder = state.work / "plan-probe"
        artifact = state.backend.compile(model, target, folder)
        try:
            return judge_runner(model, open_session(state, artifact.path))
        finally:
            shutil.rmtree(folder)

    with progress.stage("plan", "choose per-layer precision under the budget, judged on the artifact"):
        analysis.plan = plan_precision(roles, build_final, judge_artifact)
    candidates = []
    for name, plan in (("int4-uniform", uniform), ("int4-planned", analysis.plan)):
        if name == "int4-planned" and plan.assignment == uniform.assignment:
            continue
        int8_plan = mixed(plan)[1]
        candidates.append(Candidate(name, build_final(plan.assignment), int8_plan))
    return candidates, analysis


def _gptq_hessians(state: CompileState, static: QuantPlan) -> dict[str, np.ndarray]:
    """E[x xᵀ] of each MatMul/Gemm's input on the calibration samples, by node name (for GPTQ)."""
    layers = [q for q in planned_layers(state.prepared, static) if q.op_type in LINEAR_OPS]
    with state.progress.stage("gptq-inputs", "collect layer inputs for GPTQ rounding"):
        return input_second_moments(
            state.prepared, layers, state.calib, samples=state.recipe.calibration.samples
        )


def _fastest_4bit_compute(model: onnx.ModelProto, evaluation: Arrays, target: TargetSpec) -> int | None:
    """MatMulNBits' accuracy_level (fp32 or int8 compute) with the best worst case over the
    target's batch sizes, as measured here: int8 compute wins at batch 1 and can lose at 32.
    None when the model has no MatMulNBits."""
    if not any(n.op_type == "MatMulNBits" for n in model.graph.node):
        return None
    runner = OrtRunner(model.SerializeToString())
    levels = (1, 4)
    worst = dict.fromkeys(levels, 0.0)
    for batch in batch_sizes(runner, target.latency.batch_sizes):
        _, medians = fastest_accuracy_level(
            model, batch_feeds(runner, evaluation, batch), levels=levels, threads=target.latency.threads
        )
        best = min(medians.values())
        worst = {level: max(worst[level], medians[level] / best) for level in levels}
    return min(worst, key=worst.__getitem__)
