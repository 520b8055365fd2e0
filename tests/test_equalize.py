"""Cross-layer equalisation is exact in fp32 and rescues per-tensor weight quantization (ORT)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeq.frontend.torch_export import export_torch
from edgeq.graph import GraphIndex
from edgeq.graph.edit import with_initializers
from edgeq.graph.ops import LAYER_OPS
from edgeq.quant.equalize import equalize_cross_layer
from edgeq.quant.primitives import QuantFormat, fake_quantize, sqnr_db, weight_params
from edgeq.runtime.session import OrtRunner

INT8 = QuantFormat(bits=8, narrow_range=True)
INT4 = QuantFormat(bits=4, narrow_range=True)


def _imbalance(first: nn.Module, second: nn.Module, generator: torch.Generator) -> None:
    """Scale layer 1's output channels by 10^U(-2, 1.5) and undo it in layer 2 (same function),
    the way folded BatchNorms leave channel ranges in real networks."""
    channels = first.weight.shape[0]
    factors = 10 ** (torch.rand(channels, generator=generator) * 3.5 - 2)
    with torch.no_grad():
        first.weight.mul_(factors.view(-1, *[1] * (first.weight.dim() - 1)))
        first.bias.mul_(factors)
        inverse = (1 / factors).view(1, -1, *[1] * (second.weight.dim() - 2))
        second.weight.mul_(inverse)


def _cnn() -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 24, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(24, 8, 1),
    )
    _imbalance(module[0], module[2], generator)
    _imbalance(module[2], module[4], generator)
    return module


def _mlp() -> nn.Module:
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.Linear(32, 6))
    _imbalance(module[0], module[2], generator)
    _imbalance(module[2], module[3], generator)
    return module


CASES = {
    "cnn": (_cnn, (16, 3, 10, 10)),
    "mlp-gemm": (_mlp, (64, 20)),
    "mlp-matmul": (_mlp, (16, 5, 20)),  # 3-D input: MatMul + bias Add
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> tuple[onnx.ModelProto, np.ndarray]:
    build, shape = CASES[request.param]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    model, _ = export_torch(build(), x)
    return model, x.numpy()


def _predict(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return next(iter(OrtRunner(model.SerializeToString()).predict({"input_0": x}).values()))


def _weights_quantized(model: onnx.ModelProto, fmt: QuantFormat, per_channel: bool):
    """Every layer weight fake-quantized (per tensor, or per output channel)."""
    index = GraphIndex(model.graph)
    values = {}
    for node in model.graph.node:
        if node.op_type not in LAYER_OPS:
            continue
        weight = index.constant(node.input[1])
        axis = (0 if node.op_type != "MatMul" else 1) if per_channel else None
        scale, zero = weight_params(weight, fmt, axis)
        values[node.input[1]] = fake_quantize(weight, scale, zero, fmt, axis)
    return with_initializers(model, values)


def test_equalized_model_computes_the_same_function(case) -> None:
    model, x = case
    equalized, summary = equalize_cross_layer(model)
    assert len(summary["pairs"]) == 2
    reference = _predict(model, x)
    np.testing.assert_allclose(
        _predict(equalized, x), reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max()
    )


def test_channel_range_spread_shrinks(case) -> None:
    model, _ = case
    _, summary = equalize_cross_layer(model)
    for pair in summary["pairs"]:
        for layer in ("first", "second"):
            assert pair["spread_after"][layer] < 0.2 * pair["spread_before"][layer]


@pytest.mark.parametrize(("fmt", "per_channel", "gain_db"), [(INT8, False, 10.0), (INT4, True, 3.0)])
def test_weight_quantization_error_drops(case, fmt, per_channel, gain_db) -> None:
    model, x = case
    equalized, _ = equalize_cross_layer(model)
    reference = _predict(model, x)
    before = sqnr_db(reference, _predict(_weights_quantized(model, fmt, per_channel), x))
    after = sqnr_db(reference, _predict(_weights_quantized(equalized, fmt, per_channel), x))
    assert after > before + gain_db


def test_branching_output_is_not_equalized() -> None:
    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.Linear(8, 8), nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = torch.relu(self.first(x))
            return self.second(hidden), hidden

    model, _ = export_torch(Branch(), torch.randn(2, 8))
    equalized, summary = equalize_cross_layer(model)
    assert summary["pairs"] == []
    assert equalized.SerializeToString() == model.SerializeToString()
