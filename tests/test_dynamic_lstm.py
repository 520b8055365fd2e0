"""Dynamic INT8 LSTM: per-gate-row weight scales, or one per direction for the per-tensor variant
(ORT's faster DynamicQuantizeLSTM form), both computed by ONNX Runtime close to fp32."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgeq.quant.dynamic import lower_dynamic
from edgeq.quant.plan import ensure_node_names
from edgeq.runtime.session import OrtRunner
from tests.conftest import native_reduce_range
from tests.wild import models


class BiLstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(32, 48, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


@pytest.mark.parametrize(
    ("per_tensor", "scale_shape"), [(False, [2, 192]), (True, [2])], ids=["per-row", "per-direction"]
)
def test_lstm_weights_scaled_per_row_or_per_direction(tmp_path, per_tensor, scale_shape):
    x = np.random.default_rng(0).standard_normal((8, 20, 32)).astype(np.float32)
    path = models.export(BiLstm(), (torch.from_numpy(x[:1]),), tmp_path / "lstm.onnx", ["x"])
    model = onnx.load(path)
    ensure_node_names(model)
    lstm = next(n.name for n in model.graph.node if n.op_type == "LSTM")
    lowered = lower_dynamic(model, [lstm], reduce_range=native_reduce_range(), per_tensor=per_tensor)
    node = next(n for n in lowered.graph.node if n.op_type == "DynamicQuantizeLSTM")
    shapes = {i.name: list(i.dims) for i in lowered.graph.initializer}
    assert shapes[node.input[8]] == scale_shape and shapes[node.input[10]] == scale_shape
    want = OrtRunner(str(path)).predict({"x": x})["y"].reshape(8, -1)
    have = OrtRunner(lowered.SerializeToString()).predict({"x": x})["y"].reshape(8, -1)
    cosine = np.sum(want * have, 1) / np.linalg.norm(want, axis=1) / np.linalg.norm(have, axis=1)
    assert cosine.min() > 0.999, cosine
