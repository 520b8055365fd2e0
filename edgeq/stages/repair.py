"""Repair: an INT8 candidate that misses the budget keeps its most damaging layers at a higher
precision until it holds: a static candidate's MatMul/Gemm layers at dynamic INT8 (per token where
the target has it; on OpenVINO int8 weights whose inputs it quantizes per call: the runtime's own
activation scales, still the int8 kernels), a per-tensor dynamic candidate's at per-token dynamic
INT8 where the target has it, every other kept layer fp32.

A candidate is not dropped whole for a few layers' noise. Its quantized layers are ranked by the
noise each adds (`layer_damage`, the culprit table's ranking), and the candidate is built again
with the worst k of them kept, compiled and measured on the artifact like every candidate:
k doubles (1, 2, 4, ...) until the budget holds, then bisects down to the fewest that hold, so a
model with n layers costs about 2·log2(n) rebuilds, judged on fidelity. The first (one layer kept)
is timed, and when it is no faster than fp32 the search ends; so does a search keeping layers fp32
once the speedup estimated for its next step (the share of quantized multiply-accumulates it keeps
against the base's measured speedup, `speedup_ceiling`) cannot beat fp32 or a candidate within
budget. The one kept is timed beside the other candidates within budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import onnx

from edgeq.backends.openvino import model_precision, with_precision
from edgeq.graph import GraphIndex, default_opset, layer_role
from edgeq.graph.ops import LINEAR_OPS, RECURRENT_OPS, WEIGHTED_OPS
from edgeq.measure.layers import layer_damage
from edgeq.passes.ifm.graph_index import StreamIndex
from edgeq.quant.dynamic import PER_TOKEN_OPSET, lower_dynamic, lowerable
from edgeq.quant.plan import NodeDecision, plan_int8
from edgeq.quant.qdq import rewrite_weights_only
from edgeq.recipe import Recipe
from edgeq.report.schema import CandidateSummary, LayerRepair, RepairStep
from edgeq.runtime.session import OrtRunner
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.compile import compile_candidate
from edgeq.stages.lower import Int8Variant, build_int8, int8_source, int8_variants
from edgeq.stages.measure import Fp32Judge, fp32_judge, measure_fidelity
from edgeq.stages.quantize import calibrate
from edgeq.stages.runtime_candidates import DYNAMIC_GROUP
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState
from edgeq.stages.timing import time_candidates

KEEPABLE_OPS = WEIGHTED_OPS | RECURRENT_OPS | {"Add"}
"""Nodes a repair may keep fp32: layers, and residual Adds (their requantization is noise too)."""


@dataclass
class RepairedCandidate(Candidate):
    """A candidate rebuilt from `base` with `kept` layers at `kept_as`; its summary carries the trade."""

    base: Candidate | None = None
    kept: list[str] = field(default_factory=list)
    steps: list[RepairStep] = field(default_factory=list)
    kept_as: str = "fp32"

    def summary(self, recipe: Recipe, source_bytes: int, problem: str | None = None) -> CandidateSummary:
        base = self.base
        trade = LayerRepair(
            base=base.name,
            kept_layers=list(self.kept),
            base_speedups={e.batch: e.speedup for e in base.latency},
            base_worst_cosine=base.worst_cosine,
            base_problem=base.budget_problem(recipe),
            steps=list(self.steps),
            kept_as=self.kept_as,
        )
        return replace(super().summary(recipe, source_bytes, problem), repair=trade)


class Repair(Stage):
    """Per mode (static, dynamic), the INT8 candidate nearest the budget among those that miss it
    and run faster than fp32 and than any candidate within budget is repaired; what holds the
    budget joins the candidates selection picks from, all of them timed again side by side."""

    name = "repair"

    def run(self, state: CompileState) -> CompileState:
        variants = {v.name: v for v in int8_variants(state)}
        bases = worth_repairing(state, variants)
        if not bases:
            return state
        judge = fp32_judge(state)  # one fp32 run serves every repair try
        repaired = [r for b in bases if (r := repair(state, b, variants[b.name], judge)) is not None]
        repaired += [t for r in repaired for t in precision_twins(state, r, judge)]
        if repaired:
            state.candidates += repaired
            if state.measures_latency:  # one run for every candidate selection may pick, side by side
                state.noise = time_candidates(state, quantized_within_budget(state), stage="repair-latency")
        return state


def precision_twins(state: CompileState, held: RepairedCandidate, judge: Fp32Judge) -> list[Candidate]:
    """The held repair again at each reduced precision its base was also built at (OpenVINO's
    `int8-static-smooth-bf16` beside `int8-static-smooth`: the float part in bf16), kept where it
    still holds the budget; timed with the others. On all-MiniLM-L6-v2 the bf16 float part ran static
    INT8 1.08x / 1.10x faster than f32 (batch 1 / 32) at recall@10 within 0.003."""
    if state.target.runtime != "openvino":
        return []
    names = {c.name for c in state.candidates}
    twins = []
    for precision in state.target.openvino.precisions:
        if f"{held.base.name}-{precision}" not in names:
            continue
        model = with_precision(held.model, precision)
        twin = replace(held, name=f"{held.name}-{precision}", model=model, latency=[], vs_onnxruntime={})
        if (problem := _compiled_and_judged(state, twin, judge).budget_problem(state.recipe)) is None:
            twins.append(twin)
        else:
            state.progress.note(f"{twin.name} left out: {problem}")
    return twins


def _compiled_and_judged(state: CompileState, candidate: Candidate, judge: Fp32Judge) -> Candidate:
    """`candidate` compiled by the target's backend, its session opened and its fidelity measured."""
    candidate.artifact = compile_candidate(state.backend, state.target, candidate, state.work)
    candidate.runner = open_session(state, candidate.artifact.path)
    measure_fidelity(state, [candidate], judge)
    return candidate


