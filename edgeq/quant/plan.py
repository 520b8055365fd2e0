"""Decide, node by node, what runs in INT8 on the target and which tensors carry Q/DQ pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import onnx

from edgeq.graph import GraphIndex, attribute, default_opset
from edgeq.graph.ops import (
    BIAS_INPUT_OPS,
    DECISION_OPS,
    DYNAMIC_INT8_OPS,
    ELEMENTWISE_OPS,
    LAYER_OPS,
    LINEAR_OPS,
    OWN_SCALE_OPS,
    RECURRENT_OPS,
    SHARED_SCALE_OPS,
    WEIGHTED_OPS,
    output_axis,
)
from edgeq.quant.dynamic import lowerable
from edgeq.targets import Int8Scheme

FLOAT = onnx.TensorProto.FLOAT
PLANNED_OPS = WEIGHTED_OPS | RECURRENT_OPS  # layers a precision plan decides one by one
PLAN_REASON = "not int8 in the precision plan"
DECISION_REASON = "feeds a decision (argmax, top-k or threshold): int8 error would flip it"
PER_CHANNEL_OPSET = 13  # DequantizeLinear's `axis` (per-channel scales) is new in opset 13


@dataclass
class NodeDecision:
    """What happens to one node, and why (the report lists every one)."""

    name: str
    op_type: str
    precision: str  # "int8", "int8-dynamic" or "fp32"
    reason: str = ""
    pinned: bool = False  # fp32 by a rule no precision plan overrides: excluded, or feeds a decision

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WeightSpec:
    """A constant input quantized per channel along `axis` (None = per tensor)."""

    node: str
    input_index: int
    axis: int | None


@dataclass
class QuantPlan:
    """The static INT8 plan: decisions, activation tensors to calibrate, weights to quantize."""

    decisions: list[NodeDecision]
    activations: list[str] = field(default_factory=list)
    shared_params: dict[str, str] = field(default_factory=dict)
    folded_relu: dict[str, str] = field(default_factory=dict)
    signed: set[str] = field(default_factory=set)
    """Activations quantized signed and symmetric whatever the target's activation format (Q·Kᵀ)."""
    weights: list[WeightSpec] = field(default_factory=list)
    biases: list[tuple[str, int]] = field(default_factory=list)
    per_tensor_matmul: bool = False  # MatMul/Gemm weights with one scale (see weight_axis)

    @property
    def quantized(self) -> set[str]:
        return {d.name for d in self.decisions if d.precision == "int8"}

    @property
    def dynamic(self) -> set[str]:
        return {d.name for d in self.decisions if d.precision == "int8-dynamic"}

    def int8_nodes(self) -> dict[str, str]:
        """Each INT8 node's precision (`int8`, `int8-dynamic`) in graph order, the same in every run:
        a set's order changes with the process's hash seed, and ties in a ranking kept it (the repair
        of all-MiniLM-L6-v2 held 6 layers in one run of a compile and 15 in the next)."""
        return {d.name: d.precision for d in self.decisions if d.precision in ("int8", "int8-dynamic")}

    def calibration_tensors(self, every: bool = False) -> list[str]:
        """Tensors whose ranges must be measured: activations, or a folded ReLU's output instead.

        `every` also covers tensors this plan gives borrowed ranges (pass-through outputs, a ReLU's
        input), so any subset of the plan can be rewritten with the same measured ranges.
        """
        if every:
            return sorted(set(self.activations) | set(self.folded_relu.values()))
        return [self.folded_relu.get(t, t) for t in self.activations if self.shares(t) is None]

    def shares(self, tensor: str) -> str | None:
        """The tensor whose scale and zero point `tensor` reuses (a pass-through op's input), or
        None when it has its own: also when it is quantized signed and that input is not."""
        source = self.shared_params.get(tensor)
        if source is not None and tensor in self.signed and source not in self.signed:
            return None
        return source


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Give every node a unique name so decisions and reports can refer to it."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def plan_int8(
    model: onnx.ModelProto,
    scheme: Int8Scheme,
    exclude: Sequence[str] = (),
    mode: Literal["static", "dynamic"] = "static",
    include: set[str] | None = None,
    per_tensor_matmul: bool = False,
) -> QuantPlan:
    """Choose INT8 nodes by the target's rules, the recipe's exclusions and decision-head safety.

    `static` puts calibrated Q/DQ around Conv/Gemm/MatMul (LSTMs go dynamic); `dynamic` keeps
    int8 weights for MatMul/Gemm/LSTM only and lets the runtime quantize activations per call.
    `include`, when given, limits weighted layers to those names (a precision plan's int8 set).
    `per_tensor_matmul` gives MatMul/Gemm weights one scale instead of one per output column.
    """
    index = GraphIndex(model.graph)
    types = _float_tensors(model)
    protected = _decision_heads(index)
    decisions: dict[str, NodeDecision] = {}
    plan = QuantPlan(decisions=[], per_tensor_matmul=per_tensor_matmul)
    quantized_outputs: set[str] = set()
    for node in (n for n in model.graph.node if n.name not in decisions):
        decide = _decide_dynamic if mode == "dynamic" else _decide
        if include is not None and _outside_plan(node, index, include):
            decisions[node.name] = NodeDecision(node.name, node.op_type, "fp32", PLAN_REASON)
            continue
        decision = decide(node, index, types, scheme, set(exclude), protected, quantized_outputs)
        decisions[node.name] = decision
        if decision.precision != "int8":
            continue
        quantized_outputs.update(node.output)
        relu = _foldable_relu(node, index, scheme, types)
        if relu is not None:
            reason = "folded: the Q after the preceding INT8 node clamps at zero"
            decisions[relu.name] = NodeDecision(relu.name, "Relu", "int8", reason)
            quantized_outputs.add(relu.output[0])
    plan.decisions = list(decisions.values())
    _place_qdq(plan, model, index, scheme, types)
    return plan


