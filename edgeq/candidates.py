"""Lowering candidates for one model: build each, measure each on the target, keep the best.

On a CPU, "quantized" does not mean "faster" (shared/BASELINES.md): static QDQ, dynamic int8 and
plain fp32 win on different models. So edgeq builds every applicable candidate, measures fidelity
and latency of each artifact against the fp32 model in one interleaved run, and picks the fastest
one within the accuracy budget — never one slower than fp32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.backends.ort_cpu import compile_ort_cpu
from edgeq.data import Arrays
from edgeq.measure.fidelity import OutputFidelity, compare_outputs
from edgeq.measure.tasks import TaskResult
from edgeq.passes.nbits_accuracy import fastest_accuracy_level
from edgeq.progress import Progress
from edgeq.quant.bias_correction import apply_biases, corrected_biases
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.dynamic import lower_dynamic
from edgeq.quant.int4 import quantize_embeddings, set_accuracy_level
from edgeq.quant.mixed import (
    LayerGroup,
    PrecisionPlan,
    build_mixed,
    layer_groups,
    measure_sensitivity,
    plan_precision,
    smallest,
)
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.quant.qdq import activation_format, rewrite_qdq, weight_format
from edgeq.recipe import Recipe
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry, batch_feeds, measure_interleaved, speedup
from edgeq.targets import TargetSpec

TaskRunner = Callable[[OrtRunner, OrtRunner], TaskResult | None]
MIN_NOISE = 0.03  # a ratio closer to 1 than this is never read as a difference
REFERENCE_AGAIN = " reference (second session)"  # the A/A timing: no candidate has this name
# Artifacts within 5% of each other in bytes are the same size: among speed ties the faster of them
# wins (INT8 static vs dynamic differ by < 1%; INT8 vs fp32 by 4x, where the smaller one should win).
SIZE_TIE = 0.05


@dataclass
class Candidate:
    """One way to lower the model, with what it measured."""

    name: str
    model: onnx.ModelProto
    plan: QuantPlan | None = None
    artifact: Artifact | None = None
    runner: OrtRunner | None = None
    outputs: list[OutputFidelity] = field(default_factory=list)
    task: TaskResult | None = None
    latency: list[LatencyEntry] = field(default_factory=list)

    @property
    def worst_cosine(self) -> float:
        values = [o.cosine for o in self.outputs if o.cosine is not None]
        values += [o.agreement for o in self.outputs if o.agreement is not None and o.cosine is None]
        return min(values, default=1.0)

    @property
    def mean_speedup(self) -> float:
        """Geometric mean over the measured batch sizes."""
        return math.exp(sum(math.log(e.speedup) for e in self.latency) / len(self.latency))

    def budget_problem(self, recipe: Recipe) -> str | None:
        """Why this candidate misses the accuracy budget, or None (task metric first, else cosine)."""
        budget = recipe.budget
        if self.task is not None:
            drop = self.task.worst_primary_drop
            return None if drop <= budget.max_drop else f"task drop {drop:.3g} > {budget.max_drop}"
        cos = self.worst_cosine
        return None if cos >= budget.min_cosine else f"output cosine {cos:.5f} < {budget.min_cosine}"

    def summary(self, recipe: Recipe, source_bytes: int) -> dict:
        return {
            "name": self.name,
            "speedups": {e.batch: e.speedup for e in self.latency},
            "worst_cosine": self.worst_cosine,
            "task_drop": self.task.worst_primary_drop if self.task else None,
            "size_ratio": self.artifact.bytes / source_bytes if self.artifact else None,
            "within_budget": self.budget_problem(recipe) is None,
        }


@dataclass
class Analysis:
    """Per-layer sensitivity and, for 4-bit compiles, the chosen precision plan."""

    groups: list[LayerGroup]
    plan: PrecisionPlan | None = None

    def ranking(self) -> list[dict]:
        """Groups by their worst single-layer damage, most damaging first (the culprit table)."""
        rows = [g.to_dict() | {"worst_damage": max(g.sensitivity.values(), default=0.0)} for g in self.groups]
        return sorted(rows, key=lambda r: r["worst_damage"], reverse=True)


def build_candidates(
    prepared: onnx.ModelProto,
    recipe: Recipe,
    target: TargetSpec,
    calib: Arrays,
    evaluation: Arrays,
    run_task: TaskRunner,
    reporter: Progress,
) -> tuple[list[Candidate], Analysis | None]:
    """fp32 (ORT-optimized), every INT8 mode that quantizes a node, and 4-bit plans when asked."""
    scheme = target.quantization.int8
    candidates = [Candidate("fp32", prepared)]
    analysis = None
    if recipe.bits == 4 or recipe.analyze:
        candidates_4bit, analysis = _mixed_candidates(
            prepared, recipe, target, calib, evaluation, run_task, reporter
        )
        candidates += candidates_4bit if recipe.bits == 4 else []
    modes = ["static", "dynamic"] if recipe.mode == "auto" else [recipe.mode]
    for mode in modes:
        for per_tensor in (False, True) if scheme.weights.per_channel else (False,):
            plan = plan_int8(prepared, scheme, recipe.exclude, mode=mode, per_tensor_matmul=per_tensor)
            if (not plan.quantized and not plan.dynamic) or (per_tensor and not _int8_matmuls(plan)):
                continue
            variant = mode + ("-per-tensor" if per_tensor else "")
            with reporter.stage(f"quantize-{variant}", f"quantize: {variant.replace('-', ' ')} int8"):
                model = prepared
                if mode == "static":
                    model, plan = quantize_static(prepared, plan, recipe, target, calib, reporter)
                model = lower_dynamic(model, plan.dynamic, scheme.weights.reduce_range, per_tensor)
                model = quantize_embeddings(model, bits=8)
            candidates.append(Candidate(f"int8-{variant}", model, plan))
    return candidates, analysis


def _int8_matmuls(plan: QuantPlan) -> bool:
    """Whether any MatMul/Gemm runs int8: the only ops whose weight granularity is a candidate."""
    return any(d.op_type in ("MatMul", "Gemm") and d.precision != "fp32" for d in plan.decisions)


def _mixed_candidates(prepared, recipe, target, calib, evaluation, run_task, reporter):
    """Sensitivity of every weighted layer group, then uniform-4-bit and planned candidates."""
    scheme = target.quantization.int8
    static = plan_int8(prepared, scheme, recipe.exclude, mode="static")
    with reporter.stage("calibrate", f"calibrate activation ranges ({recipe.calibration.method})"):
        ranges = _calibrate(prepared, static, recipe, target, calib, reporter, every=True)
    groups = layer_groups(prepared, static)
    fp32 = OrtRunner(prepared.SerializeToString())
    reference = fp32.predict(evaluation)

    def build(assignment: dict[str, str]) -> onnx.ModelProto:
        return build_mixed(
            prepared, PrecisionPlan(groups, assignment), scheme, ranges, recipe.exclude, recipe.block_size
        )[0]

    def judge(model: onnx.ModelProto) -> tuple[str | None, float]:
        probe = Candidate("probe", model)
        runner = OrtRunner(model.SerializeToString())
        probe.outputs = compare_outputs(reference, runner.predict(evaluation))
        probe.task = run_task(fp32, runner)
        damage = probe.task.worst_primary_drop if probe.task else 100 * (1 - probe.worst_cosine)
        return probe.budget_problem(recipe), damage

    steps = sum(len(g.options) - 1 for g in groups)
    with (
        reporter.stage("sensitivity", "measure per-layer sensitivity"),
        reporter.bar("layers x precisions", steps) as tick,
    ):
        measure_sensitivity(groups, build, judge, tick)
    analysis = Analysis(groups)
    if recipe.bits != 4:
        return [], analysis
    with reporter.stage("plan", "choose per-layer precision under the budget"):
        analysis.plan = plan_precision(groups, build, judge)
    uniform = PrecisionPlan(groups, smallest(groups))
    candidates = []
    for name, plan in (("int4-uniform", uniform), ("int4-planned", analysis.plan)):
        if name == "int4-planned" and plan.assignment == uniform.assignment:
            continue
        model, int8_plan = build_mixed(prepared, plan, scheme, ranges, recipe.exclude, recipe.block_size)
        model = quantize_embeddings(model, bits=4, block_size=recipe.block_size)
        candidates.append(Candidate(name, _fastest_4bit_compute(model, evaluation, target), int8_plan))
    return candidates, analysis


def _fastest_4bit_compute(model: onnx.ModelProto, evaluation: Arrays, target: TargetSpec) -> onnx.ModelProto:
    """MatMulNBits' accuracy_level (fp32 or int8 compute) with the best worst case over the
    target's batch sizes, as measured here: int8 compute wins at batch 1 and can lose at 32."""
    if not any(n.op_type == "MatMulNBits" for n in model.graph.node):
        return model
    runner = OrtRunner(model.SerializeToString())
    levels = (1, 4)
    worst = dict.fromkeys(levels, 0.0)
    for batch in batch_sizes(runner, target.latency.batch_sizes):
        _, medians = fastest_accuracy_level(
            model, batch_feeds(runner, evaluation, batch), levels=levels, threads=target.latency.threads
        )
        best = min(medians.values())
        worst = {level: max(worst[level], medians[level] / best) for level in levels}
    return set_accuracy_level(model, min(worst, key=worst.__getitem__))


