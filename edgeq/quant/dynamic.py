"""Dynamic INT8: weights stored int8, activations quantized per call by ONNX Runtime's kernels.

Recurrent layers (LSTM → com.microsoft DynamicQuantizeLSTM) and small-batch MatMul/Gemm
(→ DynamicQuantizeLinear + MatMulIntegerToFloat) gain from it: no calibration, and the runtime
range of each input is used, so accumulated recurrent error stays small.

Two choices keep the int8 path from paying fp32 overheads ORT will not remove for us: the bias
Add after a MatMul goes into the kernel's bias input, and MatMuls that read one tensor
(attention's Q/K/V) quantize it once, through one shared DynamicQuantizeLinear, instead of once
per MatMul.

`per_token` quantizes each row of a MatMul's input (each token of a transformer) with its own
scale instead of one per tensor: ORT's integer MatMul kernels take one A scale, so the rows are
divided by their own max|x|, quantized together to uint8 (the fast u8 x s8 path; s8 x s8 ran
20-70x slower in ORT 1.32), and the result multiplied back per row.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
import onnx_ir as ir

from edgeq.graph import GraphIndex, attribute, default_opset
from edgeq.graph.edit import GraphEditor, attr
from edgeq.graph.ops import LINEAR_OPS, MS_DOMAIN
from edgeq.quant.primitives import QuantFormat, quantize, weight_params


def dynamic_weight_format(reduce_range: bool) -> QuantFormat:
    return QuantFormat(bits=8, signed=True, symmetric=True, narrow_range=True, reduce_range=reduce_range)


def lowerable(node: onnx.NodeProto, index: GraphIndex) -> str | None:
    """Why `node` cannot take the dynamic path, or None when it can."""
    if node.op_type == "LSTM":
        if attribute(node, "layout", 0):
            return "batch-major LSTM layout has no dynamic int8 kernel"
        weights = [index.constant(node.input[i]) for i in (1, 2)]
        return None if all(w is not None for w in weights) else "LSTM weights are not constant"
    if node.op_type not in LINEAR_OPS:
        return "op type has no dynamic int8 kernel"
    weight = index.constant(node.input[1])
    if weight is None or weight.ndim != 2 or weight.dtype != np.float32:
        return "weights are not a constant 2-D float matrix"
    if node.op_type == "Gemm":
        if attribute(node, "transA", 0):
            return "transposed A input is not supported"
        has_c = len(node.input) > 2 and bool(node.input[2])
        bias = index.constant(node.input[2]) if has_c else None
        if has_c and bias is None and attribute(node, "beta", 1.0) != 1.0:
            return "Gemm C input is an activation scaled by beta"
        if bias is not None and bias.size != (
            weight.shape[0] if attribute(node, "transB", 0) else weight.shape[1]
        ):
            return "Gemm bias is not one value per output column"
    return None


def lower_dynamic(
    model: onnx.ModelProto,
    nodes: Iterable[str],
    reduce_range: bool,
    per_tensor: bool = False,
    per_token: bool = False,
) -> onnx.ModelProto:
    """Replace the named LSTM/MatMul/Gemm nodes by their dynamic-int8 contrib kernels (same names).

    MatMul/Gemm weights get one scale per output column, or one per tensor if `per_tensor`
    (faster in ORT, see `edgeq.quant.plan.weight_axis`); their inputs one scale per tensor, or
    one per row if `per_token` (needs opset 11: DynamicQuantizeLinear)."""
    if per_token and default_opset(model) < PER_TOKEN_OPSET:
        raise ValueError(f"per-token activation scales need opset >= {PER_TOKEN_OPSET}")
    index = GraphIndex(model.graph)
    wanted = set(nodes)
    selected = [n.name for n in model.graph.node if n.name in wanted and lowerable(n, index) is None]
    fmt, editor, axis = dynamic_weight_format(reduce_range), GraphEditor(model), None if per_tensor else 1
    if per_token:
        lowering = _PerTokenLowering(editor, fmt, axis, default_opset(model))
    else:
        lowering = _Lowering(editor, fmt, axis)
    for name in selected:
        node = lowering.editor.nodes[name]
        if node.op_type == "LSTM":
            lowering.lstm(node)
        else:
            lowering.matmul(node)
    lowering.editor.ensure_opset(MS_DOMAIN, 1)
    return lowering.editor.finish()


class _Lowering:
    """One lower_dynamic call: int8 weights quantized once per tensor, activations once per input."""

    def __init__(self, editor: GraphEditor, fmt: QuantFormat, axis: int | None) -> None:
        self.editor, self.fmt, self.axis = editor, fmt, axis
        self.shared: dict[tuple, list[ir.Value] | ir.Value] = {}  # an unrolled loop reuses one weight
        self.activations: dict[ir.Value, list[ir.Value]] = {}  # input -> DynamicQuantizeLinear outputs

    def _int8_weight(self, base: str, w: np.ndarray, axis) -> list[ir.Value]:
        """w as int8 with symmetric scales along `axis` (1: per output column, None: one)."""
        scale, zero = weight_params(w, self.fmt, axis=axis)
        q = quantize(w, scale, zero, self.fmt, axis=axis)
        add = self.editor.initializer
        return [
            add(f"{base}_dyn_quantized", q),
            add(f"{base}_dyn_scale", scale),
            add(f"{base}_dyn_zero_point", zero),
        ]

    def matmul(self, node: ir.Node) -> None:
        """MatMul/Gemm as MatMulIntegerToFloat on its input quantized by a DynamicQuantizeLinear
        shared with the other lowered MatMuls reading that input; a following bias Add folded in.

        ORT fuses this form back into its own kernel and it measured 2x faster at batch 32 than
        emitting DynamicQuantizeMatMul (4-layer MLP); an Add left after the kernel is a separate
        fp32 pass over the activations (6-layer BERT-mini: 30 of 36 bias Adds otherwise stay)."""
        editor = self.editor
        gemm = node.op_type == "Gemm"
        trans_b = attr(node, "transB", 0) if gemm else 0
        alpha, beta = (attr(node, "alpha", 1.0), attr(node, "beta", 1.0)) if gemm else (1.0, 1.0)
        weight_input = node.inputs[1]
        key = (weight_input.name, trans_b, alpha)
        if key not in self.shared:
            weight = editor.constant(weight_input).astype(np.float32)
            weight = (weight.T if trans_b else weight) * np.float32(alpha)
            self.shared[key] = self._int8_weight(node.name, np.ascontiguousarray(weight), self.axis)
        weight, scale, zero = self.shared[key]
        bias_input = node.inputs[2] if gemm and len(node.inputs) > 2 else None
        self._lower_matmul(node, weight, scale, zero, bias_input, beta)

    def _lower_matmul(self, node: ir.Node, weight, scale, zero, bias_input, beta: float) -> None:
        """The kernel with the bias folded in: a constant Gemm C or the Add that alone follows."""
        editor = self.editor
        bias, output, add = None, node.outputs[0], None
        if bias_input is not None and editor.constant(bias_input) is None:
            self._activation_c(node, bias_input, weight, scale, zero)
            return
        if bias_input is not None:
            if (bias_input.name, beta) not in self.shared:
                value = (editor.constant(bias_input).reshape(-1) * np.float32(beta)).astype(np.float32)
                self.shared[(bias_input.name, beta)] = editor.initializer(f"{node.name}_dyn_bias", value)
            bias = self.shared[(bias_input.name, beta)]
        else:
            add, bias = _bias_add(editor, output, weight.const_value.shape[1])
            output = add.outputs[0] if add is not None else output
        lowered = self._integer_matmul(node, weight, scale, zero, bias, output.name)
        if add is None:
            editor.replace(node, [lowered])
        else:  # the Add's readers read the kernel; nothing reads the MatMul's own output any more
            editor.bypass(add, lowered.outputs[0])
            editor.substitute(node, [lowered])

    def _activation_c(self, node: ir.Node, c: ir.Value, weight, scale, zero) -> None:
        """A Gemm whose C is an activation (ORT fuses a residual `x @ W + x` into one): the kernel
        without bias, then C added back (lowerable() accepts only beta = 1 here)."""
        output = node.outputs[0]
        lowered = self._integer_matmul(node, weight, scale, zero, None, f"{output.name}_before_c")
        add = self.editor.node("Add", [lowered.outputs[0], c], [output.name], name=f"{node.name}_add_c")
        self.editor.replace(node, [lowered, add])

    def _integer_matmul(
        self, node: ir.Node, weight: ir.Value, scale: ir.Value, zero: ir.Value, bias, output: str
    ) -> ir.Node:
        """MatMulIntegerToFloat on node's A, quantized by the DynamicQuantizeLinear shared per input."""
        editor = self.editor
        x = node.inputs[0]
        if x not in self.activations:
            quantize_x = editor.node(
                "DynamicQuantizeLinear",
                [x],
                [f"{x.name}_dyn_quantized", f"{x.name}_dyn_scale", f"{x.name}_dyn_zero_point"],
                name=f"{x.name}_DynamicQuantizeLinear",
            )
            editor.insert_before(node, [quantize_x])
            self.activations[x] = list(quantize_x.outputs)
        xq, xs, xz = self.activations[x]
        return editor.node(
            "MatMulIntegerToFloat",
            [xq, weight, xs, scale, xz, zero, *([bias] if bias is not None else [])],
            [output],
            name=node.name,
            domain=MS_DOMAIN,
        )

    def lstm(self, node: ir.Node) -> None:
        """ONNX LSTM weights [D, 4H, I] become [D, I, 4H] int8 with per-gate-row scales [D, 4H], or
        one scale per direction [D] when per tensor: ORT's kernel runs that form faster (2-layer
        BiLSTM tagger, AMD Zen 5, batch 1: 1.65x fp32 against 1.36x, cosine 0.99994 vs 0.99995)."""
        editor, fmt, axis = self.editor, self.fmt, None if self.axis is None else 1
        tensors = []
        for which in (1, 2):
            w = np.transpose(editor.constant(node.inputs[which]).astype(np.float32), (0, 2, 1))
            params = [weight_params(w[d], fmt, axis=axis) for d in range(w.shape[0])]
            q = np.stack([quantize(w[d], s, z, fmt, axis=axis) for d, (s, z) in enumerate(params)])
            tag = f"{node.name}_{'W' if which == 1 else 'R'}"
            tensors.append(
                (
                    editor.initializer(f"{tag}_dyn_quantized", q),
                    editor.initializer(f"{tag}_dyn_scale", np.stack([s for s, _ in params])),
                    editor.initializer(f"{tag}_dyn_zero_point", np.stack([z for _, z in params])),
                )
            )
        (w_q, w_scale, w_zero), (r_q, r_scale, r_zero) = tensors
        optional = [node.inputs[i] if len(node.inputs) > i else None for i in range(3, 8)]
        lowered = editor.node(
            "DynamicQuantizeLSTM",
            [node.inputs[0], w_q, r_q, *optional, w_scale, w_zero, r_scale, r_zero],
            [out.name for out in node.outputs],
            name=node.name,
            domain=MS_DOMAIN,
            attributes=[a for name, a in node.attributes.items() if name != "layout"],
        )
        editor.replace(node, [lowered])


