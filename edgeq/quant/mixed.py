"""Mixed precision: per-layer sensitivity, and a precision plan chosen under an accuracy budget.

Layers that share one weight (an unrolled decoder's steps) form one group and get one precision.
Groups in the same place of repeated blocks (names equal once digits are blanked, same op and
size: a transformer's six query projections) form one role and share a precision in the plan.
Sensitivity quantizes one role at a time (int4 weights; int8: per-token dynamic INT8 or 8-bit
MatMulNBits for MatMul/Gemm, static QDQ for the rest) and measures the damage on held-out data.
The plan starts every role at its smallest precision and promotes the role that recovers the
most damage per byte added, one step at a time (int4 → int8 → fp32), until the budget holds,
then demotes the roles whose bytes it can spare — a greedy form of HAWQ-style allocation with
measured, not Hessian-estimated, damage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from edgeq.graph import GraphIndex, default_opset, layer_role
from edgeq.graph.ops import CONV_OPS, LINEAR_OPS, WEIGHTED_OPS
from edgeq.quant.dynamic import PER_TOKEN_OPSET, lower_dynamic, lowerable
from edgeq.quant.int4 import (
    embedding_table,
    linear_layer,
    lower_conv_to_int4,
    lower_to_matmul_nbits,
    quantize_embeddings,
)
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.quant.qdq import rewrite_qdq
from edgeq.targets import Int8Scheme

PRECISIONS = ("int4", "int8", "fp32")  # smallest first
WEIGHT_BITS = {"int4": 4, "int8": 8, "fp32": 32}
INT8_BLOCK = 128
"""Blocks of an 8-bit MatMulNBits: its rounding error is 16x under 4 bits', so its scales are
spread over 128 weights, not 32 (3% of an 8-bit layer's bytes instead of 12%)."""
TABLE_BLOCK = 64
"""Blocks of a 4-bit embedding table: at 32 its fp32 scales were a fifth of its bytes (MiniLM's
word table: 1.47 of 7.3 MB), and a looked-up row is added to others, not multiplied."""

NEGLIGIBLE = 1e-3  # of a model's weights: a role this small is not planned

# (model) -> (budget problem or None, damage score: larger is worse)
Judge = Callable[[onnx.ModelProto], tuple[str | None, float]]


@dataclass
class LayerGroup:
    """Nodes reading one weight tensor, with the precisions they may take."""

    name: str
    op_type: str
    weight: str
    nodes: list[str]
    params: int
    options: list[str]
    sensitivity: dict[str, float] = field(default_factory=dict)
    role: str = ""
    role_sensitivity: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Role:
    """Groups in the same place of repeated blocks: probed together, given one precision."""

    name: str
    groups: list[LayerGroup]
    options: list[str]
    sensitivity: dict[str, float] = field(default_factory=dict)

    @property
    def params(self) -> int:
        return sum(g.params for g in self.groups)

    def bytes_at(self, precision: str) -> float:
        return self.params * WEIGHT_BITS[precision] / 8

    def floor(self) -> int:
        """Index of its smallest option with a CPU kernel (MatMulNBits, GatherBlockQuantized)."""
        op_type = self.groups[0].op_type
        return next(i for i, o in enumerate(self.options) if _has_kernel(op_type, o))


def layer_roles(groups: list[LayerGroup]) -> list[Role]:
    """Groups by `layer_role` of their name, op type and size (fills `group.role`); a model
    without repeated blocks gets one role per group. A role under `NEGLIGIBLE` of the weights
    stays fp32, unprobed: its bytes cannot matter, its probes and plan steps cost a large role's
    (MiniLM's 768-weight token-type table took 2 probes and 2 steps to end fp32)."""
    total = sum(g.params for g in groups)
    by_key: dict[tuple, list[LayerGroup]] = {}
    for group in groups:
        by_key.setdefault((layer_role(group.name), group.op_type, group.params), []).append(group)
    roles, names = [], set()
    for (role_name, _, params), members in by_key.items():
        name = members[0].name if len(members) == 1 else role_name
        name = f"{name} ({params} params)" if name in names else name
        names.add(name)
        options = [p for p in PRECISIONS if all(p in g.options for g in members)]
        options = ["fp32"] if sum(g.params for g in members) < NEGLIGIBLE * total else options
        for group in members:
            group.role = name
        roles.append(Role(name, members, options))
    return roles


@dataclass
class PrecisionPlan:
    """A precision per group, with what each step of the search measured."""

    groups: list[LayerGroup]
    assignment: dict[str, str]
    steps: list[dict] = field(default_factory=list)

    def nodes_at(self, precision: str) -> set[str]:
        return {n for g in self.groups if self.assignment[g.name] == precision for n in g.nodes}

    def weight_bytes(self) -> float:
        return sum(g.params * WEIGHT_BITS[self.assignment[g.name]] / 8 for g in self.groups)

    def to_dict(self) -> dict:
        return {
            "layers": [g.to_dict() | {"precision": self.assignment[g.name]} for g in self.groups],
            "weight_bytes": self.weight_bytes(),
            "steps": self.steps,
        }


def layer_groups(model: onnx.ModelProto, static_plan: QuantPlan) -> list[LayerGroup]:
    """Weighted layers grouped by weight tensor; int8 where the static plan allows, int4 where a
    4-bit form exists (MatMulNBits for MatMul/Gemm, int4 weights for Conv/ConvTranspose). Embedding
    tables (a Gather on a constant) are groups too: in a small encoder they are half the bytes."""
    index = GraphIndex(model.graph)
    int8_ok = static_plan.quantized
    blocked = {d.name for d in static_plan.decisions if d.pinned}
    groups: dict[str, LayerGroup] = {}
    for node in model.graph.node:
        table = embedding_table(node, index)
        if table is not None:
            options = (["int4"] if table.shape[1] % 2 == 0 else []) + ["int8", "fp32"]
            group = LayerGroup(node.name, "Gather", node.input[0], [], int(table.size), options)
            groups.setdefault(node.input[0], group).nodes.append(node.name)
            continue
        weight = node.input[1] if len(node.input) > 1 else ""
        value = index.constant(weight) if weight else None
        if node.op_type not in WEIGHTED_OPS or value is None:
            continue
        options = []
        if node.name not in blocked:
            if node.op_type in CONV_OPS or linear_layer(node, index) is not None:
                options.append("int4")
            if node.name in int8_ok:
                options.append("int8")
        group = groups.setdefault(
            weight, LayerGroup(node.name, node.op_type, weight, [], int(value.size), options + ["fp32"])
        )
        group.nodes.append(node.name)
        group.options = [o for o in group.options if o in options + ["fp32"]]
    return list(groups.values())


def build_mixed(
    prepared: onnx.ModelProto,
    plan: PrecisionPlan,
    scheme: Int8Scheme,
    ranges: Mapping[str, tuple[float, float]],
    exclude: list[str],
    block_size: int = 32,
    hessians: Mapping[str, np.ndarray] | None = None,
) -> tuple[onnx.ModelProto, QuantPlan]:
    """The model with the plan applied: 4-bit weights on its int4 layers (GPTQ-rounded where
    `hessians` has the node), static QDQ on its int8 layers other than MatMul/Gemm, and recurrent
    layers (the target's dynamic ops, not planned per layer) dynamic int8.

    An int8 MatMul/Gemm in a 4-bit plan keeps a per-row activation scale: dynamic INT8 per token
    where the target has it (ORT's u8 x s8 kernels, fast on AVX2 too), else 8-bit MatMulNBits
    (blocks of weights with their own scales, each block of activations quantized per row at the
    int8-compute accuracy_level). Static QDQ would add one calibrated activation scale per tensor,
    the loss that keeps all-MiniLM-L6-v2's static INT8 at recall@10 0.90 (8-bit MatMulNBits:
    0.98); on an AVX2 CPU without VNNI 8-bit MatMulNBits ran at 0.77x fp32 at batch 1."""
    by_name = {n.name: n for n in prepared.graph.node}
    index = GraphIndex(prepared.graph)

    def linear(precision: str) -> list[str]:
        nodes = [n for n in plan.nodes_at(precision) if n in by_name]
        return [n for n in nodes if by_name[n].op_type in LINEAR_OPS and linear_layer(by_name[n], index)]

    int4, linear8 = plan.nodes_at("int4"), linear("int8")
    per_token = scheme.per_token and default_opset(prepared) >= PER_TOKEN_OPSET
    tokens = [n for n in linear8 if per_token and lowerable(by_name[n], index) is None]
    blocked = {"int4": linear("int4"), "int8": [n for n in linear8 if n not in tokens]}
    recurrent = {n.name for n in prepared.graph.node if n.op_type in scheme.dynamic_ops}
    static = (plan.nodes_at("int8") - set(linear8)) | recurrent
    int8_plan = plan_int8(prepared, scheme, exclude, include=static)
    model = rewrite_qdq(prepared, int8_plan, ranges, scheme)
    model = lower_dynamic(model, int8_plan.dynamic, scheme.weights.reduce_range)
    if tokens:
        model = lower_dynamic(model, tokens, scheme.weights.reduce_range, per_token=True)
    for precision, bits, block in (("int4", 4, block_size), ("int8", 8, max(block_size, INT8_BLOCK))):
        if blocked[precision]:
            model = lower_to_matmul_nbits(
                model, blocked[precision], block_size=block, hessians=hessians, bits=bits
            )
    convs = [n for n in int4 if n in by_name and by_name[n].op_type in CONV_OPS]
    if convs:
        model = lower_conv_to_int4(model, convs)
    for precision, bits in (("int4", 4), ("int8", 8)):
        tables = [n for n in plan.nodes_at(precision) if n in by_name and by_name[n].op_type == "Gather"]
        if tables:
            block = max(block_size, TABLE_BLOCK)
            model = quantize_embeddings(model, bits=bits, block_size=block, nodes=tables)
    for decision in int8_plan.decisions:
        if decision.name in int4:
            decision.precision, decision.reason = "int4", "4-bit weights (precision plan)"
        elif decision.name in blocked["int8"]:
            decision.precision, decision.reason = "int8", "8-bit MatMulNBits weights (precision plan)"
        elif decision.name in tokens:
            decision.precision, decision.reason = "int8-dynamic", "dynamic INT8 per token (precision plan)"
    return model, int8_plan


Build = Callable[[dict[str, str]], onnx.ModelProto]


def measure_sensitivity(
    groups: list[LayerGroup], build: Build, judge: Judge, progress: Callable[[], None] | None = None
) -> None:
    """Damage of each group alone at each of its reduced precisions (fills `group.sensitivity`);
    a group already measured (the only member of its role) is not probed again."""
    for group in groups:
        for precision in (p for p in group.options if p != "fp32" and p not in group.sensitivity):
            assignment = {g.name: "fp32" for g in groups} | {group.name: precision}
            group.sensitivity[precision] = judge(build(assignment))[1]
            if progress:
                progress()


def measure_role_sensitivity(
    roles: list[Role], build: Build, judge: Judge, progress: Callable[[], None] | None = None
) -> None:
    """Damage of each role alone (all its groups together) at each reduced precision: one probe
    per role and precision (MiniLM: 9 roles, not 37 groups). Fills `role.sensitivity` and each
    member's `role_sensitivity`; a one-group role's probe is that group's own sensitivity."""
    everything = {g.name: "fp32" for r in roles for g in r.groups}
    for role in roles:
        for precision in (p for p in role.options if p != "fp32"):
            assignment = everything | {g.name: precision for g in role.groups}
            role.sensitivity[precision] = judge(build(assignment))[1]
            for group in role.groups:
                group.role_sensitivity[precision] = role.sensitivity[precision]
                if len(role.groups) == 1:
                    group.sensitivity[precision] = role.sensitivity[precision]
            if progress:
                progress()


def smallest(groups: list[LayerGroup]) -> dict[str, str]:
    """Every group at its smallest precision (4-bit convolutions only shrink the file)."""
    return {g.name: g.options[0] for g in groups}


def _has_kernel(op_type: str, precision: str) -> bool:
    """MatMulNBits for MatMul/Gemm, GatherBlockQuantized for embedding tables."""
    return precision != "int4" or op_type in LINEAR_OPS | {"Gather"}


def plan_precision(roles: list[Role], build: Build, judge: Judge) -> PrecisionPlan:
    """Every role at its smallest precision with a CPU kernel; promote, one step at a time, the
    role whose step recovers the most measured damage per byte it adds, until the budget holds;
    then try each role one step smaller, most bytes saved per damage first, keeping the steps
    the budget survives. 4-bit convolutions (a size-only form that the CPU runtime dequantizes
    on every call) are left to the uniform-int4 candidate."""
    level = {r.name: r.floor() for r in roles}
    lowest = dict(level)
    groups = [g for r in roles for g in r.groups]
    plan = PrecisionPlan(groups, {})

    def tried() -> bool:
        plan.assignment.update({g.name: r.options[level[r.name]] for r in roles for g in r.groups})
        return _try(plan, build, judge)

    while not tried():
        promotable = [r for r in roles if level[r.name] < len(r.options) - 1]
        if not promotable:
            return plan
        best = max(promotable, key=lambda r: _per_byte(r, level[r.name], level[r.name] + 1))
        level[best.name] += 1
    for role in sorted(roles, key=lambda r: -_per_byte(r, level[r.name], level[r.name] - 1)):
        if level[role.name] == lowest[role.name]:
            continue
        level[role.name] -= 1
        if not tried():
            level[role.name] += 1
            plan.assignment.update({g.name: role.options[level[role.name]] for g in role.groups})
    return plan


def _per_byte(role: Role, current: int, step: int) -> float:
    """Damage removed (promotion) or bytes saved (demotion) per unit of the other: the exchange
    rate of moving `role` from option `current` to option `step`, higher is the better move."""
    if not 0 <= step < len(role.options):
        return -np.inf
    damage = {p: role.sensitivity.get(p, np.inf) for p in role.options} | {"fp32": 0.0}
    now, then = role.options[current], role.options[step]
    saved_bytes = role.bytes_at(now) - role.bytes_at(then)
    added_damage = damage[then] - damage[now]
    if saved_bytes < 0:  # promotion: damage recovered per byte added
        return -added_damage / -saved_bytes
    return saved_bytes / max(added_damage, 1e-9)


def _try(plan: PrecisionPlan, build: Build, judge: Judge) -> bool:
    """Measure the plan's current assignment; record the step; True when within budget."""
    problem, damage = judge(build(plan.assignment))
    plan.steps.append({"assignment": dict(plan.assignment), "damage": damage, "problem": problem})
    return problem is None