def _calibrate(
    prepared, plan, recipe, target, calib, reporter, every: bool = False
) -> dict[str, tuple[float, float]]:
    scheme = target.quantization.int8
    samples = min(recipe.calibration.samples, len(next(iter(calib.values()))))
    batches = -(-samples // 32) * (1 if recipe.calibration.method == "minmax" else 2)
    with reporter.bar(f"calibrate ({recipe.calibration.method})", batches) as tick:
        return calibrate_ranges(
            prepared,
            plan.calibration_tensors(every),
            calib,
            recipe.calibration,
            activation_format(scheme),
            progress=lambda *_: tick(),
        )


def quantize_static(
    prepared: onnx.ModelProto,
    plan: QuantPlan,
    recipe: Recipe,
    target: TargetSpec,
    calib: Arrays,
    reporter: Progress,
) -> tuple[onnx.ModelProto, QuantPlan]:
    """AdaRound and bias correction if the recipe asks, calibration, then the QDQ rewrite.

    Bias correction can give a bias to a layer that had none, so the plan is made again after it.
    """
    scheme, methods = target.quantization.int8, recipe.methods
    fmt = weight_format(scheme)
    model, learned = prepared, None
    if methods.adaround:
        from edgeq.quant.adaround import adaround_weights  # torch: imported only when asked for

        with reporter.bar("adaround layers", len({w.node for w in plan.weights})) as tick:
            learned = adaround_weights(
                model,
                plan,
                calib,
                fmt,
                iterations=methods.adaround_iterations,
                samples=recipe.calibration.samples,
                progress=lambda *_: tick(),
            )
    if methods.bias_correction:
        biases = corrected_biases(
            model, plan, calib, fmt, samples=recipe.calibration.samples, quantized_weights=learned
        )
        model = apply_biases(model, biases)
        plan = plan_int8(
            model, scheme, recipe.exclude, mode="static", per_tensor_matmul=plan.per_tensor_matmul
        )
    ranges = _calibrate(model, plan, recipe, target, calib, reporter)
    return rewrite_qdq(model, plan, ranges, scheme, weight_overrides=learned), plan


def measure_candidates(
    candidates: list[Candidate],
    fp32_path: Path,
    staging: Path,
    target: TargetSpec,
    evaluation: Arrays,
    run_task: TaskRunner,
    reporter: Progress,
    fidelity_reference: Path | None = None,
) -> dict[int, float]:
    """Compile each candidate, then fidelity/task per candidate and one interleaved latency run.

    Latency is against the fp32 model being replaced; fidelity against `fidelity_reference` when a
    deployment changes what fp32 means (an MRL embedding cut to its deployed dim). Returns the
    timing noise per batch size: how far a second session of the fp32 model strays from 1.0x
    in the same run (never below MIN_NOISE), the margin no speed difference is read inside.
    """
    threads = target.latency.threads
    fp32 = OrtRunner(fp32_path, threads=threads)
    judge_against = OrtRunner(fidelity_reference, threads=threads) if fidelity_reference else fp32
    reference = judge_against.predict(evaluation)
    for candidate in candidates:
        with reporter.stage(f"compile-{candidate.name}", f"compile {candidate.name} for {target.name}"):
            candidate.artifact = compile_ort_cpu(candidate.model, target, staging / candidate.name)
            candidate.runner = OrtRunner(candidate.artifact.path, threads=threads)
        with reporter.stage(f"fidelity-{candidate.name}", f"measure {candidate.name} fidelity"):
            candidate.outputs = compare_outputs(reference, candidate.runner.predict(evaluation))
            candidate.task = run_task(judge_against, candidate.runner)
    return time_candidates(candidates, fp32_path, target, evaluation, reporter)


def time_candidates(
    candidates: list[Candidate],
    fp32_path: Path,
    target: TargetSpec,
    evaluation: Arrays,
    reporter: Progress,
    rounds: int | None = None,
    stage: str = "latency",
) -> dict[int, float]:
    """One interleaved latency run of the fp32 model, a second session of it (the A/A pair that
    gives the timing noise) and the compiled candidates; sets each candidate's latency."""
    settings, threads = target.latency, target.latency.threads
    rounds = rounds or settings.rounds
    fp32 = OrtRunner(fp32_path, threads=threads)
    batches = batch_sizes(fp32, settings.batch_sizes)
    runners = {"reference": fp32, REFERENCE_AGAIN: OrtRunner(fp32_path, threads=threads)}
    runners |= {c.name: c.runner for c in candidates}
    noise = {}
    with (
        reporter.stage(stage, f"time fp32 and {', '.join(c.name for c in candidates)}, interleaved"),
        reporter.bar("latency rounds", rounds * len(batches)) as tick,
    ):
        for batch in batches:
            stats = measure_interleaved(
                runners,
                evaluation,
                batch=batch,
                warmup=settings.warmup,
                rounds=rounds,
                seconds_per_round=settings.seconds_per_round,
                tick=tick,
            )
            for candidate in candidates:
                entry = LatencyEntry(batch, threads, rounds, stats["reference"], stats[candidate.name])
                candidate.latency = [e for e in candidate.latency if e.batch != batch] + [entry]
            twin = speedup(stats["reference"], stats[REFERENCE_AGAIN])
            noise[batch] = max(MIN_NOISE, abs(1.0 - twin))
    return noise


def runoff(
    candidates: list[Candidate],
    recipe: Recipe,
    noise: dict[int, float],
    fp32_path: Path,
    target: TargetSpec,
    evaluation: Arrays,
    reporter: Progress,
) -> dict[int, float]:
    """Time again, with twice the rounds, the INT8 candidates of one size tied for fastest.

    Static and dynamic INT8 of a transformer differ by less than these machines' noise and by < 1%
    in bytes, so the first run cannot tell them apart; a second, longer run between only them can.
    Returns the noise to select with (the first run's where there is no tie)."""
    leaders = _size_tied_leaders(candidates, recipe, noise)
    if len(leaders) < 2:
        return noise
    rounds = 2 * target.latency.rounds
    return time_candidates(leaders, fp32_path, target, evaluation, reporter, rounds, stage="runoff")


def _size_tied_leaders(
    candidates: list[Candidate], recipe: Recipe, noise: dict[int, float]
) -> list[Candidate]:
    """Eligible INT8 candidates within the noise of the fastest and within SIZE_TIE of the smallest."""
    eligible = _eligible(candidates, recipe, noise)
    if recipe.bits == 4 or len(eligible) < 2:
        return []
    return _smallest(_speed_ties(eligible, max(c.mean_speedup for c in eligible), noise))


def _eligible(candidates: list[Candidate], recipe: Recipe, noise: dict[int, float]) -> list[Candidate]:
    """INT8 candidates within the accuracy budget and not measurably slower than fp32."""
    within = [c for c in candidates if c.name != "fp32" and c.budget_problem(recipe) is None]
    return [c for c in within if not _slower(c, noise)]


def _margin(noise: dict[int, float]) -> float:
    """The fraction of the fastest speed that still counts as a tie: one minus the worst batch's noise.

    The worst, not the mean: the pointer net's batch-1 A/A noise reads 10-12% where batch 32 reads
    3%, and a mean margin let one noisy run pick a larger, less faithful INT8 variant."""
    return 1.0 - max(noise.values())


def _speed_ties(pool: list[Candidate], fastest: float, noise: dict[int, float]) -> list[Candidate]:
    return [c for c in pool if c.mean_speedup >= fastest * _margin(noise)]


def _smallest(pool: list[Candidate]) -> list[Candidate]:
    """The smallest artifacts of `pool`, sizes within SIZE_TIE counting as equal."""
    smallest = min(c.artifact.bytes for c in pool)
    return [c for c in pool if c.artifact.bytes <= smallest * (1 + SIZE_TIE)]


def batch_sizes(runner: OrtRunner, wanted: list[int]) -> list[int]:
    """The target's batch sizes, or the model's own batch if its batch axis is fixed."""
    first = next(iter(runner.inputs.values()))
    fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) else None
    return [fixed] if fixed else wanted


