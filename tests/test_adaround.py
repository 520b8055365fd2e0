"""AdaRound beats round-to-nearest on layer output error, measured by running the models in ORT."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeq.frontend.torch_export import export_torch
from edgeq.graph import GraphIndex
from edgeq.graph.edit import with_initializers
from edgeq.quant.adaround import adaround_weights
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.layer_inputs import conv_patches, planned_layers
from edgeq.quant.plan import QuantPlan, ensure_node_names, plan_int8
from edgeq.quant.primitives import QuantFormat, dequantize, quantize, weight_params
from edgeq.quant.qdq import activation_format, rewrite_qdq, weight_format
from edgeq.recipe import Calibration
from edgeq.runtime.session import OrtRunner
from edgeq.targets import Int8Scheme

INT4 = QuantFormat(bits=4, narrow_range=True)


def _correlated_inputs(count: int, features: int, seed: int) -> np.ndarray:
    """Inputs dominated by a few shared directions: rounding errors then add up along them."""
    generator = np.random.default_rng(seed)
    mixing = generator.normal(size=(6, features))
    hidden = generator.normal(size=(count, 6))
    return (hidden @ mixing + 0.3 * generator.normal(size=(count, features))).astype(np.float32)


def _plan(model: onnx.ModelProto) -> tuple[onnx.ModelProto, QuantPlan]:
    model = onnx.shape_inference.infer_shapes(model)
    ensure_node_names(model)
    return model, plan_int8(model, Int8Scheme())


def _with_weights(model: onnx.ModelProto, plan: QuantPlan, integers: dict[str, np.ndarray]):
    """The model with each planned weight replaced by the dequantized given integers."""
    values = {}
    for layer in planned_layers(model, plan):
        scale, zero = weight_params(layer.weight, INT4, layer.axis)
        values[layer.weight_name] = dequantize(integers[layer.weight_name], scale, zero, axis=layer.axis)
    return with_initializers(model, values)


def _nearest(model: onnx.ModelProto, plan: QuantPlan) -> dict[str, np.ndarray]:
    integers = {}
    for layer in planned_layers(model, plan):
        scale, zero = weight_params(layer.weight, INT4, layer.axis)
        integers[layer.weight_name] = quantize(layer.weight, scale, zero, INT4, axis=layer.axis)
    return integers


def _output_mse(model: onnx.ModelProto, candidate: onnx.ModelProto, x: np.ndarray) -> float:
    outputs = [
        next(iter(OrtRunner(m.SerializeToString()).predict({"input_0": x}).values()))
        for m in (model, candidate)
    ]
    return float(np.mean((outputs[1] - outputs[0]) ** 2))


@pytest.mark.parametrize(
    ("module", "x"),
    [
        (nn.Linear(48, 24), _correlated_inputs(600, 48, 0)),  # Gemm, transB=1
        (nn.Linear(48, 24, bias=False), _correlated_inputs(600, 48, 1).reshape(100, 6, 48)),
    ],
    ids=["gemm", "matmul"],
)
def test_adaround_lowers_held_out_output_error(module: nn.Module, x: np.ndarray) -> None:
    torch.manual_seed(0)
    model, plan = _plan(export_torch(module, torch.from_numpy(x[:2]))[0])
    calibration, held_out = x[: len(x) // 2], x[len(x) // 2 :]
    learned = adaround_weights(model, plan, {"input_0": calibration}, INT4, iterations=300)
    nearest = _nearest(model, plan)
    (name,) = learned
    assert learned[name].dtype == nearest[name].dtype and learned[name].shape == nearest[name].shape
    assert np.abs(learned[name].astype(int) - nearest[name]).max() == 1
    rtn = _output_mse(model, _with_weights(model, plan, nearest), held_out)
    ada = _output_mse(model, _with_weights(model, plan, learned), held_out)
    assert ada < 0.8 * rtn


def test_conv_adaround_beats_nearest_through_im2col() -> None:
    torch.manual_seed(1)
    module = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2))
    x = torch.randn(48, 4, 9, 9)
    model, plan = _plan(export_torch(module, x[:2])[0])
    learned = adaround_weights(model, plan, {"input_0": x[:32].numpy()}, INT4, iterations=300)
    nearest = _nearest(model, plan)
    assert set(learned) == set(nearest) and len(learned) == 2
    for name in learned:
        assert np.abs(learned[name].astype(int) - nearest[name]).max() <= 1
    held_out = x[32:].numpy()
    rtn = _output_mse(model, _with_weights(model, plan, nearest), held_out)
    ada = _output_mse(model, _with_weights(model, plan, learned), held_out)
    assert ada < rtn


def test_conv_patches_reproduce_the_ort_convolution() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False)
    x = torch.randn(2, 3, 8, 7)
    model, _ = export_torch(conv, x)
    (node,) = model.graph.node
    weight = GraphIndex(model.graph).constant(node.input[1])
    expected = next(iter(OrtRunner(model.SerializeToString()).predict({"input_0": x.numpy()}).values()))
    rows = conv_patches(node, x.numpy(), weight.shape[2:]) @ weight.reshape(5, -1).T
    positions = expected.shape[2] * expected.shape[3]
    actual = rows.reshape(2, positions, 5).transpose(0, 2, 1).reshape(expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_progress_reports_each_layer() -> None:
    module = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x = _correlated_inputs(64, 16, 3)
    model, plan = _plan(export_torch(module, torch.from_numpy(x[:2]))[0])
    calls: list[tuple[str, int]] = []
    adaround_weights(
        model,
        plan,
        {"input_0": x},
        INT4,
        iterations=20,
        progress=lambda phase, done: calls.append((phase, done)),
    )
    assert calls == [("adaround", 1), ("adaround", 2)]


def test_learned_integers_reach_the_qdq_model() -> None:
    module = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    x = _correlated_inputs(128, 32, 4)
    model, plan = _plan(export_torch(module, torch.from_numpy(x[:2]))[0])
    scheme = Int8Scheme()
    learned = adaround_weights(model, plan, {"input_0": x}, weight_format(scheme), iterations=50)
    ranges = calibrate_ranges(
        model,
        plan.calibration_tensors(),
        {"input_0": x},
        Calibration(method="minmax"),
        activation_format(scheme),
    )
    quantized = rewrite_qdq(model, plan, ranges, scheme, weight_overrides=learned)
    index = GraphIndex(quantized.graph)
    for name, integers in learned.items():
        (stored,) = [
            v for k, v in index.initializers.items() if k.startswith(f"{name}_") and k.endswith("_quantized")
        ]
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(stored), integers)
    assert OrtRunner(quantized.SerializeToString()).predict({"input_0": x})
