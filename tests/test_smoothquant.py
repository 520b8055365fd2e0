"""SmoothQuant scale migration, A/B against plain INT8 on the compiled artifact of a small
transformer block whose LayerNorm writes a few outlier channels (as pretrained encoders do)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgeq
from edgeq.quant.smoothquant import smooth_matmul_inputs
from edgeq.runtime.session import OrtRunner
from tests.conftest import FAST_TARGET


class OutlierBlock(nn.Module):
    """LayerNorm with three channels scaled 40x, a residual MLP on it, and a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = nn.LayerNorm(64)
        self.up, self.down, self.head = nn.Linear(64, 256), nn.Linear(256, 64), nn.Linear(64, 32)
        with torch.no_grad():
            self.norm.weight[[3, 17, 40]] = 40.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        h = h + self.down(torch.relu(self.up(h)))
        return self.head(h)


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smooth")
    x = torch.randn(128, 8, 64, generator=torch.Generator().manual_seed(1))
    path = folder / "model.onnx"
    torch.onnx.export(
        OutlierBlock().eval(),
        (x[:1],),
        path,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    np.savez(folder / "calib.npz", x=x.numpy())
    return path, folder / "calib.npz", x.numpy()


def test_smoothing_keeps_the_function(block):
    model, _, x = block
    fp32 = onnx.shape_inference.infer_shapes(onnx.load(model))  # as prepared: typed tensors
    smoothed = smooth_matmul_inputs(fp32, {"x": x}, samples=64)
    assert sum(n.op_type == "Mul" for n in smoothed.graph.node) > sum(
        n.op_type == "Mul" for n in fp32.graph.node
    )
    want = OrtRunner(fp32.SerializeToString()).predict({"x": x})["y"]
    have = OrtRunner(smoothed.SerializeToString()).predict({"x": x})["y"]
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4)


def test_smoothquant_candidate_measures_closer_to_fp32_than_plain_int8(block, tmp_path):
    model, calib, _ = block
    report = edgeq.compile(
        model,
        out=tmp_path / "out",
        calib=calib,
        target=FAST_TARGET,
        mode="static",
        methods={"smoothquant": True},
        budget={"min_cosine": 0.5},
        runs=False,
    ).report
    candidates = {c.name: c for c in report.decision.candidates}
    plain, smooth = candidates["int8-static"], candidates["int8-static-smooth"]
    assert 1 - smooth.worst_cosine < 0.5 * (1 - plain.worst_cosine), (smooth.worst_cosine, plain.worst_cosine)