def select(candidates: list[Candidate], recipe: Recipe, noise: dict[int, float]) -> tuple[Candidate, str]:
    """Among candidates within budget and not measurably slower than fp32, the fastest — ties within
    the measured noise go to the smaller artifact, the faster of equal sizes (4-bit compiles: simply
    the smallest)."""
    quantized = [c for c in candidates if c.name != "fp32"]
    fp32 = next(c for c in candidates if c.name == "fp32")
    within = [c for c in quantized if c.budget_problem(recipe) is None]
    eligible = _eligible(candidates, recipe, noise)
    if eligible and recipe.bits == 4:
        best = min(eligible, key=lambda c: (c.artifact.bytes, -c.mean_speedup))
        return (
            best,
            f"smallest candidate within the accuracy budget, not slower than fp32 ({best.mean_speedup:.2f}x)",
        )
    if eligible:
        tied = _speed_ties(eligible, max(c.mean_speedup for c in [fp32, *eligible]), noise)
        if tied:
            best = max(_smallest(tied), key=lambda c: c.mean_speedup)
            return best, (
                f"fastest within the accuracy budget, or within timing noise of it and smaller "
                f"({best.mean_speedup:.2f}x fp32; noise ±{1 - _margin(noise):.0%})"
            )
        eligible_text = ", ".join(f"{c.name} {c.mean_speedup:.2f}x" for c in eligible)
        faster = f"the fp32 artifact measured faster ({fp32.mean_speedup:.2f}x) than {eligible_text}"
        if recipe.fallback_fp32:
            return fp32, faster
        best = max(eligible, key=lambda c: c.mean_speedup)
        return best, f"fp32 fallback disabled; kept the fastest INT8 ({faster})"
    if not quantized:
        return fp32, "nothing on this graph can be quantized for the target"
    problems = "; ".join(f"{c.name}: {_problem(c, recipe, noise)}" for c in quantized)
    if recipe.fallback_fp32:
        return fp32, f"no INT8 candidate is both within budget and not slower than fp32 ({problems})"
    pool = within or quantized
    best = max(pool, key=(lambda c: c.mean_speedup) if within else _faithfulness)
    return (
        best,
        f"fp32 fallback disabled; kept the {'fastest' if within else 'most faithful'} INT8 ({problems})",
    )


def _slower(candidate: Candidate, noise: dict[int, float]) -> bool:
    return any(e.speedup < 1.0 - noise[e.batch] for e in candidate.latency)


def _faithfulness(candidate: Candidate) -> float:
    return -candidate.task.worst_primary_drop if candidate.task else candidate.worst_cosine


def _problem(candidate: Candidate, recipe: Recipe, noise: dict[int, float]) -> str:
    budget = candidate.budget_problem(recipe)
    if budget:
        return budget
    slow = [
        f"batch {e.batch}: {e.speedup:.2f}x" for e in candidate.latency if e.speedup < 1.0 - noise[e.batch]
    ]
    return "slower than fp32 at " + ", ".join(slow)
