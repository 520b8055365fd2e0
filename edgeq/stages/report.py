"""The typed report, built once from the compile state (the only place a Report is constructed)."""

from __future__ import annotations

import uuid
import warnings
from collections import Counter
from datetime import datetime, timezone

from edgeq import __version__
from edgeq.errors import InputError
from edgeq.frontend.input_roles import roles_of
from edgeq.report.feeding import describe_feeding
from edgeq.report.gates import compile_gates
from edgeq.report.schema import (
    Accuracy,
    ArtifactInfo,
    Calibration,
    CandidateSummary,
    Decision,
    ModelInfo,
    PlanComparison,
    PlanStep,
    PrecisionPlanReport,
    QatCheck,
    Quantization,
    Report,
    ReportWarning,
    RuntimePrecision,
    StageTime,
    TargetInfo,
)
from edgeq.runtime.machine import describe_machine
from edgeq.source import sample_count
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Analysis
from edgeq.stages.lower import GIVEN_QDQ
from edgeq.stages.state import CompileState

ENGINE_LATER = "the TensorRT engine is built and timed on the GPU (edgeq build-engine OUT/)"


class BuildReport(Stage):
    """Everything the stages measured, as one `Report`, its gates evaluated by `edgeq.report.gates`."""

    name = "report"

    def check(self, state: CompileState) -> str | None:
        recipe = state.recipe
        if recipe.gates.max_drop is not None and recipe.task is None:
            return "gate max_drop needs a task evaluator (--task); use --min-cosine instead"
        if recipe.qat is not None and recipe.task is None:
            return "qat: the QAT check compares a task metric; it needs a task evaluator (--task)"
        return None

    def run(self, state: CompileState) -> CompileState:
        state.report = build_report(state)
        return state


def build_report(state: CompileState) -> Report:
    """The report of one compile, stamped with run id, time, version and machine."""
    source, recipe, target, chosen = state.source, state.recipe, state.target, state.chosen
    now = datetime.now(timezone.utc)
    report = Report(
        run_id=now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        created=now.isoformat(timespec="seconds"),
        edgeq_version=__version__,
        model=ModelInfo(source.name, source.sha256, source.bytes, source.path),
        target=TargetInfo(target.name, target.runtime, list(target.providers)),
        recipe=recipe.to_dict(),
        artifact=ArtifactInfo(**state.artifact.to_dict(state.staging)),
        size_ratio=state.artifact.bytes / source.bytes,
        decision=Decision(
            chosen=chosen.name,
            reason=state.reason,
            candidates=state.summaries,
            timing_noise=state.noise,
            engine=state.engine,
            finish_later=state.finish_later,
        ),
        accuracy=Accuracy(
            sample_count(state.evaluation, state.prepared),
            chosen.outputs,
            chosen.task,
            state.kinds,
            chosen.metrics,
        ),
        latency=chosen.latency if state.measures_latency else [],
        quantization=_quantization(state),
        stages=[StageTime(**s) for s in state.progress.stages],
        machine=describe_machine(),
        latency_status=_latency_status(state),
        pruning=state.pruning,
        sensitivity=state.analysis.ranking() if state.analysis else None,
        precision_plan=_precision_plan(state.analysis, state.summaries),
        warnings=_summarize_warnings(state.caught),
        feeding=describe_feeding(roles_of(state.source.model)),
        runtime_precision=_runtime_precision(chosen.runner),
    )
    report.gates = compile_gates(report, recipe.gates)
    return report


def _runtime_precision(runner: object) -> RuntimePrecision | None:
    """The kept artifact as its runtime compiled it, where the runtime says (OpenVINO)."""
    describe = getattr(runner, "layer_precisions", None)
    return RuntimePrecision(**describe()) if describe else None


def _latency_status(state: CompileState) -> str | None:
    if state.unmeasured is not None:
        return f"not measured on target: {state.unmeasured}"
    if not state.backend.measures_latency:
        return f"not measured on target: {ENGINE_LATER}"
    return None


def _quantization(state: CompileState) -> Quantization:
    """What the explained candidate quantized, how, and its culprit layers."""
    candidate = state.explained or state.chosen
    plan = candidate.plan
    if plan is None:
        return Quantization("fp32", tensorrt_violations=state.tensorrt_violations)
    calibrated = plan.quantized and candidate.name != GIVEN_QDQ
    settings = state.recipe.calibration
    return Quantization(
        method=candidate.name,
        nodes=plan.decisions,
        layers=state.layers,
        calibration=Calibration(settings.method, settings.samples) if calibrated else None,
        counts=dict(Counter(d.precision for d in plan.decisions)),
        target_problems=state.target_problems,
        tensorrt_violations=state.tensorrt_violations,
        qat=_qat_check(state),
    )


def _qat_check(state: CompileState) -> QatCheck | None:
    """Simulated (torch fake-quant) vs measured (this artifact in the runtime) task metric."""
    check, task = state.recipe.qat, state.chosen.task
    if check is None:
        return None
    if task is None or check.metric not in {m.name for m in task.metrics}:
        raise InputError(f"qat.metric {check.metric!r} is not a metric of the recipe's task")
    measured = task.metric(check.metric).compiled
    gap = measured - check.simulated
    return QatCheck(check.metric, check.simulated, measured, gap, check.tolerance, abs(gap) > check.tolerance)


def _precision_plan(
    analysis: Analysis | None, summaries: list[CandidateSummary]
) -> PrecisionPlanReport | None:
    """The chosen per-layer precisions beside uniform 8-bit and 4-bit, as measured."""
    if analysis is None or analysis.plan is None:
        return None
    compared = {"int8-static": "uniform-int8", "int4-uniform": "uniform-int4", "int4-planned": "planned"}
    comparison = [
        PlanComparison(
            plan=compared[s.name],
            size_ratio=s.size_ratio,
            task_drop=s.task_drop,
            worst_cosine=s.worst_cosine,
            speedup=min(s.speedups.values(), default=None),
            within_budget=s.within_budget,
        )
        for s in summaries
        if s.name in compared
    ]
    if not any(row.plan == "planned" for row in comparison):
        uniform = [row for row in comparison if row.plan == "uniform-int4"]
        comparison += [PlanComparison(**(vars(row) | {"plan": "planned"})) for row in uniform]
    plan = analysis.plan
    return PrecisionPlanReport(
        layers=plan.groups,
        precisions=dict(plan.assignment),
        weight_bytes=plan.weight_bytes(),
        steps=[PlanStep(**step) for step in plan.steps],
        comparison=comparison,
    )


def _summarize_warnings(caught: list[warnings.WarningMessage]) -> list[ReportWarning]:
    """Library warnings grouped and counted for the report instead of flooding the terminal."""
    counts = Counter((w.category.__name__, str(w.message).splitlines()[0][:300]) for w in caught)
    return [ReportWarning(category, message, n) for (category, message), n in counts.most_common()]
