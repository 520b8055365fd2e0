"""QAT with Brevitas: plan handling, the QCDQ pattern it exports, and ORT-vs-torch parity."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from edgeq.errors import InputError
from edgeq.qat import (
    check_plan,
    compare_simulated_measured,
    quantize_aware_train,
    require_brevitas,
    uniform_plan,
)
from edgeq.runtime.session import OrtRunner

needs_brevitas = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("brevitas", "onnxoptimizer")),
    reason="needs the qat extra: pip install 'edgeq[qat]'",
)
# Torch fake-quant and ORT's Q/DQ compute the same grid; a float rounding tie flipped by a
# different summation order moves one activation by one step, well under this bound.
PARITY_ATOL = 1e-3


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.body = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)))


def _train(model: nn.Module, plan: dict, target: str = "cpu-x86-avx2", steps: int = 5):
    torch.manual_seed(0)
    inputs, goal = torch.rand(64, 1, 6, 6), torch.randn(64, 4)

    def step(m: nn.Module, i: int) -> torch.Tensor:
        rows = slice(16 * (i % 4), 16 * (i % 4 + 1))
        return nn.functional.mse_loss(m(inputs[rows]), goal[rows])

    return quantize_aware_train(
        model.eval(),
        plan,
        calib_batches=[inputs[:32], inputs[32:]],
        steps=steps,
        lr=1e-3,
        train_step=step,
        target=target,
        input_names=["x"],
        output_names=["y"],
        progress=False,
    ), inputs


def _by_output(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


@needs_brevitas
def test_qat_export_runs_in_ort_and_matches_fake_quant(tmp_path):
    torch.set_num_threads(1)
    model = Tiny()
    result, inputs = _train(model, uniform_plan(model, 4))
    assert len(result.losses) == 5
    result.export_onnx(tmp_path / "qat.onnx")
    runner = OrtRunner(tmp_path / "qat.onnx", threads=1)
    data = {"x": inputs.numpy()}
    measured = runner.predict(data)["y"]  # 64 rows in one batch: the batch axis is dynamic
    simulated = result.predictor().predict(data)["y"]
    assert np.abs(measured - simulated).max() <= PARITY_ATOL
    assert runner.session.run(None, {"x": inputs[:3].numpy()})[0].shape == (3, 4)


@needs_brevitas
def test_exported_pattern_is_int8_weights_clip_dq_per_channel(tmp_path):
    model = Tiny()
    result, _ = _train(model, {"stem.0": 4, "body.2": 8, "head": "fp32"}, steps=1)
    exported = result.export_onnx(tmp_path / "qat.onnx")
    producers, inits = _by_output(exported), {i.name: i for i in exported.graph.initializer}
    gemms = [n for n in exported.graph.node if n.op_type in ("Conv", "Gemm")]
    assert [n.op_type for n in gemms] == ["Conv", "Gemm", "Gemm"]
    for node, low in zip(gemms[:2], (-7, -63), strict=True):  # 4-bit; 8-bit at reduce_range 7-bit
        weight_dq = producers[node.input[1]]
        clip = producers[weight_dq.input[0]]
        assert weight_dq.op_type == "DequantizeLinear" and clip.op_type == "Clip"
        assert next(a.i for a in weight_dq.attribute if a.name == "axis") == 0
        assert inits[clip.input[0]].data_type == onnx.TensorProto.INT8
        assert int(numpy_helper.to_array(inits[clip.input[1]])) == low
        act_q = producers[producers[node.input[0]].input[0]]
        assert act_q.op_type == "QuantizeLinear"
        assert inits[act_q.input[2]].data_type == onnx.TensorProto.UINT8  # u8 asymmetric (AVX2)
    head = gemms[2]
    assert head.input[1] in inits and inits[head.input[1]].data_type == onnx.TensorProto.FLOAT
    assert producers[head.input[0]].op_type == "Relu"  # fp32 layer: no Q/DQ on its input


@needs_brevitas
def test_symmetric_target_gives_int8_activations_with_zero_point_0(tmp_path):
    model = Tiny()
    result, _ = _train(model, uniform_plan(model, 8), target="gpu-ort", steps=0)
    exported = result.export_onnx(tmp_path / "qat.onnx")
    inits = {i.name: i for i in exported.graph.initializer}
    for node in exported.graph.node:
        if node.op_type == "QuantizeLinear":
            zero = inits[node.input[2]]
            assert zero.data_type == onnx.TensorProto.INT8
            assert not numpy_helper.to_array(zero).any()


@needs_brevitas
def test_fp32_layers_stay_float_and_batchnorm_is_folded():
    from brevitas.nn import QuantConv2d, QuantLinear

    model = Tiny()
    result, _ = _train(model, {"stem.0": 8, "body.2": "fp32", "head": 4}, steps=0)
    assert isinstance(result.model.stem[0], QuantConv2d) and isinstance(result.model.head, QuantLinear)
    assert isinstance(result.model.stem[1], nn.Identity)  # BatchNorm folded into the conv first
    assert type(result.model.body[2]) is nn.Linear
    assert torch.equal(result.model.body[2].weight, model.body[2].weight)
    assert result.float_layers == {"body.2": "fp32 in the precision plan"}


def test_plan_rejects_unknown_layers_recurrent_layers_and_bad_bits():
    model = nn.Sequential(nn.Linear(2, 4), nn.LSTM(4, 4))
    assert uniform_plan(model, 8) == {"0": 8}
    assert uniform_plan(model, 4, skip=("0",)) == {"0": "fp32"}
    for plan, message in [({"9": 8}, "does not have"), ({"1": 8}, "recurrent"), ({"0": 16}, "2..8")]:
        with pytest.raises(InputError, match=message):
            check_plan(model, plan)


def test_missing_brevitas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "brevitas", None)
    with pytest.raises(InputError, match=r"pip install 'edgeq\[qat\]'"):
        require_brevitas()


def test_compare_flags_a_gap_beyond_tolerance():
    class Fixed:
        def __init__(self, value: float) -> None:
            self.value = value

        def predict(self, data):
            return {"y": np.full(2, self.value)}

    def metric(predictor, data):
        return float(predictor.predict(data)["y"].mean())

    report = compare_simulated_measured(Fixed(90.0), Fixed(89.0), {}, metric, tolerance=0.5)
    assert report == {"simulated": 90.0, "measured": 89.0, "gap": 1.0, "tolerance": 0.5, "flagged": True}
    assert not compare_simulated_measured(Fixed(90.0), Fixed(89.8), {}, metric, 0.5)["flagged"]
