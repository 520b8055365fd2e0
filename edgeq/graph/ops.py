"""Op-type sets and the weighted-layer view every pass shares (one home instead of literals)."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from edgeq.graph import attribute

MS_DOMAIN = "com.microsoft"
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})

LINEAR_OPS = frozenset({"MatMul", "Gemm"})
CONV_OPS = frozenset({"Conv", "ConvTranspose"})
WEIGHTED_OPS = LINEAR_OPS | CONV_OPS  # a constant weight at input 1
BIAS_INPUT_OPS = CONV_OPS | {"Gemm"}  # and an optional bias at input 2
LAYER_OPS = LINEAR_OPS | {"Conv"}  # weighted layers whose weight rows or columns are output channels
RECURRENT_OPS = frozenset({"LSTM"})
DYNAMIC_INT8_OPS = LINEAR_OPS | RECURRENT_OPS  # ONNX Runtime has dynamic-int8 kernels for these
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Integer ops of ONNX Runtime's quantized forms other than Q/DQ.
INTEGER_OPS = frozenset(
    {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
)
# Data movement whose output keeps its input's quantization scale; averaging pools need their own.
SHARED_SCALE_OPS = frozenset({"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})
OWN_SCALE_OPS = frozenset({"GlobalAveragePool", "AveragePool"})

# Channel-wise ops with f(c·x) = c·f(x) for c > 0: scaled duplicate features stay duplicates.
POSITIVE_HOMOGENEOUS = frozenset({"Relu", "LeakyRelu"})
HOMOGENEOUS_UNARY = POSITIVE_HOMOGENEOUS | {"Identity", "Neg", "Abs"}
# Channel-wise but not homogeneous.
NONHOMOGENEOUS_UNARY = frozenset(
    {
        "Gelu",
        "Sigmoid",
        "Tanh",
        "Erf",
        "Softplus",
        "Softsign",
        "Elu",
        "Selu",
        "Celu",
        "HardSigmoid",
        "HardSwish",
        "Mish",
        "Exp",
        "Clip",
    }
)
POOLING = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"})
ADDITIVE = frozenset({"Add", "Sub"})
MULTIPLICATIVE = frozenset({"Mul", "Div"})
ELEMENTWISE_BINARY = ADDITIVE | MULTIPLICATIVE
REDUCTIONS = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"})
# Ops whose result is a choice (argmax, top-k, a threshold): small errors flip it.
DECISION_OPS = frozenset(
    {"ArgMax", "ArgMin", "TopK", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Sign"}
)
# Data movement and element-wise ops a decision's input may pass through on the way to it.
ELEMENTWISE_OPS = ELEMENTWISE_BINARY | {
    "Neg",
    "Tanh",
    "Sigmoid",
    "Relu",
    "Where",
    "Softmax",
    "LogSoftmax",
    "Squeeze",
    "Unsqueeze",
    "Reshape",
    "Transpose",
    "Identity",
    "Cast",
}


def output_axis(op_type: str, trans_b: bool = False) -> int:
    """The weight axis indexing output channels: Conv [O, I, ..] 0, ConvTranspose [I, O/g, ..] 1,
    Gemm B 0 when transB else 1, MatMul B [.., K, N] the last (-1)."""
    if op_type == "Conv":
        return 0
    if op_type == "ConvTranspose":
        return 1
    if op_type == "Gemm":
        return 0 if trans_b else 1
    return -1


@dataclass(frozen=True)
class WeightedLayer:
    """A Conv/ConvTranspose/Gemm/MatMul and the named weight (input 1) and bias it reads."""

    node: onnx.NodeProto
    weight: str
    bias: str | None
    out_axis: int  # weight axis of output channels (non-negative)
    in_axis: int  # weight axis of input channels (per group for a grouped Conv)
    rank: int  # of the weight
    groups: int = 1

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def stream_axis(self) -> int:
        """Channel axis of the data input and the output, counted from the end."""
        return -1 if self.op_type in LINEAR_OPS else -(self.rank - 1)

    @property
    def label(self) -> str:
        return self.node.name or f"{self.node.op_type}:{self.node.output[0]}"


def weighted_layer(node: onnx.NodeProto, rank: int) -> WeightedLayer | None:
    """`node` as a weighted layer over a weight of `rank` dims: 2-D Gemm (transA=0) and MatMul,
    Conv/ConvTranspose with rank >= 3; else None."""
    weight = optional_input(node, 1)
    op = node.op_type
    if weight is None or node.domain not in DEFAULT_DOMAINS:
        return None
    if op == "Gemm" and rank == 2 and not attribute(node, "transA", 0):
        out = output_axis(op, attribute(node, "transB", 0))
        return WeightedLayer(node, weight, optional_input(node, 2), out, 1 - out, rank)
    if op == "MatMul" and rank == 2:
        return WeightedLayer(node, weight, None, 1, 0, rank)
    if op in CONV_OPS and rank >= 3:
        out = output_axis(op)
        bias = optional_input(node, 2)
        return WeightedLayer(node, weight, bias, out, 1 - out, rank, attribute(node, "group", 1))
    return None


def optional_input(node: onnx.NodeProto, position: int) -> str | None:
    """The name at input `position`, None when absent or empty."""
    return node.input[position] if len(node.input) > position and node.input[position] else None
