"""Prepare an fp32 graph for quantization: fold BatchNorm and constants, drop dead nodes, infer shapes."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
from onnxscript.rewriter import RULE_NAME_TAG, pattern

from edgeq.data import Arrays
from edgeq.graph.edit import GraphEditor, attr
from edgeq.passes.ort_offline import ort_optimize
from edgeq.passes.pooling import globalize_whole_map_pools
from edgeq.passes.simplify import simplify_static_shapes


def prepare_model(model: onnx.ModelProto, check: Arrays | None = None) -> onnx.ModelProto:
    """Gemm/MatMul+BatchNorm folded by edgeq, ONNX Runtime's basic offline optimizer, static shapes
    folded, whole-map AveragePools made global (their static map shapes known only then).

    ORT's basic level folds constants, Conv+BatchNorm and removes redundant nodes without needing
    symbolic shape inference, so dynamic-H×W convnets prepare fine. With a symbolic batch dim it
    leaves shape arithmetic on the static dims in place; simplify_static_shapes folds that, and
    keeps the fold only if the model computes the same on `check` data when that is given.
    """
    model = fold_linear_batchnorm(model)
    model = simplify_static_shapes(ort_optimize(model, "basic"), check)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    return globalize_whole_map_pools(model)


def fold_linear_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold an inference BatchNormalization that follows a Gemm into the Gemm's weights and bias.

    ORT folds Conv+BatchNorm itself; BatchNorm1d after a Linear it leaves alone.
    """
    editor = GraphEditor(model)
    GEMM_BATCHNORM.apply_to_model(editor.model)
    for node in editor.graph:  # the rewriter tags what it wrote; the artifact needs no provenance
        node.metadata_props.pop(RULE_NAME_TAG, None)
    return editor.finish()


def _gemm_batchnorm(op, x, weight, gamma, beta, mean, var):
    gemm = op.Gemm(x, weight, _allow_other_inputs=True, _outputs=["gemm"])
    return op.BatchNormalization(gemm, gamma, beta, mean, var)


def _foldable(context, x, weight, gamma, beta, mean, var, gemm, **_) -> bool:
    """Inference BatchNormalization (one output), constant statistics and 2-D weight, A not
    transposed; the matcher checks that only the BatchNormalization reads the Gemm."""
    bn = next(iter(gemm.uses()))[0]
    constants = [ir.convenience.get_const_tensor(v) for v in (weight, gamma, beta, mean, var)]
    return (
        len(bn.outputs) == 1
        and not attr(gemm.producer(), "transA", 0)
        and all(c is not None for c in constants)
        and constants[0].shape.rank() == 2
    )


def _folded_gemm(op, x, weight, gamma, beta, mean, var, gemm, **_):
    node, bn = gemm.producer(), next(iter(gemm.uses()))[0]
    value = lambda v: ir.convenience.get_const_tensor(v).numpy()  # noqa: E731
    gamma, beta, mean, var = (value(v).astype(np.float64) for v in (gamma, beta, mean, var))
    factor = gamma / np.sqrt(var + attr(bn, "epsilon", 1e-5))
    trans_b = attr(node, "transB", 0)
    w = value(weight).astype(np.float64) * attr(node, "alpha", 1.0)
    w = w * factor[:, None] if trans_b else w * factor[None, :]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    bias = None if bias is None else ir.convenience.get_const_tensor(bias)
    bias = 0.0 if bias is None else np.broadcast_to(bias.numpy(), factor.shape) * attr(node, "beta", 1.0)
    name = gemm.name
    folded = [
        op.initializer(ir.tensor(w.astype(np.float32), name=name + "_bnfold_weight")),
        op.initializer(
            ir.tensor(((bias - mean) * factor + beta).astype(np.float32), name=name + "_bnfold_bias")
        ),
    ]
    return op.Gemm(x, *folded, transB=trans_b, _name=node.name)


GEMM_BATCHNORM = pattern.RewriteRule(_gemm_batchnorm, _folded_gemm, _foldable, name="GemmBatchNormalization")
