"""Repair: an INT8 candidate that misses the budget keeps its most damaging layers fp32 until it holds.

A candidate is not dropped whole for a few layers' noise. Its quantized layers are ranked by the
noise each adds (`layer_damage`, the culprit table's ranking), and the candidate is built again
with the worst k of them left fp32, compiled and measured on the artifact like every candidate:
k doubles (1, 2, 4, ...) until the budget holds, then bisects down to the fewest that hold, so a
model with n layers costs about 2·log2(n) rebuilds. The search stops early once a rebuild is no
faster than fp32: keeping more layers only makes it slower.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import onnx

from edgeq.graph.ops import RECURRENT_OPS, WEIGHTED_OPS
from edgeq.measure.layers import layer_damage
from edgeq.quant.plan import plan_int8
from edgeq.recipe import Recipe
from edgeq.report.schema import CandidateSummary, LayerRepair, RepairStep
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.compile import compile_candidate
from edgeq.stages.lower import Int8Variant, build_int8, int8_source, int8_variants
from edgeq.stages.measure import Fp32Judge, fp32_judge, measure_fidelity
from edgeq.stages.quantize import calibrate
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.stages.timing import time_candidates

KEEPABLE_OPS = WEIGHTED_OPS | RECURRENT_OPS | {"Add"}
"""Nodes a repair may keep fp32: layers, and residual Adds (their requantization is noise too)."""


@dataclass
class RepairedCandidate(Candidate):
    """A candidate rebuilt from `base` with `kept` layers fp32; its summary carries the trade."""

    base: Candidate | None = None
    kept: list[str] = field(default_factory=list)
    steps: list[RepairStep] = field(default_factory=list)

    def summary(self, recipe: Recipe, source_bytes: int, problem: str | None = None) -> CandidateSummary:
        base = self.base
        trade = LayerRepair(
            base=base.name,
            kept_layers=list(self.kept),
            base_speedups={e.batch: e.speedup for e in base.latency},
            base_worst_cosine=base.worst_cosine,
            base_problem=base.budget_problem(recipe),
            steps=list(self.steps),
        )
        return replace(super().summary(recipe, source_bytes, problem), repair=trade)


class Repair(Stage):
    """Per mode (static, dynamic), the most faithful INT8 candidate that misses the budget but runs
    faster than fp32 and than any candidate within budget is repaired; what holds the budget joins
    the candidates selection picks from, all of them timed again side by side."""

    name = "repair"

    def run(self, state: CompileState) -> CompileState:
        variants = {v.name: v for v in int8_variants(state)}
        bases = worth_repairing(state, variants)
        if not bases:
            return state
        judge = fp32_judge(state)  # one fp32 run serves every repair try
        repaired = [r for b in bases if (r := repair(state, b, variants[b.name], judge)) is not None]
        if repaired:
            state.candidates += repaired
            if state.measures_latency:  # one run for every candidate selection may pick, side by side
                within = [c for c in state.candidates if c.plan and c.budget_problem(state.recipe) is None]
                state.noise = time_candidates(state, within, stage="repair-latency")
        return state


def shared_ranges(state: CompileState, source: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """Activation ranges of every tensor of the full static plan: any rebuild that keeps some layers
    fp32 is a subset of it, so one calibration serves every rebuild."""
    static = plan_int8(source, state.target.quantization.int8, state.recipe.exclude)
    with state.progress.stage("repair-calibrate", "calibrate once for the repair rebuilds"):
        return calibrate(source, static, state.recipe, state.target, state.calib, state.progress, every=True)


def worth_repairing(state: CompileState, variants: dict[str, Int8Variant]) -> list[Candidate]:
    """Per mode, the most faithful INT8 candidate that misses the budget and runs faster than fp32
    and than every candidate within budget (a repair only slows its base down)."""
    recipe, noise = state.recipe, state.noise
    missing = [c for c in state.candidates if c.name in variants and c.budget_problem(recipe) is not None]
    if state.measures_latency:
        within = [c.mean_speedup for c in state.candidates if c.plan and c.budget_problem(recipe) is None]
        beat = max(within, default=1.0) * (1 + max(noise.values(), default=0.0))
        missing = [c for c in missing if pays(c, noise) and c.mean_speedup > beat]
    best = {}
    for candidate in sorted(missing, key=lambda c: c.worst_cosine, reverse=True):
        best.setdefault(variants[candidate.name].mode, candidate)
    return list(best.values())


def pays(candidate: Candidate, noise: dict[int, float]) -> bool:
    """Faster than fp32 beyond the timing noise over the batch sizes (their geometric mean, as
    selection ranks), and measurably slower at none."""
    latency, margin = candidate.latency, max(noise.values(), default=0.0)
    slower = any(e.speedup < 1.0 - noise.get(e.batch, margin) for e in latency)
    return bool(latency) and not slower and candidate.mean_speedup > 1.0 + margin


def keep_order(state: CompileState, base: Candidate, source: onnx.ModelProto) -> list[str]:
    """The base's quantized layers, the most damaging first (lowest SQNR each adds on its own), each
    compared with the same tensor of the fp32 graph it was quantized from."""
    plan = base.plan
    ops = {d.name: d.op_type for d in plan.decisions}
    nodes = {n: "int8" for n in plan.quantized} | {n: "int8-dynamic" for n in plan.dynamic}
    nodes = {n: p for n, p in nodes.items() if ops[n] in KEEPABLE_OPS}
    with state.progress.stage(f"repair-rank-{base.name}", f"rank {base.name} layers by the noise they add"):
        ranked = [d.name for d in layer_damage(source, base.model, nodes, state.evaluation)]
    return ranked + sorted(set(nodes) - set(ranked))  # layers the probe could not see go last


def repair(
    state: CompileState, base: Candidate, variant: Int8Variant, judge: Fp32Judge
) -> RepairedCandidate | None:
    """The base rebuilt with the fewest worst layers fp32 that hold the budget, or None when none
    does while still running faster than fp32."""
    source = int8_source(state, variant)
    order = keep_order(state, base, source)
    ranges = shared_ranges(state, source) if variant.mode == "static" else None
    steps: list[RepairStep] = []

    def build(k: int) -> RepairedCandidate | None:
        built = build_int8(state, variant, order[:k], ranges, name=f"{variant.name}-keep{k}")
        if built is None:
            return None
        probe = RepairedCandidate(built.name, built.model, built.plan, base=base, kept=order[:k])
        probe.artifact = compile_candidate(state.backend, state.target, probe, state.work)
        probe.runner = open_session(state, probe.artifact.path)
        measure_fidelity(state, [probe], judge)
        steps.append(RepairStep(k, probe.worst_cosine, probe.budget_problem(state.recipe)))
        return probe

    held, missed, k = None, 0, 1
    while held is None and k < len(order):
        probe = build(k)
        if probe is None:
            return None
        if state.measures_latency:
            again = time_candidates(state, [probe], stage=f"repair-latency-{probe.name}")
            noise = {b: max(n, state.noise.get(b, 0.0)) for b, n in again.items()}  # the wider reading
            steps[-1].speedup = min(e.speedup for e in probe.latency)
            if not pays(probe, noise):
                speeds = ", ".join(f"batch {e.batch} {e.speedup:.2f}x" for e in probe.latency)
                state.progress.note(f"{base.name}: {k} layers fp32 runs no faster than fp32 ({speeds})")
                return None
        if steps[-1].problem is None:
            held = probe
        else:
            missed, k = k, min(2 * k, len(order) - 1)  # the last try keeps all layers but one
            if k == missed:
                break
    if held is None:
        state.progress.note(f"{base.name}: no repair within budget short of keeping every layer fp32")
        return None
    while len(held.kept) - missed > 1:
        middle = (missed + len(held.kept)) // 2
        probe = build(middle)
        if probe is not None and steps[-1].problem is None:
            held = probe
        else:
            missed = middle
    held.steps = steps
    state.progress.note(f"{base.name}: {len(held.kept)} layers kept fp32 hold the budget ({held.name})")
    return held
