"""The TensorRT target: its QDQ graph obeys TensorRT's rules, runs in ORT CPU, and builder settings
and the build-later hint are right. Engine builds run only where TensorRT and a GPU are present."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

from edgeq.backends.ort_providers import TENSORRT_EP, providers_unavailable, session_providers
from edgeq.backends.tensorrt import finish_later_hint, tensorrt_available
from edgeq.backends.tensorrt_config import builder_flags, graph_precisions, shape_profiles
from edgeq.errors import EdgeqError, InputError
from edgeq.frontend.torch_export import export_torch
from edgeq.graph import GraphIndex
from edgeq.measure.fidelity import cosine
from edgeq.passes.prepare import prepare_model
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.plan import ensure_node_names, plan_int8
from edgeq.quant.qdq import activation_format, rewrite_qdq
from edgeq.quant.trt_rules import check_tensorrt_placement
from edgeq.recipe import Calibration
from edgeq.runtime.session import OrtRunner
from edgeq.targets import TargetSpec, TensorRTSettings, load_target

TRT_READY, TRT_WHY = tensorrt_available()
needs_tensorrt = pytest.mark.skipif(not TRT_READY, reason=f"TensorRT unavailable: {TRT_WHY}")


class ResidualCnn(nn.Module):
    """Conv-BN-ReLU, Conv-BN, residual Add, pooled linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(y + self.bn2(self.conv2(y)))
        return self.head(y.mean((2, 3)))


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    cnn = ResidualCnn()
    for bn in (cnn.bn1, cnn.bn2):  # non-trivial statistics so BatchNorm folding matters
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    return {
        "mlp": (nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)), (16,)),
        "cnn": (cnn, (3, 8, 8)),
        "encoder": (nn.TransformerEncoder(layer, 1, enable_nested_tensor=False), (6, 16)),
    }


MODELS = _models()


def _compile(name: str, target: TargetSpec | None = None):
    """fp32 ONNX, TensorRT-target QDQ ONNX and calibration data for one reference model."""
    module, shape = MODELS[name]
    target = target or load_target("gpu-tensorrt")
    fp32, _ = export_torch(module.eval(), torch.randn(2, *shape), input_names=["x"], output_names=["y"])
    data = {"x": np.random.default_rng(0).standard_normal((64, *shape)).astype(np.float32)}
    prepared = prepare_model(fp32)
    ensure_node_names(prepared)
    scheme = target.quantization.int8
    plan = plan_int8(prepared, scheme)
    ranges = calibrate_ranges(
        prepared, plan.calibration_tensors(), data, Calibration(), activation_format(scheme)
    )
    return fp32, rewrite_qdq(prepared, plan, ranges, scheme), data


@pytest.fixture(scope="module", params=sorted(MODELS))
def compiled(request):
    return request.param, *_compile(request.param)


@pytest.fixture(scope="module")
def cnn_qdq():
    return _compile("cnn")[1]


def test_tensorrt_targets_load_with_tensorrt_rules():
    for name in ("gpu-tensorrt", "jetson-orin"):
        target = load_target(name)
        scheme = target.quantization.int8
        assert target.runtime == "tensorrt" and target.precision == "int8"
        assert scheme.activations.signed and scheme.activations.symmetric
        assert scheme.weights.per_channel and not scheme.weights.reduce_range
        assert not (scheme.output_qdq or scheme.fold_relu or scheme.quantize_bias)
        assert set(scheme.ops) == {"Conv", "Gemm", "MatMul", "Add"}
        assert target.tensorrt.batch.min <= target.tensorrt.batch.opt <= target.tensorrt.batch.max
    for name in ("gpu-tensorrt-fp16", "jetson-orin-fp16"):
        assert load_target(name).precision == "fp16"
    assert load_target("cpu-x86-avx2").tensorrt is None  # older targets keep their defaults


def test_qdq_graph_follows_tensorrt_rules(compiled):
    name, _, qdq, _ = compiled
    assert check_tensorrt_placement(qdq) == [], name
    assert graph_precisions(qdq) == {"int8"}


def test_qdq_graph_runs_in_ort_cpu_close_to_fp32(compiled):
    name, fp32, qdq, data = compiled
    want = OrtRunner(fp32.SerializeToString()).predict(data)["y"]
    have = OrtRunner(qdq.SerializeToString()).predict(data)["y"]
    assert cosine(want, have) >= 0.99, name