PER_TOKEN_OPSET = 11  # DynamicQuantizeLinear
ROW_FLOOR = 1e-30  # an all-zero row divides by this, not by 0


class _PerTokenLowering(_Lowering):
    """dynamic-int8 MatMuls whose input rows (tokens) each get their own scale.

    Each row of the input [..., K] is divided by its own max|x| (r [..., 1]), so every row spans
    at most [-1, 1]; one DynamicQuantizeLinear then quantizes the whole tensor to uint8 over the
    range the normalised rows share, the u8 x s8 kernel multiplies it, and the result [..., N] is
    multiplied by r. A row gets at least its symmetric max|row| / 127 step, and rows of one sign
    (a GELU's output) nearly twice as fine: on all-MiniLM-L6-v2 recall@10 0.975 against 0.972 for
    a per-axis QuantizeLinear at max|row| / 127 (128 texts), in 747 nodes instead of 867, at the
    same speed. The bias stays an Add after it (it must not be rescaled), where ORT fuses it into
    the next op (BiasGelu, SkipLayerNormalization)."""

    def __init__(self, editor: GraphEditor, fmt: QuantFormat, axis: int | None, opset: int) -> None:
        super().__init__(editor, fmt, axis)
        self.opset = opset
        self.rows: dict[ir.Value, tuple[ir.Value, ir.Value, ir.Value, ir.Value]] = {}
        self.floor = editor.initializer("per_token_floor", np.array(ROW_FLOOR, np.float32))

    def _lower_matmul(self, node: ir.Node, weight, scale, zero, bias_input, beta: float) -> None:
        editor, base = self.editor, node.name
        codes, code_scale, code_zero, row_max = self._normalised_rows(node, node.inputs[0])
        product = editor.node(
            "MatMulIntegerToFloat",
            [codes, weight, code_scale, scale, code_zero, zero],
            [f"{base}_per_token_product"],
            name=base,
            domain=MS_DOMAIN,
        )
        nodes = [product, self._op("Mul", [product.outputs[0], row_max], f"{base}_per_token")]
        if bias_input is not None:
            bias = bias_input
            if editor.constant(bias_input) is not None:
                value = (editor.constant(bias_input).reshape(-1) * np.float32(beta)).astype(np.float32)
                bias = editor.initializer(f"{base}_per_token_bias", value)
            nodes.append(self._op("Add", [nodes[-1].outputs[0], bias], f"{base}_bias"))
        editor.replace(node, nodes)

    def _op(self, op_type: str, inputs: list, output: str, **attributes) -> ir.Node:
        """A default-domain node named after the one value it writes."""
        return self.editor.node(op_type, inputs, [output], name=f"{output}_{op_type}", attributes=attributes)

    def _normalised_rows(self, node: ir.Node, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value, ir.Value]:
        """x's rows divided by their max|x|, as DynamicQuantizeLinear's codes, scale and zero
        point, and the rows' max|x| [..., 1]; made once per input and shared by its MatMuls."""
        if x in self.rows:
            return self.rows[x]
        editor, tag = self.editor, f"{x.name}_per_token"
        nodes = [self._op("Abs", [x], f"{tag}_abs")]
        if self.opset >= 18:  # ReduceMax reads its axes from an input from opset 18
            axes = editor.initializer(f"{tag}_axes", np.array([-1], np.int64))
            nodes.append(self._op("ReduceMax", [nodes[-1].outputs[0], axes], f"{tag}_max"))
        else:
            nodes.append(self._op("ReduceMax", [nodes[-1].outputs[0]], f"{tag}_max", axes=[-1], keepdims=1))
        nodes.append(self._op("Max", [nodes[-1].outputs[0], self.floor], f"{tag}_row_max"))
        row_max = nodes[-1].outputs[0]
        nodes.append(self._op("Div", [x, row_max], f"{tag}_unit"))
        quantize = editor.node(
            "DynamicQuantizeLinear",
            [nodes[-1].outputs[0]],
            [f"{tag}_codes", f"{tag}_scale", f"{tag}_zero_point"],
            name=f"{tag}_DynamicQuantizeLinear",
        )
        editor.insert_before(node, [*nodes, quantize])
        self.rows[x] = (*quantize.outputs, row_max)
        return self.rows[x]


def _bias_add(editor: GraphEditor, output: ir.Value, columns: int) -> tuple[ir.Node | None, ir.Value | None]:
    """The Add that alone reads a MatMul's output and adds a constant fp32 [N], and that constant."""
    uses = list(output.uses())
    if len(uses) != 1 or output.is_graph_output() or uses[0][0].op_type != "Add":
        return None, None
    add = uses[0][0]
    other = add.inputs[1 - uses[0][1]]
    bias = editor.constant(other)
    if bias is None or bias.dtype != np.float32 or bias.shape != (columns,):  # [1, N] would broadcast
        return None, None
    return add, other