def _decide(node, index, types, scheme, exclude, protected, quantized_outputs) -> NodeDecision:
    op = node.op_type
    fp32 = lambda reason, pinned=False: NodeDecision(node.name, op, "fp32", reason, pinned)  # noqa: E731
    if op not in scheme.ops and op not in scheme.dynamic_ops:
        return fp32("op type not quantized on this target")
    if node.name in exclude or op in exclude:
        return fp32("excluded by the recipe", pinned=True)
    if node.name in protected:
        return fp32(DECISION_REASON, pinned=True)
    if op in scheme.dynamic_ops:
        return _dynamic_or_reason(node, index)
    data_inputs = [name for name in node.input if name and not index.is_constant(name)]
    if any(name not in types for name in data_inputs):
        return fp32("non-float inputs")
    if op in SHARED_SCALE_OPS or op in OWN_SCALE_OPS:
        if data_inputs and data_inputs[0] in quantized_outputs:
            return NodeDecision(node.name, op, "int8")
        return fp32("input is not quantized; nothing to carry through")
    if op == "Add":
        if len(data_inputs) != 2:
            return fp32("bias or constant Add stays fused into its producer")
        if not any(name in quantized_outputs for name in data_inputs):
            # a transformer's residual Add between fp32 bias Add and LayerNorm: Q -> QLinearAdd -> DQ
            # would only add two requantizations (BERT-mini b32: 1.96x -> 2.39x without them)
            return fp32("neither input comes from an INT8 node; int8 Add would only requantize")
        return NodeDecision(node.name, op, "int8")
    if op == "Gemm" and attribute(node, "transA", 0):
        return fp32("transposed A input is not supported")
    if op in BIAS_INPUT_OPS and not index.is_constant(node.input[1]):
        return fp32("weights are not constant")
    if op == "MatMul" and not index.is_constant(node.input[1]) and not scheme.activation_matmul:
        if _attention_scores(node, index, scheme):
            return NodeDecision(node.name, op, "int8", "attention scores Q·Kᵀ: signed symmetric inputs")
        return fp32("activation x activation MatMul (attention) kept fp32 on this target")
    return NodeDecision(node.name, op, "int8")


