"""The compile pipeline, stage by stage: prepare, quantize, compile, measure, report."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import onnx

from edgeq import __version__
from edgeq.backends.artifact import Artifact
from edgeq.backends.tensorrt import REFERENCE_NAME
from edgeq.candidates import (
    Candidate,
    build_candidates,
    measure_candidates,
    quantize_static,
    runoff,
    select,
)
from edgeq.data import Arrays
from edgeq.errors import InputError
from edgeq.frontend.onnx_load import load_onnx
from edgeq.graph import save_model
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.layers import layer_damage
from edgeq.measure.machine import describe_machine
from edgeq.measure.tasks import TaskResult, evaluate_task
from edgeq.passes.mrl import deployed_task_options, slice_embedding
from edgeq.passes.prepare import prepare_model
from edgeq.passes.subpixel import lower_conv_transposes, subpixel_summary
from edgeq.progress import Progress
from edgeq.quant.equalize import equalize_cross_layer
from edgeq.quant.plan import QuantPlan, ensure_node_names, plan_int8
from edgeq.quant.prequantized import is_quantized, recognise
from edgeq.quant.trt_rules import check_tensorrt_placement
from edgeq.recipe import Recipe, build_recipe
from edgeq.report.schema import Gate, Report
from edgeq.runtime.session import OrtRunner
from edgeq.source import SourceModel, sample_count
from edgeq.targets import TargetSpec


@dataclass
class CompileContext:
    """What every stage reads besides the model: recipe, target, data, progress and a work dir."""

    source: SourceModel
    recipe: Recipe
    target: TargetSpec
    calib: Arrays
    evaluation: Arrays
    staging: Path
    reporter: Progress


def run(ctx: CompileContext) -> Report:
    """The report of one compile: TensorRT, already-quantized or CPU candidates, by model and target."""
    if ctx.target.runtime == "tensorrt":
        return run_tensorrt(ctx)
    if is_quantized(ctx.source.model):
        return run_given(ctx)
    return run_candidates(ctx)


def run_candidates(ctx: CompileContext) -> Report:
    """Prepare, build every lowering candidate, measure them all, keep the best within budget."""
    source, recipe, target = ctx.source, ctx.recipe, ctx.target
    evaluation, reporter = ctx.evaluation, ctx.reporter
    calib, staging = ctx.calib, ctx.staging
    prepared, pruning = _prepare(source, recipe, target, evaluation, reporter)
    work = staging / "candidates"
    work.mkdir()
    deployed = None
    if recipe.mrl is not None:
        with reporter.stage("mrl", f"cut the embedding to its deployed {recipe.mrl.dim} dims"):
            prepared = slice_embedding(prepared, recipe.mrl.output, recipe.mrl.dim)
            deployed = save_model(prepared, work / "reference.deployed.onnx")
            if recipe.task is not None:
                recipe = build_recipe(
                    recipe,
                    task={
                        "name": recipe.task.name,
                        "options": deployed_task_options(recipe.task.options, recipe.mrl.dim),
                    },
                )
    run_task = partial(evaluate_task, recipe, evaluation=evaluation)
    candidates, analysis = build_candidates(prepared, recipe, target, calib, evaluation, run_task, reporter)
    fp32_path = save_model(source.model, work / "reference.onnx")
    noise = measure_candidates(candidates, fp32_path, work, target, evaluation, run_task, reporter, deployed)
    noise = runoff(candidates, recipe, noise, fp32_path, target, evaluation, reporter)
    chosen, reason = select(candidates, recipe, noise)
    explained = chosen if chosen.plan else _most_faithful_quantized(candidates) or chosen
    layers = []
    if explained.plan is not None:
        with reporter.stage("layers", "rank layers by the noise they add"):
            nodes = {n: "int8" for n in explained.plan.quantized} | {
                n: "int8-dynamic" for n in explained.plan.dynamic
            }
            layers = layer_damage(prepared, explained.model, nodes, evaluation)
    summaries = [c.summary(recipe, source.bytes) for c in candidates]
    artifact = _keep(chosen.artifact, staging)
    shutil.rmtree(work)
    return _new_report(
        source,
        recipe,
        target,
        artifact=artifact.to_dict(staging),
        size_ratio=artifact.bytes / source.bytes,
        decision={
            "chosen": chosen.name,
            "reason": reason,
            "timing_noise": noise,
            "candidates": summaries,
        },
        accuracy_samples=sample_count(evaluation, prepared),
        outputs=chosen.outputs,
        task=chosen.task,
        latency=chosen.latency,
        quantization=_quantization_section(explained, recipe, layers),
        pruning=pruning,
        stages=reporter.stages,
        sensitivity=analysis.ranking() if analysis else None,
        precision_plan=_precision_plan_section(analysis, summaries),
    )


def _prepare(
    source: SourceModel, recipe: Recipe, target: TargetSpec, evaluation: Arrays, reporter: Progress
) -> tuple[onnx.ModelProto, dict[str, Any] | None]:
    with reporter.stage("prepare", "prepare graph (fold BatchNorm, constants and static shapes)"):
        prepared = prepare_model(source.model, check=evaluation)
        ensure_node_names(prepared)
    if recipe.methods.equalize:
        with reporter.stage("equalize", "equalize cross-layer weight ranges"):
            prepared, summary = equalize_cross_layer(prepared)
            reporter.note(f"{len(summary['pairs'])} layer pairs equalized")
            prepared = onnx.shape_inference.infer_shapes(prepared)
    pruning = None
    if recipe.prune is not None:
        with reporter.stage("prune", "prune by iterative feature merging"):
            prepared, pruning = _prune(prepared, source.model, recipe, evaluation, reporter)
    if target.runtime == "onnxruntime" and any(n.op_type == "ConvTranspose" for n in prepared.graph.node):
        # last: IFM prunes ConvTranspose channels, which a Conv feeding DepthToSpace would not allow
        with reporter.stage("subpixel", "time ConvTranspose against its sub-pixel Conv form"):
            prepared, decisions = lower_conv_transposes(
                prepared, target.latency.batch_sizes, target.latency.threads
            )
            reporter.note(subpixel_summary(decisions))
    return prepared, pruning


def _new_report(source: SourceModel, recipe: Recipe, target: TargetSpec, **fields: Any) -> Report:
    """A report stamped with run id, time, version, model, target, recipe and machine, its gates checked."""
    now = datetime.now(timezone.utc)
    report = Report(
        run_id=now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        created=now.isoformat(timespec="seconds"),
        edgeq_version=__version__,
        model={"name": source.name, "path": source.path, "sha256": source.sha256, "bytes": source.bytes},
        target={"name": target.name, "runtime": target.runtime, "providers": target.providers},
        recipe=recipe.to_dict(),
        machine=describe_machine(),
        **fields,
    )
    report.gates = evaluate_gates(report, recipe)
    return report


def _precision_plan_section(analysis, summaries: list[dict]) -> dict[str, Any] | None:
    """The chosen per-layer precisions beside uniform 8-bit and 4-bit, as measured."""
    if analysis is None or analysis.plan is None:
        return None
    compared = {"int8-static": "uniform-int8", "int4-uniform": "uniform-int4", "int4-planned": "planned"}
    comparison = [
        {
            "plan": compared[s["name"]],
            "size_ratio": s["size_ratio"],
            "task_drop": s["task_drop"],
            "worst_cosine": s["worst_cosine"],
            "speedup": min(s["speedups"].values(), default=None),
            "within_budget": s["within_budget"],
        }
        for s in summaries
        if s["name"] in compared
    ]
    if not any(row["plan"] == "planned" for row in comparison):
        comparison += [row | {"plan": "planned"} for row in comparison if row["plan"] == "uniform-int4"]
    return analysis.plan.to_dict() | {"comparison": comparison}


def run_given(ctx: CompileContext) -> Report:
    """An already-quantized model (QAT export, another tool): compiled and measured as given.

    Its Q/DQ are read, checked against the target's conventions, and never quantized twice. With
    `reference` (the fp32 model) fidelity and speedup are against fp32; without, against itself.
    """
    source, recipe, target = ctx.source, ctx.recipe, ctx.target
    evaluation, reporter = ctx.evaluation, ctx.reporter
    staging = ctx.staging
    with reporter.stage("prepare", "prepare the given quantized graph"):
        prepared = prepare_model(source.model)
        ensure_node_names(prepared)
    decisions, problems = recognise(prepared, target.quantization.int8)
    candidate = Candidate("given-qdq", prepared, QuantPlan(decisions))
    work = staging / "candidates"
    work.mkdir()
    reference = (
        Path(recipe.reference) if recipe.reference else save_model(source.model, work / "reference.onnx")
    )
    if recipe.reference:
        load_onnx(reference)  # one clear line if the reference is not a usable model
    run_task = partial(evaluate_task, recipe, evaluation=evaluation)
    measure_candidates([candidate], reference, work, target, evaluation, run_task, reporter)
    summary = candidate.summary(recipe, source.bytes)
    artifact = _keep(candidate.artifact, staging)
    shutil.rmtree(work)
    quantization = _quantization_section(candidate, recipe, []) | {
        "method": "given-qdq",
        "calibration": None,
        "target_problems": problems,
    }
    quantization["qat"] = _qat_check(recipe, candidate.task)
    reason = "the model arrived quantized: compiled as given, not quantized twice"
    if not recipe.reference:
        reason += "; no fp32 reference given, so fidelity and speed are measured against itself"
    slow = [f"batch {e.batch}: {e.speedup:.2f}x" for e in candidate.latency if e.speedup < 1.0]
    if slow:
        reason += f"; slower than the reference at {', '.join(slow)} (its Q/DQ placement is not ours)"
    return _new_report(
        source,
        recipe,
        target,
        artifact=artifact.to_dict(staging),
        size_ratio=artifact.bytes / source.bytes,
        decision={"chosen": candidate.name, "reason": reason, "candidates": [summary]},
        accuracy_samples=sample_count(evaluation, prepared),
        outputs=candidate.outputs,
        task=candidate.task,
        latency=candidate.latency,
        quantization=quantization,
        pruning=None,
        stages=reporter.stages,
    )


def _qat_check(recipe: Recipe, task: TaskResult | None) -> dict[str, Any] | None:
    """Simulated (torch fake-quant) vs measured (this artifact in the runtime) task metric."""
    check = recipe.qat
    if check is None:
        return None
    if task is None or check.metric not in {m.name for m in task.metrics}:
        raise InputError(f"qat.metric {check.metric!r} is not a metric of the recipe's task")
    measured = task.metric(check.metric).compiled
    gap = measured - check.simulated
    return {
        "metric": check.metric,
        "simulated": check.simulated,
        "measured": measured,
        "gap": gap,
        "tolerance": check.tolerance,
        "flagged": abs(gap) > check.tolerance,
    }


def run_tensorrt(ctx: CompileContext) -> Report:
    """The TensorRT-ready QDQ graph, measured in ONNX Runtime CPU; the engine is built later.

    TensorRT fuses and times on the GPU itself, so no CPU latency picks a candidate here: the
    static QDQ graph (or fp32 for an FP16 target) is the artifact `edgeq build-engine` consumes.
    """
    source, recipe, target = ctx.source, ctx.recipe, ctx.target
    evaluation, reporter = ctx.evaluation, ctx.reporter
    calib, staging = ctx.calib, ctx.staging
    prepared, pruning = _prepare(source, recipe, target, evaluation, reporter)
    candidate = Candidate("fp16" if target.precision == "fp16" else "int8-qdq", prepared)
    if target.precision != "fp16":
        candidate.plan = plan_int8(prepared, target.quantization.int8, recipe.exclude, mode="static")
        with reporter.stage("quantize-static", "quantize: static int8 for TensorRT"):
            candidate.model, candidate.plan = quantize_static(
                prepared, candidate.plan, recipe, target, calib, reporter
            )
    path = save_model(candidate.model, staging / "model.onnx")
    reference = save_model(source.model, staging / REFERENCE_NAME)
    with reporter.stage("fidelity", "measure the QDQ graph in ONNX Runtime CPU"):
        fp32, graph = OrtRunner(reference), OrtRunner(path)
        candidate.outputs = compare_outputs(fp32.predict(evaluation), graph.predict(evaluation))
        candidate.task = evaluate_task(recipe, fp32, graph, evaluation)
    layers = []
    if candidate.plan is not None:
        with reporter.stage("layers", "rank layers by the noise they add"):
            nodes = {n: "int8" for n in candidate.plan.quantized}
            layers = layer_damage(prepared, candidate.model, nodes, evaluation)
    quantization = _quantization_section(candidate, recipe, layers)
    quantization["tensorrt_violations"] = check_tensorrt_placement(candidate.model)
    artifact = Artifact(path, "onnx-qdq" if candidate.plan else "onnx", [path, reference])
    return _new_report(
        source,
        recipe,
        target,
        artifact=artifact.to_dict(staging),
        size_ratio=artifact.bytes / source.bytes,
        decision={
            "chosen": candidate.name,
            "engine": "pending",
            "reason": "engine build and GPU latency run on the target: edgeq build-engine OUT/",
        },
        accuracy_samples=sample_count(evaluation, prepared),
        outputs=candidate.outputs,
        task=candidate.task,
        latency=[],
        quantization=quantization,
        pruning=pruning,
        stages=reporter.stages,
    )


def _most_faithful_quantized(candidates: list[Candidate]) -> Candidate | None:
    """When fp32 wins, the INT8 candidate whose culprits the report should still show."""
    quantized = [c for c in candidates if c.plan is not None]
    return max(quantized, key=lambda c: c.worst_cosine, default=None)


def _keep(artifact: Artifact, staging: Path) -> Artifact:
    """Move the chosen candidate's files to the output's top level."""
    files = []
    for path in artifact.files:
        target = staging / path.name
        path.rename(target)
        files.append(target)
    return Artifact(staging / artifact.path.name, artifact.format, files)


def _quantization_section(candidate: Candidate, recipe: Recipe, layers: list) -> dict[str, Any]:
    plan = candidate.plan
    if plan is None:
        return {"method": "fp32", "nodes": [], "layers": []}
    return {
        "method": candidate.name,
        "calibration": {"method": recipe.calibration.method, "samples": recipe.calibration.samples}
        if plan.quantized
        else None,
        "counts": dict(Counter(d.precision for d in plan.decisions)),
        "nodes": [d.to_dict() for d in plan.decisions],
        "layers": [d.to_dict() for d in layers],
    }


def _prune(
    prepared: onnx.ModelProto,
    original: onnx.ModelProto,
    recipe: Recipe,
    evaluation: Arrays,
    reporter: Progress,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Merge redundant features, then measure what pruning alone cost against the fp32 model."""
    from edgeq.passes.ifm import merge_features

    settings = recipe.prune
    pruned, summary = merge_features(
        prepared,
        threshold=settings.threshold,
        max_ratio=settings.max_ratio,
        protected=settings.protected,
        approximate=settings.approximate,
        progress=reporter.note,
    )
    fp32 = OrtRunner(original.SerializeToString())
    candidate = OrtRunner(pruned.SerializeToString())
    outputs = compare_outputs(fp32.predict(evaluation), candidate.predict(evaluation))
    task = evaluate_task(recipe, fp32, candidate, evaluation)
    accuracy = {"outputs": [vars(o) for o in outputs], "task": task.to_dict() if task else None}
    return pruned, {
        "method": "ifm",
        "threshold": settings.threshold,
        "max_ratio": settings.max_ratio,
        **summary.to_dict(),
        "accuracy": accuracy,
    }


def evaluate_gates(report: Report, recipe: Recipe) -> list[Gate]:
    """The recipe's gates checked against a report (compile and build-engine share this)."""
    gates = []
    limits = recipe.gates
    if limits.max_drop is not None:
        if report.task is None:
            raise InputError("gate max_drop needs a task evaluator (--task); use --min-cosine instead")
        drop = report.task.worst_primary_drop
        gates.append(Gate("max_drop", limits.max_drop, drop, drop <= limits.max_drop))
    if limits.min_speedup is not None:
        speed = min((e.speedup for e in report.latency), default=None)  # None: not timed yet
        gates.append(
            Gate("min_speedup", limits.min_speedup, speed, speed is not None and speed >= limits.min_speedup)
        )
    if limits.min_cosine is not None:
        cos = report.worst_cosine
        gates.append(Gate("min_cosine", limits.min_cosine, cos, cos is not None and cos >= limits.min_cosine))
    return gates