def shared_ranges(state: CompileState, source: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """Activation ranges of every tensor of the full static plan: any rebuild that keeps some layers
    fp32 is a subset of it, so one calibration serves every rebuild."""
    static = plan_int8(source, state.target.quantization.int8, state.recipe.exclude)
    with state.progress.stage("repair-calibrate", "calibrate once for the repair rebuilds"):
        return calibrate(source, static, state.recipe, state.target, state.calib, state.progress, every=True)


def worth_repairing(state: CompileState, variants: dict[str, Int8Variant]) -> list[Candidate]:
    """Per mode, the INT8 candidate that misses the budget by the least, by the budget's own metric
    (neighbour recall, not cosine: on all-MiniLM-L6-v2 the plain dynamic candidate has the higher
    cosine and the smoothed one the higher recall), and runs faster than fp32 and than every
    candidate within budget (a repair only slows its base down)."""
    recipe, noise = state.recipe, state.noise
    missing = [c for c in state.candidates if c.name in variants and c.budget_problem(recipe) is not None]
    if state.measures_latency:
        within = [c.mean_speedup for c in quantized_within_budget(state)]
        beat = max(within, default=1.0) * (1 + max(noise.values(), default=0.0))
        missing = [c for c in missing if pays(c, noise) and c.mean_speedup > beat]
    best = {}
    for candidate in sorted(missing, key=lambda c: c.budget_margin(recipe), reverse=True):
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
    nodes = plan.int8_nodes()
    nodes = {n: p for n, p in nodes.items() if ops[n] in KEEPABLE_OPS}
    with state.progress.stage(f"repair-rank-{base.name}", f"rank {base.name} layers by the noise they add"):
        ranked = [d.name for d in layer_damage(source, base.model, nodes, state.evaluation)]
    return ranked + sorted(set(nodes) - set(ranked))  # layers the probe could not see go last


def metric_order(
    state: CompileState,
    variant: Int8Variant,
    order: list[str],
    ranges: dict[str, tuple[float, float]] | None,
    judge: Fp32Judge,
) -> list[str]:
    """`order` re-ranked by the budget's own metric: the base rebuilt with each role's layers kept
    fp32 (not compiled: a ranking, not a decision), the role that gains the most budget margin
    first, its layers in noise order. Own-SQNR ranks how loud a layer is, not what the metric
    loses to it: on all-MiniLM-L6-v2 the 16 noisiest layers kept fp32 left recall@10 short, the 6
    value projections alone held it. One build and evaluation per role (`layer_role`)."""
    roles: dict[str, list[str]] = {}
    for name in order:
        roles.setdefault(layer_role(name), []).append(name)
    margins: dict[str, float] = {}
    stage = f"repair-probe-{variant.name}"
    with state.progress.stage(stage, f"rank {len(roles)} {variant.name} layer roles by the budget metric"):
        for role, members in roles.items():
            built = build_int8(state, variant, members, ranges, name=f"{variant.name}-probe")
            if built is None:
                continue
            built.runner = OrtRunner(built.model.SerializeToString(), threads=state.target.latency.threads)
            measure_fidelity(state, [built], judge)
            margins[role] = built.budget_margin(state.recipe)
    ranked = sorted(roles, key=lambda r: -margins.get(r, -math.inf))  # stable: noise order on ties
    return [name for role in ranked for name in roles[role]]


PER_TOKEN_FORM = "per-token dynamic INT8"


def held_form(state: CompileState, model: onnx.ModelProto) -> str:
    """The finer INT8 form a repair holds MatMul/Gemm layers at: per token where ONNX Runtime's
    target has it and the opset allows, else dynamic INT8 (on OpenVINO, the runtime's per call)."""
    scheme, runtime = state.target.quantization.int8, state.target.runtime
    per_token = runtime == "onnxruntime" and scheme.per_token and default_opset(model) >= PER_TOKEN_OPSET
    return PER_TOKEN_FORM if per_token else "dynamic INT8"


def dynamic_fallback(state: CompileState, built: Candidate, kept: list[str]) -> Candidate:
    """A rebuild with its kept MatMul/Gemm layers at `held_form` instead of fp32: a static layer's
    noise is the calibrated activation scale, a per-tensor dynamic layer's the one scale all tokens
    share, and a finer per-call scale keeps the int8 kernel's speed. On OpenVINO the kept layers
    hold int8 weights alone: OpenVINO quantizes their inputs per call, in groups of channels."""
    model, plan = built.model, built.plan
    index = GraphIndex(model.graph)
    wanted = set(kept)
    nodes = [
        n.name
        for n in model.graph.node
        if n.name in wanted and n.op_type in LINEAR_OPS and lowerable(n, index) is None
    ]
    if not nodes:
        return built
    scheme, form = state.target.quantization.int8, held_form(state, model)
    if state.target.runtime == "openvino":  # OpenVINO quantizes a compressed-weight layer's input
        only = plan_int8(model, scheme, mode="static", include=set(nodes))
        weights_only = rewrite_weights_only(model, only, scheme)
        model = with_precision(weights_only, model_precision(model), DYNAMIC_GROUP)
        form = f"int8 weights, inputs quantized by OpenVINO per call (groups of {DYNAMIC_GROUP})"
    else:
        per_token = form == PER_TOKEN_FORM
        model = lower_dynamic(model, nodes, scheme.weights.reduce_range, per_token=per_token)
    dynamic = NodeDecision("", "", "int8-dynamic", f"repair: kept at {form}")
    decisions = [
        replace(dynamic, name=d.name, op_type=d.op_type) if d.name in nodes else d for d in plan.decisions
    ]
    return replace(built, model=model, plan=replace(plan, decisions=decisions))


def holds_dynamic(state: CompileState, variant: Int8Variant) -> bool:
    """Whether the variant's kept MatMul/Gemm layers can first be held at a finer INT8 form than its
    own: a static base's at dynamic INT8; a per-tensor dynamic base's at per-token dynamic INT8,
    where the target has it (ONNX Runtime)."""
    if variant.mode == "static":
        return True
    return held_form(state, state.prepared) == PER_TOKEN_FORM and not variant.per_token


def repair(
    state: CompileState, base: Candidate, variant: Int8Variant, judge: Fp32Judge
) -> RepairedCandidate | None:
    """The base rebuilt with the fewest worst layers kept that hold the budget, or None when none
    does while still running faster than fp32. Its kept layers are first held at a finer INT8 form
    (`holds_dynamic`), then, when that cannot hold the budget (an outlier channel defeats any
    one-scale activation), at fp32."""
    source = int8_source(state, variant)
    ranges = shared_ranges(state, source) if variant.mode == "static" else None
    order = metric_order(state, variant, keep_order(state, base, source), ranges, judge)
    ceiling = speedup_ceiling(base, layer_work(source, order)) if state.measures_latency else None
    for dynamic in [True, False] if holds_dynamic(state, variant) else [False]:
        held = _search(state, base, variant, judge, order, ranges, dynamic, None if dynamic else ceiling)
        if held is not None:
            return held
    return None


def _search(
    state: CompileState,
    base: Candidate,
    variant: Int8Variant,
    judge: Fp32Judge,
    order: list[str],
    ranges: dict[str, tuple[float, float]] | None,
    dynamic: bool,
    ceiling: list[float] | None,
) -> RepairedCandidate | None:
    """Double the kept layers until the budget holds, then bisect to the fewest that hold. A search
    at a finer INT8 form (`dynamic`) first builds all layers but one held so: when even that
    misses, fewer cannot hold (on all-MiniLM-L6-v2 both bases' per-token searches missed at 35 of 36
    layers after 8 builds and a timing each). A search keeping layers fp32 stops before a step whose
    `ceiling` (estimated speedup with the first k layers kept) cannot beat what is already there."""
    bar = repair_bar(state) if ceiling else 0.0
    steps: list[RepairStep] = []
    tag, kept_as = ("dyn", held_form(state, state.prepared)) if dynamic else ("keep", "fp32")

    def build(k: int) -> RepairedCandidate | None:
        built = build_int8(state, variant, order[:k], ranges, name=f"{variant.name}-{tag}{k}")
        if built is None:
            return None
        if dynamic:
            built = dynamic_fallback(state, built, order[:k])
        probe = RepairedCandidate(
            built.name, built.model, built.plan, base=base, kept=order[:k], kept_as=kept_as
        )
        _compiled_and_judged(state, probe, judge)
        steps.append(RepairStep(k, probe.worst_cosine, probe.budget_problem(state.recipe)))
        return probe

    most = build(len(order) - 1) if dynamic and len(order) > 2 else None  # all held is no INT8 plan
    if most is not None and steps[-1].problem is not None:
        state.progress.note(f"{base.name}: all layers but one {kept_as} still miss the budget")
        return None
    held, missed, k = None, 0, 1
    while held is None and k < len(order):
        if ceiling and k > 1 and ceiling[k] <= bar:
            state.progress.note(
                f"{base.name}: {k} layers kept fp32 would run at best {ceiling[k]:.2f}x fp32 (estimated "
                f"from its {base.mean_speedup:.2f}x), no faster than {bar:.2f}x: search ended"
            )
            return None
        probe = most if most is not None and k == len(most.kept) else build(k)  # built once
        if probe is None:
            return None
        step = next(s for s in reversed(steps) if s.kept == k)
        if k == 1 and state.measures_latency and not _pays_when_timed(state, base, probe, step):
            return None  # keeping more layers only runs slower
        if step.problem is None:
            held = probe
        else:
            missed, k = k, min(2 * k, len(order) - 1)  # the last try keeps all layers but one
            if k == missed:
                break
    if held is None:
        state.progress.note(f"{base.name}: no repair within budget short of keeping every layer {kept_as}")
        return None
    while len(held.kept) - missed > 1:
        middle = (missed + len(held.kept)) // 2
        probe = build(middle)
        if probe is not None and steps[-1].problem is None:
            held = probe
        else:
            missed = middle
    held.steps = steps
    state.progress.note(f"{base.name}: {len(held.kept)} layers kept {kept_as} hold the budget ({held.name})")
    return held


def layer_work(model: onnx.ModelProto, names: list[str]) -> list[float]:
    """Multiply-accumulates per sample of each named node, from its weight and its output's dims (a
    symbolic dim, batch or sequence, counts 1: layers share it): positions x weight size. A node
    without a weight initializer (a residual Add) counts 0."""
    index = StreamIndex(onnx.shape_inference.infer_shapes(model, strict_mode=False).graph)
    nodes = {n.name: n for n in index.graph.node}
    return [node_work(nodes[name], index) if name in nodes else 0.0 for name in names]


def node_work(node: onnx.NodeProto, index: StreamIndex) -> float:
    """One node's multiply-accumulates for `layer_work`: output positions x weight size."""
    weight = index.initializers.get(node.input[1]) if len(node.input) > 1 else None
    shape = index.shapes.get(node.output[0]) if weight is not None else None
    if not shape:
        return 0.0
    dims = [d or 1 for d in shape]
    channels = dims[1] if node.op_type == "Conv" and len(dims) > 1 else dims[-1]
    return math.prod(dims) / max(channels, 1) * math.prod(weight.dims)


def speedup_ceiling(base: Candidate, work: list[float]) -> list[float]:
    """Per k, the base's speedup with its first k layers kept fp32, if the time its quantization saved
    is in proportion to the work quantized: 1 / (1/s + f (1 - 1/s)), f the share of work kept. It
    leaves the Q/DQ at each kept layer's boundary out, so the rebuild runs no faster than this."""
    total, inverse = sum(work), 1 / base.mean_speedup
    shares = [sum(work[:k]) / total if total else 0.0 for k in range(len(work) + 1)]
    return [1 / (inverse + f * (1 - inverse)) for f in shares]


def repair_bar(state: CompileState) -> float:
    """The speedup a repair must beat to be worth building: fp32 beyond the noise, and every candidate
    already within budget."""
    within = [c.mean_speedup for c in quantized_within_budget(state)]
    return max([1 + max(state.noise.values(), default=0.0), *within])


def quantized_within_budget(state: CompileState) -> list[Candidate]:
    """The candidates with a quantization plan that hold the accuracy budget."""
    return [c for c in state.candidates if c.plan and c.budget_problem(state.recipe) is None]


def _pays_when_timed(
    state: CompileState, base: Candidate, probe: RepairedCandidate, step: RepairStep
) -> bool:
    """Whether the first rebuild (one layer kept), timed, still beats fp32: if it is no faster, no
    rebuild that keeps more is. The search after it is judged on fidelity alone; the held repair is
    timed with every candidate within budget once the repairs are done, side by side (timing it
    alone too cost all-MiniLM-L6-v2 14 s of a 129 s compile)."""
    again = time_candidates(state, [probe], stage=f"repair-latency-{probe.name}")
    noise = {b: max(n, state.noise.get(b, 0.0)) for b, n in again.items()}  # the wider reading
    step.speedup = min(e.speedup for e in probe.latency)
    if pays(probe, noise):
        return True
    speeds = ", ".join(f"batch {e.batch} {e.speedup:.2f}x" for e in probe.latency)
    state.progress.note(
        f"{base.name}: {len(probe.kept)} layers {probe.kept_as} run no faster than fp32 ({speeds})"
    )
    return False
