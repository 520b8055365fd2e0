"""Prepare an fp32 graph for quantization: fold BatchNorm and constants, drop dead nodes, infer shapes."""

from __future__ import annotations

import numpy as np
import onnx

from edgeq.data import Arrays
from edgeq.graph.edit import GraphEditor, attr
from edgeq.passes.ort_offline import ort_optimize
from edgeq.passes.simplify import simplify_static_shapes


def prepare_model(model: onnx.ModelProto, check: Arrays | None = None) -> onnx.ModelProto:
    """Gemm/MatMul+BatchNorm folded by edgeq, ONNX Runtime's basic offline optimizer, static shapes folded.

    ORT's basic level folds constants, Conv+BatchNorm and removes redundant nodes without needing
    symbolic shape inference, so dynamic-H×W convnets prepare fine. With a symbolic batch dim it
    leaves shape arithmetic on the static dims in place; simplify_static_shapes folds that, and
    keeps the fold only if the model computes the same on `check` data when that is given.
    """
    model = fold_linear_batchnorm(model)
    model = simplify_static_shapes(ort_optimize(model, "basic"), check)
    return onnx.shape_inference.infer_shapes(model, strict_mode=False)


def fold_linear_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold an inference BatchNormalization that follows a Gemm into the Gemm's weights and bias.

    ORT folds Conv+BatchNorm itself; BatchNorm1d after a Linear it leaves alone.
    """
    editor = GraphEditor(model)
    for bn in [n for n in editor.graph if n.op_type == "BatchNormalization" and len(n.outputs) == 1]:
        gemm = bn.inputs[0].producer()
        if gemm is None or gemm.op_type != "Gemm" or attr(gemm, "transA", 0):
            continue
        if len(gemm.outputs[0].uses()) != 1 or gemm.outputs[0].is_graph_output():
            continue
        stats = [editor.constant(value) for value in bn.inputs[1:5]]
        weight = editor.constant(gemm.inputs[1])
        if any(s is None for s in stats) or weight is None or weight.ndim != 2:
            continue
        gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
        factor = gamma / np.sqrt(var + attr(bn, "epsilon", 1e-5))
        trans_b = attr(gemm, "transB", 0)
        w = weight.astype(np.float64) * attr(gemm, "alpha", 1.0)
        w = w * factor[:, None] if trans_b else w * factor[None, :]
        bias = editor.constant(gemm.inputs[2]) if len(gemm.inputs) > 2 else None
        bias = 0.0 if bias is None else np.broadcast_to(bias, factor.shape) * attr(gemm, "beta", 1.0)
        name = gemm.outputs[0].name
        folded = editor.node(
            "Gemm",
            [
                gemm.inputs[0],
                editor.set_initializer(name + "_bnfold_weight", w.astype(np.float32)),
                editor.set_initializer(
                    name + "_bnfold_bias", ((bias - mean) * factor + beta).astype(np.float32)
                ),
            ],
            [bn.outputs[0].name],
            name=gemm.name,
            attributes={"transB": trans_b},
        )
        editor.replace(bn, [], [folded.outputs[0]])
        editor.substitute(gemm, [folded])
    return editor.finish()