def test_residual_add_gets_qdq_on_both_inputs(cnn_qdq):
    index = GraphIndex(cnn_qdq.graph)
    adds = [
        n for n in cnn_qdq.graph.node if n.op_type == "Add" and all(not index.is_constant(t) for t in n.input)
    ]
    assert adds, "the CNN has a residual Add"
    for add in adds:
        assert [index.producer[t].op_type for t in add.input] == ["DequantizeLinear"] * 2


def _activation_q(model: onnx.ModelProto) -> onnx.NodeProto:
    index = GraphIndex(model.graph)
    return next(
        n for n in model.graph.node if n.op_type == "QuantizeLinear" and not index.is_constant(n.input[0])
    )


def _set_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(value, name))


def test_nonzero_zero_point_is_a_violation(cnn_qdq):
    broken = onnx.ModelProto.FromString(cnn_qdq.SerializeToString())
    _set_initializer(broken, _activation_q(broken).input[2], np.array(3, np.int8))
    assert any("zero point 3 is not 0" in v for v in check_tensorrt_placement(broken))


def test_per_channel_activation_scale_is_a_violation(cnn_qdq):
    broken = onnx.ModelProto.FromString(cnn_qdq.SerializeToString())
    q = _activation_q(broken)
    scale = numpy_helper.to_array(next(t for t in broken.graph.initializer if t.name == q.input[1]))
    _set_initializer(broken, q.input[1], np.full(3, scale, np.float32))
    q.attribute.append(helper.make_attribute("axis", 1))
    assert any("takes one scale per activation" in v for v in check_tensorrt_placement(broken))


def test_unquantized_residual_input_is_a_violation(cnn_qdq):
    broken = onnx.ModelProto.FromString(cnn_qdq.SerializeToString())
    index = GraphIndex(broken.graph)
    add = next(
        n
        for n in broken.graph.node
        if n.op_type == "Add" and index.producer[n.input[1]].op_type == "DequantizeLinear"
    )
    dq = index.producer[add.input[1]]
    add.input[1] = index.producer[dq.input[0]].input[0]  # skip its Q/DQ pair
    assert any(v.startswith(f"Add {add.name!r}") for v in check_tensorrt_placement(broken))


