"""Prepare an fp32 graph for quantization: fold BatchNorm and constants, drop dead nodes, infer shapes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgeq.errors import InputError
from edgeq.graph import GraphIndex, attribute, replace_initializer, save_model
from edgeq.measure.runner import session_options


def prepare_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Gemm/MatMul+BatchNorm folded by edgeq, then ONNX Runtime's basic offline optimizer.

    ORT's basic level folds constants, Conv+BatchNorm and removes redundant nodes without needing
    symbolic shape inference, so dynamic-H×W convnets prepare fine.
    """
    model = fold_linear_batchnorm(model)
    model = ort_optimize(model, "basic")
    return onnx.shape_inference.infer_shapes(model, strict_mode=False)


def ort_optimize(model: onnx.ModelProto, level: str) -> onnx.ModelProto:
    """The model as ONNX Runtime's offline optimizer rewrites it at `level` (basic/extended)."""
    with tempfile.TemporaryDirectory(prefix="edgeq-opt-") as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        save_model(model, source)
        options = session_options(level=level)
        options.optimized_model_filepath = str(target)
        try:
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unsupported models
            message = str(exc).splitlines()[0]
            raise InputError(f"ONNX Runtime cannot load the model: {message}") from None
        return onnx.load(str(target))


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
