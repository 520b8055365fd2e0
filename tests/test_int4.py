"""INT4 lowering checked numerically against ONNX Runtime on exported torch models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeq.frontend.torch_export import export_torch
from edgeq.passes.nbits_accuracy import fastest_accuracy_level
from edgeq.quant.int4 import (
    INT4_SYMMETRIC,
    UINT4_ASYMMETRIC,
    lower_to_matmul_nbits,
    matmul_nbits_weights,
    pack_uint4,
    quantize_embeddings,
)
from edgeq.quant.primitives import (
    block_weight_params,
    dequantize_blocked,
    quantize_blocked,
    sqnr_db,
)


class TwoLinear(nn.Module):
    """Linear(K=80, not a multiple of the block) -> ReLU -> Linear without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(80, 48)
        self.second = nn.Linear(48, 24, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(500, 64)
        self.head = nn.Linear(64, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.table(ids))


def _export(module: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    torch.manual_seed(0)
    model, _ = export_torch(module, example)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray, dq_fusion_level: str | None = None) -> np.ndarray:
    """ORT output; `dq_fusion_level` sets the accuracy_level ORT gives DQ+MatMul it fuses into
    MatMulNBits (its default, 4, computes in int8)."""
    options = ort.SessionOptions()
    if dq_fusion_level is not None:
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", dq_fusion_level)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _reference(model: onnx.ModelProto, x: np.ndarray, fmt, block_size: int) -> np.ndarray:
    """numpy forward of TwoLinear with each weight replaced by its block-dequantized value."""
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    (w1,) = [w for w in weights.values() if w.shape == (80, 48)]
    (b1,) = [w for w in weights.values() if w.shape == (48,)]
    (w2,) = [w for w in weights.values() if w.shape == (48, 24)]
    dq1, dq2 = (matmul_nbits_weights(w, fmt, block_size)[3] for w in (w1, w2))
    return np.maximum(x @ dq1 + b1, 0) @ dq2


@pytest.fixture(scope="module")
def two_linear() -> tuple[onnx.ModelProto, np.ndarray]:
    torch.manual_seed(0)
    module = TwoLinear()
    x = torch.randn(4, 7, 80)
    return _export(module, x), x.numpy()


def test_pack_uint4_puts_the_first_value_in_the_low_nibble() -> None:
    assert pack_uint4(np.array([[1, 2, 15]])).tolist() == [[0x21, 0x0F]]


@pytest.mark.parametrize("fmt", [INT4_SYMMETRIC, UINT4_ASYMMETRIC], ids=["sym", "asym"])
@pytest.mark.parametrize("block_size", [16, 32])
def test_matmul_nbits_matches_the_dequantized_reference(two_linear, fmt, block_size) -> None:
    model, x = two_linear
    lowered = lower_to_matmul_nbits(model, block_size=block_size, symmetric=fmt.symmetric, accuracy_level=1)
    assert [n.op_type for n in lowered.graph.node].count("MatMulNBits") == 2
    expected = _reference(model, x, fmt, block_size)
    np.testing.assert_allclose(_run(lowered, x), expected, rtol=1e-4, atol=1e-5)


def test_int8_compute_level_stays_close_to_the_reference(two_linear) -> None:
    model, x = two_linear
    lowered = lower_to_matmul_nbits(model, accuracy_level=4)
    expected = _reference(model, x, INT4_SYMMETRIC, 32)
    error = np.abs(_run(lowered, x) - expected).max() / np.abs(expected).max()
    assert error < 0.02


def test_gemm_with_trans_b_and_bias_is_lowered_exactly() -> None:
    torch.manual_seed(1)
    module = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))
    x = torch.randn(5, 64)
    model = _export(module, x)
    assert {n.op_type for n in model.graph.node} >= {"Gemm"}
    lowered = lower_to_matmul_nbits(model, accuracy_level=1)
    assert "Gemm" not in {n.op_type for n in lowered.graph.node}
    layers = [module[0], module[2]]
    h = x.numpy()
    for i, layer in enumerate(layers):
        w = layer.weight.detach().numpy().T
        h = h @ matmul_nbits_weights(w, INT4_SYMMETRIC, 32)[3] + layer.bias.detach().numpy()
        h = np.maximum(h, 0) if i == 0 else h
    np.testing.assert_allclose(_run(lowered, x.numpy()), h, rtol=1e-4, atol=1e-5)


def test_named_node_that_is_not_a_constant_matmul_is_rejected(two_linear) -> None:
    model, _ = two_linear
    with pytest.raises(ValueError, match="not MatMul/Gemm"):
        lower_to_matmul_nbits(model, nodes=["/Relu"])


def test_only_named_nodes_are_lowered(two_linear) -> None:
    model, x = two_linear
    lowered = lower_to_matmul_nbits(model, nodes=["/second/MatMul"])
    assert [n.op_type for n in lowered.graph.node].count("MatMulNBits") == 1
    assert _run(lowered, x).shape == (4, 7, 24)


@pytest.mark.parametrize(("bits", "max_ratio", "min_sqnr"), [(8, 0.3, 35.0), (4, 0.2, 14.0)])
def test_embedding_table_shrinks_and_stays_accurate(bits, max_ratio, min_sqnr) -> None:
    torch.manual_seed(3)
    ids = torch.randint(0, 500, (2, 9))
    model = _export(Embedder(), ids)
    quantized = quantize_embeddings(model, bits=bits, block_size=32)
    assert quantized.ByteSize() < max_ratio * model.ByteSize() + 5000
    reference, candidate = _run(model, ids.numpy()), _run(quantized, ids.numpy())
    assert sqnr_db(reference, candidate) > min_sqnr


def test_four_bit_embeddings_gather_the_block_dequantized_rows() -> None:
    torch.manual_seed(4)
    module = nn.Embedding(100, 32)
    ids = torch.randint(0, 100, (3, 5))
    quantized = quantize_embeddings(_export(module, ids), bits=4, block_size=16)
    assert [n.op_type for n in quantized.graph.node] == ["GatherBlockQuantized"]
    table = module.weight.detach().numpy()
    scale, zero = block_weight_params(table, INT4_SYMMETRIC, 1, 16)
    q = quantize_blocked(table, scale, zero, INT4_SYMMETRIC, 1, 16)
    rows = dequantize_blocked(q, scale, zero, 1, 16)[ids.numpy()]
    np.testing.assert_allclose(_run(quantized, ids.numpy()), rows, rtol=1e-6, atol=1e-7)


def test_fastest_accuracy_level_times_every_level(two_linear) -> None:
    model, x = two_linear
    lowered = lower_to_matmul_nbits(model)
    best, medians = fastest_accuracy_level(lowered, {"input_0": x}, levels=(0, 4), rounds=5)
    assert set(medians) == {0, 4} and best == min(medians, key=medians.get)
    assert all(t > 0 for t in medians.values())