def test_wrong_weight_axis_and_int32_bias_are_violations():
    target = load_target("gpu-tensorrt")
    scheme = dataclasses.replace(target.quantization.int8, quantize_bias=True)
    quantization = dataclasses.replace(target.quantization, int8=scheme)
    _, qdq, _ = _compile("mlp", dataclasses.replace(target, quantization=quantization))
    violations = check_tensorrt_placement(qdq)
    assert any("dequantizes INT32" in v for v in violations)
    weights = {t.name for t in qdq.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    weight_dq = next(n for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights)
    for attr in weight_dq.attribute:
        if attr.name == "axis":
            attr.i = 1
    assert any("needs the output-channel axis 0" in v for v in check_tensorrt_placement(qdq))


def test_quantized_weights_with_float_activation_is_a_violation(cnn_qdq):
    broken = onnx.ModelProto.FromString(cnn_qdq.SerializeToString())
    index = GraphIndex(broken.graph)
    conv = next(n for n in broken.graph.node if n.op_type == "Conv")
    conv.input[0] = index.producer[index.producer[conv.input[0]].input[0]].input[0]
    assert any("has no Q/DQ" in v for v in check_tensorrt_placement(broken))


def test_builder_flags_follow_graph_precisions():
    gpu, fp16 = load_target("gpu-tensorrt"), load_target("gpu-tensorrt-fp16")
    assert builder_flags({"int8"}, gpu) == ["INT8", "FP16"]
    assert builder_flags(set(), fp16) == ["FP16"]
    no_half = dataclasses.replace(gpu, tensorrt=TensorRTSettings(fp16=False))
    assert builder_flags({"int8"}, no_half) == ["INT8"]
    assert builder_flags(set(), no_half) == []
    dla = dataclasses.replace(gpu, tensorrt=TensorRTSettings(fp16=False, dla_core=0))
    assert builder_flags({"int8"}, dla) == ["INT8", "FP16", "GPU_FALLBACK"]


def test_shape_profiles_cover_the_batch_range_and_ask_for_other_dynamic_axes():
    fp32, _, _ = _compile("mlp")
    profile = shape_profiles(fp32, load_target("gpu-tensorrt"))["x"]
    assert (profile.min, profile.opt, profile.max) == ((1, 16), (8, 16), (32, 16))
    dims = fp32.graph.input[0].type.tensor_type.shape.dim
    dims[1].Clear()
    dims[1].dim_param = "features"
    with pytest.raises(InputError, match="tensorrt.input_shapes.x"):
        shape_profiles(fp32, load_target("gpu-tensorrt"))
    shapes = {"x": {"min": [1, 4], "opt": [4, 16], "max": [8, 64]}}
    target = dataclasses.replace(load_target("gpu-tensorrt"), tensorrt=TensorRTSettings(input_shapes=shapes))
    assert shape_profiles(fp32, target)["x"].max == (8, 64)
    bad = dataclasses.replace(
        target, tensorrt=TensorRTSettings(input_shapes={"x": {"min": [9, 4], "opt": [4, 16], "max": [8, 64]}})
    )
    with pytest.raises(InputError, match="min <= opt <= max"):
        shape_profiles(fp32, bad)


def test_finish_later_hint_gives_build_engine_and_trtexec(tmp_path):
    _, qdq, _ = _compile("mlp")
    onnx.save(qdq, str(tmp_path / "model.onnx"))
    (tmp_path / "report.json").write_text(json.dumps({"recipe": {"target": "gpu-tensorrt"}}))
    hint = finish_later_hint(tmp_path)
    assert f"edgeq build-engine {tmp_path}/" in hint
    trtexec = hint.splitlines()[-1].strip()
    assert trtexec.startswith(f"trtexec --onnx={tmp_path}/model.onnx --saveEngine={tmp_path}/model.plan")
    for part in (
        "--int8",
        "--fp16",
        "--minShapes=x:1x16",
        "--optShapes=x:8x16",
        "--maxShapes=x:32x16",
        "--memPoolSize=workspace:2048M",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=",
    ):
        assert part in trtexec


def test_gpu_ort_providers_carry_the_builder_settings(tmp_path):
    target = load_target("gpu-ort")
    _, qdq, _ = _compile("mlp", target)
    why = providers_unavailable(target, ort.get_available_providers())
    assert why is None or "onnxruntime-gpu" in why
    onnx.save(qdq, str(tmp_path / "model.onnx"))
    providers = session_providers(target, tmp_path / "model.onnx", tmp_path / "engines")
    name, options = providers[0]
    assert name == TENSORRT_EP and providers[1:] == target.providers[1:]
    assert options["trt_int8_enable"] and options["trt_fp16_enable"]
    assert options["trt_profile_max_shapes"] == "x:32x16"
    assert options["trt_engine_cache_path"] == str(tmp_path / "engines")


@pytest.mark.skipif(TRT_READY, reason="checks the message on machines without TensorRT")
def test_build_engine_without_tensorrt_says_why_in_one_line(tmp_path):
    from edgeq.cli import build_engine_command

    with pytest.raises(EdgeqError) as raised:
        build_engine_command.main(args=[str(tmp_path)], standalone_mode=False)
    message = str(raised.value)
    assert raised.value.exit_code == 2 and "\n" not in message
    assert "needs TensorRT" in message and "NVIDIA GPU" in message


@pytest.mark.tensorrt
@needs_tensorrt
def test_engine_builds_and_agrees_with_fp32(tmp_path):
    from edgeq.backends.tensorrt import build_engine
    from edgeq.backends.tensorrt_runner import TensorRTRunner, measure_engines

    fp32, qdq, data = _compile("cnn")
    onnx.save(qdq, str(tmp_path / "model.onnx"))
    target = load_target("gpu-tensorrt")
    artifact = build_engine(tmp_path / "model.onnx", target, tmp_path)
    engine = TensorRTRunner(artifact.path)
    want = OrtRunner(fp32.SerializeToString()).predict(data)["y"]
    assert cosine(want, engine.predict(data)["y"]) >= 0.99
    assert "INT8" in json.loads((tmp_path / "model.plan.json").read_text())["flags"]
    entry = measure_engines(engine, engine, data, batch=8, warmup=2, rounds=2, seconds_per_round=0.05)
    assert entry.compiled.p50_ms > 0


def test_ort_integer_ops_are_violations(cnn_qdq):
    broken = onnx.ModelProto.FromString(cnn_qdq.SerializeToString())
    node = next(n for n in broken.graph.node if n.op_type == "Conv")
    node.op_type = "ConvInteger"
    assert any(v.startswith(f"ConvInteger {node.name!r}") for v in check_tensorrt_placement(broken))