LAYOUT_OPS = ("Reshape", "Transpose", "Cast", "Squeeze", "Unsqueeze")


def _attention_scores(node: onnx.NodeProto, index: GraphIndex, scheme: Int8Scheme) -> bool:
    """Whether `node` is the Q·Kᵀ MatMul the target quantizes with signed symmetric inputs
    (`Int8Scheme.attention_scores`): two activations, neither a softmax's probabilities (·V, which
    OpenVINO's int8 attention reads in float)."""
    if not scheme.attention_scores or scheme.activation_matmul or node.op_type != "MatMul":
        return False
    return not index.is_constant(node.input[1]) and not _reads_softmax(node, index)


def _reads_softmax(node: onnx.NodeProto, index: GraphIndex) -> bool:
    """Whether an input comes from a Softmax through layout ops only."""
    for tensor in node.input:
        producer = index.producer.get(tensor)
        while producer is not None and producer.op_type in LAYOUT_OPS:
            producer = index.producer.get(producer.input[0])
        if producer is not None and producer.op_type == "Softmax":
            return True
    return False


def _outside_plan(node: onnx.NodeProto, index: GraphIndex, include: set[str]) -> bool:
    """A weighted layer not in the plan's int8 set, or a residual Add none of whose inputs is."""
    if node.op_type in PLANNED_OPS:
        return node.name not in include
    if node.op_type == "Add":
        producers = (index.producer.get(name) for name in node.input)
        return not any(p is not None and p.name in include for p in producers)
    return False


def _decide_dynamic(node, index, types, scheme, exclude, protected, quantized_outputs) -> NodeDecision:
    op = node.op_type
    if op not in DYNAMIC_INT8_OPS:
        return NodeDecision(node.name, op, "fp32", "dynamic mode quantizes MatMul/Gemm/LSTM weights only")
    if op not in scheme.ops and op not in scheme.dynamic_ops:
        return NodeDecision(node.name, op, "fp32", "op type not quantized on this target")
    if node.name in exclude or op in exclude:
        return NodeDecision(node.name, op, "fp32", "excluded by the recipe", pinned=True)
    if node.name in protected:
        return NodeDecision(node.name, op, "fp32", DECISION_REASON, pinned=True)
    return _dynamic_or_reason(node, index)


def _dynamic_or_reason(node: onnx.NodeProto, index: GraphIndex) -> NodeDecision:
    reason = lowerable(node, index)
    if reason is not None:
        return NodeDecision(node.name, node.op_type, "fp32", reason)
    return NodeDecision(
        node.name, node.op_type, "int8-dynamic", "int8 weights, activations quantized per call"
    )


