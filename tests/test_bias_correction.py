"""Bias correction removes the mean output error 4-bit weights cause after a ReLU (run in ORT)."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from edgeq.frontend.torch_export import export_torch
from edgeq.graph import GraphIndex
from edgeq.graph.edit import with_initializers
from edgeq.quant.bias_correction import apply_biases, corrected_biases
from edgeq.quant.plan import ensure_node_names, plan_int8
from edgeq.quant.primitives import QuantFormat, fake_quantize, weight_params
from edgeq.runtime.session import OrtRunner
from edgeq.targets import Int8Scheme

INT4 = QuantFormat(bits=4, narrow_range=True)


def _prepared(module: nn.Module, x: torch.Tensor, layer: str):
    """Exported model and an INT8 plan narrowed to one layer's weight."""
    torch.manual_seed(0)
    model, _ = export_torch(module, x[:2])
    model = onnx.shape_inference.infer_shapes(model)  # the plan reads tensor types
    ensure_node_names(model)
    plan = plan_int8(model, Int8Scheme())
    plan.weights = [spec for spec in plan.weights if spec.node == layer]
    assert plan.weights, [n.name for n in model.graph.node]
    return model, plan


def _with_quantized_weight(model: onnx.ModelProto, plan) -> onnx.ModelProto:
    """The model with the planned weight replaced by its 4-bit round-to-nearest values."""
    spec = plan.weights[0]
    node = next(n for n in model.graph.node if n.name == spec.node)
    weight = GraphIndex(model.graph).constant(node.input[1])
    scale, zero = weight_params(weight, INT4, spec.axis)
    return with_initializers(model, {node.input[1]: fake_quantize(weight, scale, zero, INT4, spec.axis)})


def _mean_error(
    reference: onnx.ModelProto, candidate: onnx.ModelProto, x: np.ndarray, axis: int = -1
) -> np.ndarray:
    """Per-output-channel mean of (candidate − reference) over the data."""
    outputs = [
        next(iter(OrtRunner(m.SerializeToString()).predict({"input_0": x}).values()))
        for m in (reference, candidate)
    ]
    difference = outputs[1] - outputs[0]
    return np.moveaxis(difference, axis, 0).reshape(difference.shape[axis], -1).mean(axis=1)


def _post_relu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))


def test_gemm_mean_output_error_vanishes_after_correction() -> None:
    torch.manual_seed(1)
    x = torch.randn(300, 32) + 1.0
    model, plan = _prepared(_post_relu_mlp(), x, "/2/Gemm")
    biases = corrected_biases(model, plan, {"input_0": x.numpy()}, INT4, samples=300)
    quantized = _with_quantized_weight(model, plan)
    before = _mean_error(model, quantized, x.numpy())
    after = _mean_error(model, apply_biases(quantized, biases), x.numpy())
    assert np.abs(before).max() > 0.01
    assert np.abs(after).max() < 1e-5 + 1e-3 * np.abs(before).max()


def test_matmul_bias_goes_into_its_following_add() -> None:
    torch.manual_seed(2)
    x = torch.randn(64, 5, 32) + 1.0  # 3-D input: Linear exports as MatMul + Add
    model, plan = _prepared(_post_relu_mlp(), x, "/2/MatMul")
    biases = corrected_biases(model, plan, {"input_0": x.numpy()}, INT4)
    corrected = apply_biases(_with_quantized_weight(model, plan), biases)
    assert [n.op_type for n in corrected.graph.node] == [n.op_type for n in model.graph.node]
    mean = _mean_error(model, corrected, x.numpy())
    before = _mean_error(model, _with_quantized_weight(model, plan), x.numpy())
    assert np.abs(mean).max() < 1e-5 + 1e-3 * np.abs(before).max()


def test_conv_without_bias_gets_one_and_its_mean_error_shrinks() -> None:
    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8, 3, bias=False))
    x = torch.randn(64, 3, 12, 12) + 0.5
    layer = "/2/Conv"
    model, plan = _prepared(module, x, layer)
    biases = corrected_biases(model, plan, {"input_0": x.numpy()}, INT4)
    quantized = _with_quantized_weight(model, plan)
    corrected = apply_biases(quantized, biases)
    conv = next(n for n in corrected.graph.node if n.name == layer)
    assert len(conv.input) == 3 and biases[layer].shape == (8,)
    before = _mean_error(model, quantized, x.numpy(), axis=1)
    after = _mean_error(model, corrected, x.numpy(), axis=1)
    assert np.abs(after).max() < 0.1 * np.abs(before).max()


def test_depthwise_conv_pairs_each_kernel_with_its_own_channel_mean() -> None:
    torch.manual_seed(4)
    module = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, groups=16, padding=0))
    x = torch.randn(64, 3, 10, 10) + 0.5
    model, plan = _prepared(module, x, "/2/Conv")
    biases = corrected_biases(model, plan, {"input_0": x.numpy()}, INT4)
    quantized = _with_quantized_weight(model, plan)
    before = _mean_error(model, quantized, x.numpy(), axis=1)
    after = _mean_error(model, apply_biases(quantized, biases), x.numpy(), axis=1)
    assert np.abs(after).max() < 0.1 * np.abs(before).max()


def test_matmul_without_bias_gets_a_new_add() -> None:
    torch.manual_seed(5)
    module = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16, bias=False))
    x = torch.randn(64, 5, 32) + 1.0
    model, plan = _prepared(module, x, "/2/MatMul")
    biases = corrected_biases(model, plan, {"input_0": x.numpy()}, INT4)
    quantized = _with_quantized_weight(model, plan)
    corrected = apply_biases(quantized, biases)
    assert [n.op_type for n in corrected.graph.node][-2:] == ["MatMul", "Add"]
    before = _mean_error(model, quantized, x.numpy())
    after = _mean_error(model, corrected, x.numpy())
    assert np.abs(after).max() < 1e-5 + 1e-3 * np.abs(before).max()
