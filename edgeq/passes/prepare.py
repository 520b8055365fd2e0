"""Prepare an fp32 graph for quantization: fold BatchNorm and constants, drop dead nodes, infer shapes."""

from __future__ import annotations

import numpy as np
import onnx

from edgeq.data import Arrays
from edgeq.graph import GraphIndex, attribute, replace_initializer
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
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    index = GraphIndex(graph)
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization" and len(n.output) == 1]:
        gemm = index.producer.get(bn.input[0])
        if gemm is None or gemm.op_type != "Gemm" or attribute(gemm, "transA", 0):
            continue
        if len(index.consumers[gemm.output[0]]) != 1 or gemm.output[0] in index.outputs:
            continue
        stats = [index.constant(name) for name in bn.input[1:5]]
        weight = index.constant(gemm.input[1])
        if any(s is None for s in stats) or weight is None or weight.ndim != 2:
            continue
        gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
        factor = gamma / np.sqrt(var + attribute(bn, "epsilon", 1e-5))
        trans_b = attribute(gemm, "transB", 0)
        w = weight.astype(np.float64) * attribute(gemm, "alpha", 1.0)
        w = w * factor[:, None] if trans_b else w * factor[None, :]
        bias = index.constant(gemm.input[2]) if len(gemm.input) > 2 and gemm.input[2] else None
        bias = 0.0 if bias is None else np.broadcast_to(bias, factor.shape) * attribute(gemm, "beta", 1.0)
        weight_name, bias_name = gemm.output[0] + "_bnfold_weight", gemm.output[0] + "_bnfold_bias"
        replace_initializer(graph, weight_name, w.astype(np.float32))
        replace_initializer(graph, bias_name, ((bias - mean) * factor + beta).astype(np.float32))
        activation = gemm.input[0]
        del gemm.input[:]
        gemm.input.extend([activation, weight_name, bias_name])
        del gemm.attribute[:]
        gemm.attribute.append(onnx.helper.make_attribute("transB", trans_b))
        gemm.output[0] = bn.output[0]
        graph.node.remove(bn)
    return model
