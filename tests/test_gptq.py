"""GPTQ rounding of 4-bit weights, A/B against round-to-nearest on the compiled artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import edgeq
from tests.conftest import FAST_TARGET


class CorrelatedMLP(nn.Module):
    """A fixed mixing layer makes the next layers' inputs strongly correlated (as real activations
    are), which is where rounding each weight alone costs the most."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = nn.Linear(16, 256, bias=False)
        self.hidden, self.out = nn.Linear(256, 256), nn.Linear(256, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(torch.tanh(self.mix(x)))))


@pytest.fixture(scope="module")
def model_and_calib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gptq")
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    path = folder / "model.onnx"
    torch.onnx.export(
        CorrelatedMLP().eval(),
        (x[:1],),
        path,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        dynamo=False,
    )
    np.savez(folder / "calib.npz", x=x.numpy())
    return path, folder / "calib.npz"


def _uniform_int4(model, calib, out, gptq: bool):
    report = edgeq.compile(
        model,
        out=out,
        calib=calib,
        target=FAST_TARGET,
        bits=4,
        budget={"min_cosine": 0.5},
        methods={"gptq": gptq},
        runs=False,
    ).report
    return {c.name: c for c in report.decision.candidates}["int4-uniform"], report


def test_gptq_rounding_measures_closer_to_fp32_than_round_to_nearest(model_and_calib, tmp_path):
    model, calib = model_and_calib
    nearest, _ = _uniform_int4(model, calib, tmp_path / "rtn", gptq=False)
    gptq, report = _uniform_int4(model, calib, tmp_path / "gptq", gptq=True)
    assert "gptq-inputs" in {s.name for s in report.stages}
    assert gptq.size_ratio == pytest.approx(nearest.size_ratio, rel=0.01), "same format, same bytes"
    assert 1 - gptq.worst_cosine < 0.7 * (1 - nearest.worst_cosine), (gptq.worst_cosine, nearest.worst_cosine)