def _place_qdq(plan: QuantPlan, model, index: GraphIndex, scheme: Int8Scheme, types) -> None:
    """Q/DQ on every activation input of INT8 nodes and on their outputs where the target fuses."""
    quantized = plan.quantized
    by_name = {n.name: n for n in model.graph.node}
    opset = default_opset(model)
    activations: list[str] = []

    def add(tensor: str) -> None:
        folded = tensor in plan.folded_relu.values()  # covered by the Q/DQ on the ReLU's input
        if tensor not in activations and not folded:
            activations.append(tensor)

    for name in (d.name for d in plan.decisions if d.name in quantized):
        node = by_name[name]
        if node.op_type == "Relu":  # folded into its producer's output Q/DQ
            continue
        scores = _attention_scores(node, index, scheme)
        for position, tensor in enumerate(node.input):
            if not tensor:
                continue
            if not index.is_constant(tensor):
                add(tensor)
                if scores:
                    plan.signed.add(tensor)
            elif node.op_type in WEIGHTED_OPS and position == 1:
                axis = weight_axis(node, scheme, plan.per_tensor_matmul)
                if axis is not None and opset < PER_CHANNEL_OPSET:
                    axis = None
                    decision = next(d for d in plan.decisions if d.name == name)
                    decision.reason = f"weights per tensor: opset {opset} has no per-channel DequantizeLinear"
                plan.weights.append(WeightSpec(name, 1, axis))
            elif node.op_type in BIAS_INPUT_OPS and position == 2 and scheme.quantize_bias:
                plan.biases.append((name, 2))
        output = node.output[0]
        if not scheme.output_qdq or index.is_pinned(output) or output not in types:
            continue
        read_by_int8 = any(c.name in quantized for c in index.consumers.get(output, []))
        if node.op_type in LINEAR_OPS and not read_by_int8:
            # only fp32 ops read it (a bias Add, LayerNorm): without an output Q, ORT runs
            # DQ -> MatMul as MatMulIntegerToFloat instead of QLinearMatMul -> DQ (a requantize)
            continue
        relu = _foldable_relu(node, index, scheme, types)
        if relu is not None:
            plan.folded_relu[output] = relu.output[0]
        if node.op_type in SHARED_SCALE_OPS:
            unfolded = {relu_out: pre for pre, relu_out in plan.folded_relu.items()}
            plan.shared_params[output] = unfolded.get(node.input[0], node.input[0])
        add(output)
    plan.activations = activations


def weight_axis(node: onnx.NodeProto, scheme: Int8Scheme, per_tensor_matmul: bool = False) -> int | None:
    """The output-channel axis of a weight: Conv [O,I,..] 0; Gemm B by transB; MatMul [K,N] last.

    None (one scale per tensor) where the target has no per-channel weights, or for MatMul/Gemm
    when asked: ORT's integer MatMul kernels run a per-column scale as an extra pass over the
    output (measured 4-layer MLP, batch 1: 3.4x instead of 4.9x fp32 speed)."""
    if not scheme.weights.per_channel or (per_tensor_matmul and node.op_type in LINEAR_OPS):
        return None
    return output_axis(node.op_type, attribute(node, "transB", 0))


def _foldable_relu(
    node: onnx.NodeProto, index: GraphIndex, scheme: Int8Scheme, types
) -> onnx.NodeProto | None:
    """The ReLU right after an INT8 node that an asymmetric output Q (zero at qmin) makes redundant."""
    if not (scheme.fold_relu and scheme.output_qdq) or scheme.activations.symmetric:
        return None
    tensor = node.output[0]
    consumers = index.consumers.get(tensor, [])
    if len(consumers) != 1 or consumers[0].op_type != "Relu" or index.is_pinned(tensor):
        return None
    relu = consumers[0]
    if tensor not in types or index.is_pinned(relu.output[0]):
        return None
    return relu


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor whose type shape inference knows."""
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    return {v.name for v in values if v.type.tensor_type.elem_type == FLOAT}


def _decision_heads(index: GraphIndex) -> set[str]:
    """Compute nodes whose result reaches an ArgMax/TopK/threshold through element-wise ops only.

    A pointer network picks by argmax over scores, a binary latent by thresholding logits: int8
    error there flips the pick or the bit directly, so those layers stay fp32 (METHODS.md §3–4).
    """
    heads: set[str] = set()
    stack = [n.input[0] for n in index.graph.node if n.op_type in DECISION_OPS]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        node = index.producer.get(tensor)
        if tensor in seen or node is None:
            continue
        seen.add(tensor)
        if node.op_type in LAYER_OPS:
            heads.add(node.name)
        elif node.op_type in ELEMENTWISE_OPS:
            stack.extend(t for t in node.input if t and not index.is_constant(t))
    return heads
