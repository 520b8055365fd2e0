"""The OpenVINO backend through the real CLI: a CNN, a transformer encoder and an LSTM compiled for
cpu-openvino, each IR loaded by OpenVINO in a fresh process and checked against ORT fp32; which layers
really run int8; bf16 where the CPU has it; a model OpenVINO cannot convert refused in one line."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

pytest.importorskip("openvino")

import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from edgeq.backends.openvino import compile_openvino, with_precision  # noqa: E402
from edgeq.backends.openvino_runner import X86_F16_FLAG, OpenVINORunner, core, cpu_precisions  # noqa: E402
from edgeq.cli import cli  # noqa: E402
from edgeq.data import split  # noqa: E402
from edgeq.passes.prepare import prepare_model  # noqa: E402
from edgeq.quant.calibrate import calibrate_ranges  # noqa: E402
from edgeq.quant.int4 import lower_to_int4_dequantize  # noqa: E402
from edgeq.quant.plan import plan_int8  # noqa: E402
from edgeq.quant.primitives import QuantFormat  # noqa: E402
from edgeq.quant.qdq import rewrite_qdq  # noqa: E402
from edgeq.recipe import Calibration  # noqa: E402
from edgeq.report.read import load_report  # noqa: E402
from edgeq.runtime.machine import lacking_isa  # noqa: E402
from edgeq.runtime.session import OrtRunner  # noqa: E402
from edgeq.targets import builtin_targets, load_target  # noqa: E402
from tests.bad_inputs.cli import assert_refused, run_edgeq  # noqa: E402
from tests.conftest import cpu_has_vnni  # noqa: E402
from tests.stream_models import HIDDEN, activity_streams, export_detector  # noqa: E402

SAMPLES = 48


class SmallCnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 32, 3, padding=1, stride=2)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(x.mean((2, 3)))


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.body = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(1)


class Tagger(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(16, 32, batch_first=True)
        self.head = torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0])


class Determinant(torch.nn.Module):
    """Det has an ONNX Runtime kernel and no OpenVINO conversion."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.det(x @ x.transpose(1, 2))


class SqueezeThenConv(torch.nn.Module):
    """`squeeze(1)` on a dynamic axis exports as If(dim == 1, Squeeze, Identity): outputs of two
    ranks, so the Conv after it has an input of unknown rank, which OpenVINO cannot convert."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.squeeze(1))


class OversizedPoolCnn(SmallCnn):
    """HF EfficientNet's pooler: `AvgPool2d(1280, ceil_mode=True)`, one window far larger than the map,
    which OpenVINO refuses to convert as given."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = torch.nn.AvgPool2d(1280, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(self.pool(x).flatten(1))


class LastTokenHead(torch.nn.Module):
    """CLIP's text pooling: `input_ids.view(-1, T)`, then the embedding at each row's argmax id. With
    T static the view is a no-op that OpenVINO's compile merges into the input's port, which then
    also answers to `/Reshape_output_0`."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(100, 16), torch.nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.view(-1, ids.shape[-1])
        last = ids.to(torch.int).argmax(-1)
        return self.head(self.embed(ids)[torch.arange(ids.shape[0]), last])


MODELS = {"cnn": (SmallCnn, (3, 16, 16)), "encoder": (Encoder, (8, 32)), "lstm": (Tagger, (10, 16))}


class LoudFirstLayer(torch.nn.Module):
    """A token-wise MLP whose first layer reads the raw input and the rest a LayerNorm's output: with
    inputs whose loudness spans 100x across samples, one static scale for the first layer's input
    rounds the quiet samples to a few levels; a scale per call and row (OpenVINO's dynamic
    quantization of a compressed-weight layer) does not. Only `/a/MatMul` is hurt."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(256, 1024, bias=False)
        self.norm = torch.nn.LayerNorm(1024)
        self.b, self.c = torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(torch.relu(self.norm(self.a(x))))))


def export(root: Path, name: str, module: torch.nn.Module, shape: tuple[int, ...]) -> tuple[Path, Path]:
    """`module` exported with a dynamic batch axis, and a calibration .npz of SAMPLES inputs."""
    torch.manual_seed(0)
    module = module.eval()
    path = root / f"{name}.onnx"
    torch.onnx.export(
        module,
        (torch.randn(1, *shape),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    calib = root / f"{name}.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((SAMPLES, *shape)).astype(np.float32))
    return path, calib


def fast_target(root: Path, shipped: str = "cpu-openvino", **openvino: object) -> Path:
    """A shipped target with latency timing cut short (tests time compiles, not models)."""
    spec = yaml.safe_load(builtin_targets()[shipped].read_text())
    spec["name"] = f"{shipped}-test"
    if openvino:
        spec["openvino"] |= openvino
    spec["latency"] = {"batch_sizes": [1, 8], "threads": 2, "warmup": 1, "rounds": 3}
    spec["latency"]["seconds_per_round"] = 0.02
    path = root / f"{shipped}-test.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def compile_cli(model: Path, calib: Path, target: Path, out: Path, *extra: str) -> dict:
    args = ["compile", str(model), "--calib", str(calib), "--target", str(target), "-o", str(out), "-q"]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "report.json").read_text())


LOAD_AND_RUN = """
import sys, numpy as np, openvino as ov
core = ov.Core()
xml, npz, precision, out = sys.argv[1:]
model = core.compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": precision})
assert str(model.get_property("INFERENCE_PRECISION_HINT")) == str(getattr(ov.Type, precision))
x = np.load(npz)["x"]
np.save(out, np.concatenate([model(x[i : i + 8])[0] for i in range(0, len(x), 8)]))
"""


def run_in_fresh_process(xml: Path, calib: Path, precision: str, root: Path) -> np.ndarray:
    """The IR's outputs on the calibration inputs, from plain OpenVINO in a new Python process."""
    out = root / "fresh.npy"
    command = [sys.executable, "-c", LOAD_AND_RUN, str(xml), str(calib), precision, str(out)]
    subprocess.run(command, check=True, timeout=120)
    return np.load(out)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, dict]]:
    """Each of MODELS compiled once for the test target: (model, calibration, report) by name."""
    root = tmp_path_factory.mktemp("openvino")
    target, done = fast_target(root, precisions=["bf16"]), {}
    for name, (module, shape) in MODELS.items():
        model, calib = export(root, name, module(), shape)
        done[name] = (model, calib, compile_cli(model, calib, target, root / f"{name}-out"))
    return done


@pytest.mark.parametrize("name", list(MODELS))
def test_an_openvino_compile_writes_an_ir_a_fresh_process_runs_like_fp32(
    compiled: dict, tmp_path: Path, name: str
) -> None:
    model, calib, report = compiled[name]
    artifact = report["artifact"]
    assert report["target"]["runtime"] == "openvino" and artifact["format"] == "openvino-ir"
    assert {"model.xml", "model.bin", "model.onnx"} <= set(artifact["files"])
    compiled = report["runtime_precision"]
    assert compiled["config"]["INFERENCE_PRECISION_HINT"] == compiled["inference_precision"]
    assert compiled["config"]["INFERENCE_NUM_THREADS"] == "2"
    for candidate in report["decision"]["candidates"]:
        assert set(candidate["speedups_vs_onnxruntime"]) == {"1", "8"}, candidate
    xml = model.parent / f"{name}-out" / "model.xml"
    fresh = run_in_fresh_process(xml, calib, compiled["inference_precision"], tmp_path)
    fp32 = OrtRunner(model).predict({"x": np.load(calib)["x"]})["y"]
    assert fresh.shape == fp32.shape
    assert cosine(fresh, fp32) > 0.99


def test_the_report_names_the_layers_that_really_run_int8(tmp_path: Path) -> None:
    model, calib = export(tmp_path, "cnn", SmallCnn(), MODELS["cnn"][1])
    target = fast_target(tmp_path, precisions=[])
    report = compile_cli(model, calib, target, tmp_path / "out", "--mode", "static", "--no-fallback")
    assert report["decision"]["chosen"].startswith("int8-static")
    compiled = report["runtime_precision"]
    assert compiled["inference_precision"] == "f32"
    assert compiled["matrix_layers"] == 3 and compiled["matrix_layers_int8"] == 3, compiled
    assert any("(Convolution)" in layer for layer in compiled["int8_layers"])
    read_back = load_report(tmp_path / "out" / "report.json")
    assert read_back.runtime_precision.matrix_layers_int8 == 3


def test_dynamic_int8_is_left_out_with_its_reason_and_bf16_is_a_candidate(compiled: dict) -> None:
    report = compiled["encoder"][2]
    names = [c["name"] for c in report["decision"]["candidates"]]
    assert not any("dynamic" in n for n in names)
    left_out = [w["message"] for w in report["warnings"] if w["source"] == "CandidateLeftOut"]
    assert any("int8-dynamic" in m and "com.microsoft" in m for m in left_out), left_out
    if "bf16" in cpu_precisions():
        (bf16,) = [c for c in report["decision"]["candidates"] if c["name"] == "bf16"]
        assert bf16["speedups"] and bf16["worst_cosine"] > 0.99
    else:
        assert any(m.startswith("bf16 left out") for m in left_out)


def test_f16_is_offered_on_x86_only_with_amx_fp16() -> None:
    """OpenVINO lists FP16 on any x86 CPU with AVX512-FP16, where its f16 ran slower than f32 and its
    int8-in-f16 700x slower: on x86 only AMX-FP16 makes f16 a candidate."""
    listed = "FP16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    assert ("f16" in cpu_precisions()) == (listed and not (x86 and lacking_isa([X86_F16_FLAG])))


def test_a_model_openvino_cannot_convert_is_refused_naming_the_op(tmp_path: Path) -> None:
    model, calib = export(tmp_path, "det", Determinant(), (4, 4))
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", fast_target(tmp_path), "-o", out, "-q", cwd=tmp_path
    )
    assert_refused(result, out, "OpenVINO", "cannot convert", "Det")


def test_a_model_whose_if_branches_on_shapes_is_refused_saying_so(tmp_path: Path) -> None:
    model, calib = tmp_path / "squeeze.onnx", tmp_path / "squeeze.npz"
    torch.onnx.export(
        SqueezeThenConv().eval(), (torch.randn(2, 1, 4, 16),), str(model), input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "b", 1: "s"}, "y": {0: "b"}}, opset_version=17,
        dynamo=False,
    )  # fmt: skip
    assert "If" in {node.op_type for node in onnx.load(str(model)).graph.node}
    np.savez(calib, x=np.random.default_rng(0).standard_normal((16, 1, 4, 16)).astype(np.float32))
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", fast_target(tmp_path), "-o", out, "-q", cwd=tmp_path
    )
    assert_refused(result, out, "OpenVINO", "cannot convert", "Conv get inputs of unknown rank", "If nodes")


def test_a_pool_openvino_cannot_read_as_given_compiles_as_edgeq_prepares_it(tmp_path: Path) -> None:
    model, calib = export(tmp_path, "pooled", OversizedPoolCnn(), MODELS["cnn"][1])
    with pytest.raises(Exception, match="AveragePool"):
        core().read_model(str(model))
    report = compile_cli(model, calib, fast_target(tmp_path), tmp_path / "out")
    warned = [w["message"] for w in report["warnings"] if w["source"] == "PreparedReference"]
    assert len(warned) == 1 and "AveragePool-17 failed: Kernel" in warned[0], report["warnings"]
    ir = OpenVINORunner(tmp_path / "out" / "model.xml", load_target("cpu-openvino").openvino)
    x = {"x": np.load(calib)["x"]}
    assert cosine(ir.predict(x)["y"], OrtRunner(model).predict(x)["y"]) > 0.99


def test_ports_keep_the_models_own_names_when_compiling_merges_aliases(tmp_path: Path) -> None:
    model = tmp_path / "last_token.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastTokenHead().eval(), (torch.zeros(2, 8, dtype=torch.long),), str(model),
            input_names=["input_ids"], output_names=["y"], dynamic_axes={"input_ids": {0: "b"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    (port,) = core().compile_model(str(model), "CPU").inputs
    assert len(port.get_names()) > 1, "OpenVINO no longer merges the alias: this test has lost its case"
    ids = {"input_ids": np.random.default_rng(0).integers(0, 100, (12, 8))}
    runner = OpenVINORunner(model, load_target("cpu-openvino").openvino, precision="f32")
    assert runner.input_names == ["input_ids"] and runner.output_names == ["y"]
    np.testing.assert_allclose(runner.predict(ids)["y"], OrtRunner(model).predict(ids)["y"], atol=1e-5)


def test_runtime_auto_measures_both_runtimes_and_keeps_the_fastest_within_budget(compiled: dict) -> None:
    model, calib, _ = compiled["cnn"]
    root = model.parent
    target = fast_target(root, "cpu-x86-avx512vnni")
    report = compile_cli(model, calib, target, root / "auto-out", "--runtime", "auto", "--mode", "static")
    assert report["target"]["name"] == "cpu-x86-avx512vnni-test+openvino"
    candidates = {c["name"]: c for c in report["decision"]["candidates"]}
    assert {"fp32", "int8-static", "openvino-fp32", "openvino-int8-static"} <= set(candidates)
    assert "per runtime" in report["decision"]["reason"]
    noise = {int(b): n for b, n in report["decision"]["timing_noise"].items()}
    mean = {n: float(np.exp(np.mean(np.log(list(c["speedups"].values()))))) for n, c in candidates.items()}
    mean["fp32"] = 1.0  # the reference itself: its second session's timing reads only the noise
    # per batch, the bar is the faster of the two runtimes' fp32
    floor = {int(b): max(1.0, s) for b, s in candidates["openvino-fp32"]["speedups"].items()}

    def clears(name: str) -> bool:  # not measurably slower than that bar at any batch, as selection reads
        speeds = candidates[name]["speedups"].items()
        at_least = 1.0 if name == "fp32" else 0.0  # the reference compiled: a shortfall is the noise
        return all(max(s, at_least) >= floor[int(b)] * (1 - noise[int(b)]) for b, s in speeds)

    eligible = [n for n, c in candidates.items() if n != "fp32" and c["within_budget"] and clears(n)]
    best = max(mean[n] for n in [*eligible, "fp32"])
    chosen, reason = report["decision"]["chosen"], report["decision"]["reason"]
    tradeoff = [w["message"] for w in report["warnings"] if w["source"] == "RuntimeTradeoff"]
    if tradeoff:  # nothing within budget beat both fp32s at every batch: the report says where
        assert "as fast as every runtime's fp32 at every batch" in reason and chosen in tradeoff[0], reason
    else:
        assert clears(chosen), report["decision"]
        assert mean[chosen] >= best * (1 - max(noise.values())) - 1e-9, report["decision"]
    chosen_format = "openvino-ir" if report["decision"]["chosen"].startswith("openvino-") else "onnx"
    assert report["artifact"]["format"] == chosen_format


def test_int4_weight_blocks_stay_4_bit_in_the_ir_and_run_as_compressed_layers(tmp_path: Path) -> None:
    model, calib = export(tmp_path, "encoder", Encoder(), MODELS["encoder"][1])
    fp32 = onnx.shape_inference.infer_shapes(onnx.load(model))
    artifact = compile_openvino(with_precision(lower_to_int4_dequantize(fp32), "f32", 32), tmp_path / "ir")
    constants = {str(op.get_output_element_type(0)) for op in core().read_model(str(artifact.path)).get_ops()}
    assert "<Type: 'int4_t'>" in constants, constants
    runner = OpenVINORunner(artifact.path, load_target("cpu-openvino").openvino)
    assert runner.dynamic_group == 32 and runner.config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == "32"
    layers = runner.layer_precisions()["layer_precisions"]
    assert layers["FullyConnected"].get("i4", 0) == 4, layers  # the feed-forward MatMuls (unprepared graph)
    x = {"x": np.load(calib)["x"]}
    assert cosine(runner.predict(x)["y"], OrtRunner(model).predict(x)["y"]) > 0.98


def test_bits_4_on_openvino_measures_int4_and_int8_weight_candidates(tmp_path: Path) -> None:
    model, calib = export(tmp_path, "encoder", Encoder(), MODELS["encoder"][1])
    target = fast_target(tmp_path, precisions=[])
    report = compile_cli(model, calib, target, tmp_path / "out", "--bits", "4")
    candidates = {c["name"]: c for c in report["decision"]["candidates"]}
    assert {"int8-static-smooth", "int8-weights", "int4-weights"} <= set(candidates), list(candidates)
    for name in ("int8-weights", "int4-weights"):
        assert candidates[name]["speedups"] and candidates[name]["worst_cosine"] > 0.95, candidates[name]
    assert candidates["int4-weights"]["size_ratio"] < candidates["int8-weights"]["size_ratio"]
    out = tmp_path / "analyze"
    refused = run_edgeq(
        "compile", model, "--calib", calib, "--target", target, "--analyze", "-q", "-o", out, cwd=tmp_path
    )
    assert_refused(refused, out, "OpenVINO", "MatMulNBits")


@pytest.mark.skipif(
    not cpu_has_vnni(),
    reason="without VNNI OpenVINO's INT8 runs slower than its f32 (AVX2 Zen 3: 0.85x), so no repair is tried",
)
def test_a_static_candidate_keeps_its_hurt_layer_as_int8_weights_quantized_per_call(tmp_path: Path) -> None:
    """The repair on OpenVINO keeps a static candidate's hurt MatMul at int8 weights, its input
    quantized by OpenVINO per call and row: the budget holds and the layer still runs int8."""
    model, calib = export(tmp_path, "loud", LoudFirstLayer(), (16, 256))
    quiet_to_loud = 10 ** np.linspace(-2, 0, SAMPLES, dtype=np.float32)[:, None, None]
    np.savez(calib, x=np.load(calib)["x"] * quiet_to_loud)
    bf16 = "bf16" in cpu_precisions()
    target = fast_target(tmp_path, precisions=["bf16"] if bf16 else [])
    report = compile_cli(model, calib, target, tmp_path / "out", "--mode", "static")
    candidates = {c["name"]: c for c in report["decision"]["candidates"]}
    assert not candidates["int8-static-smooth"]["within_budget"], "one static scale breaks the first layer"
    repaired = {name: c for name, c in candidates.items() if c["repair"]}
    held = repaired["int8-static-smooth-dyn1"]
    assert held["within_budget"] and held["repair"]["kept_layers"] == ["/a/MatMul"], held
    assert held["repair"]["kept_as"] == "dynamic INT8"
    if bf16:  # the base's bf16 twin gets the repair's bf16 twin, measured beside it
        twin = repaired["int8-static-smooth-dyn1-bf16"]
        assert twin["repair"]["kept_layers"] == ["/a/MatMul"] and twin["speedups"], twin
    assert report["decision"]["chosen"] in repaired, report["decision"]["reason"]
    compiled = report["runtime_precision"]
    assert compiled["dynamic_quantization_group_size"] == 64
    assert "/a/MatMul (FullyConnected)" in compiled["int8_layers"], compiled["int8_layers"]
    assert compiled["matrix_layers_int8"] == 3


def test_attention_scores_run_int8_from_signed_symmetric_q_and_k(tmp_path: Path) -> None:
    """On OpenVINO, Q·Kᵀ is quantized with signed symmetric inputs and the softmax's ·V left float:
    OpenVINO then runs the scores in i8, fused with the softmax (u8 inputs kept it all in float)."""
    path, calib = export(tmp_path, "encoder", Encoder(), MODELS["encoder"][1])
    model, scheme = prepare_model(onnx.load(path)), load_target("cpu-openvino").quantization.int8
    plan = plan_int8(model, scheme)
    scores = [d.name for d in plan.decisions if d.reason.startswith("attention scores")]
    values = [d for d in plan.decisions if d.reason.startswith("activation x activation MatMul")]
    assert len(scores) == len(values) == 2, "one Q·Kᵀ (int8) and one ·V (float) per layer"
    nodes = {n.name: n for n in model.graph.node}
    assert {t for name in scores for t in nodes[name].input} == plan.signed
    settings, fmt = Calibration(method="minmax"), QuantFormat(signed=False, symmetric=False)
    data = {"x": np.load(calib)["x"]}
    ranges = calibrate_ranges(model, plan.calibration_tensors(), data, settings, fmt)
    qdq = rewrite_qdq(model, plan, ranges, scheme)
    zero_points = {i.name: i.data_type for i in qdq.graph.initializer}
    signed = [n for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in plan.signed]
    assert len(signed) == 4 and {zero_points[n.input[2]] for n in signed} == {onnx.TensorProto.INT8}
    xml = compile_openvino(qdq, tmp_path / "ir").path
    runtime = core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ops = [(op.get_rt_info(), op.inputs()) for op in runtime.get_runtime_model().get_ordered_ops()]
    products = [  # the scores' MatMul (fused with the softmax into a Subgraph, or alone) on two i8 inputs
        info["layerType"].astype(str)
        for info, inputs in ops
        if info["layerType"].astype(str) in ("Subgraph", "MatMul")
        and info["runtimePrecision"].astype(str) == "i8"
        and [i.get_element_type().get_type_name() for i in inputs[:2]] == ["i8", "i8"]
    ]
    assert len(products) == len(scores), [info["layerType"].astype(str) for info, _ in ops]
    fp32 = OrtRunner(path).predict(data)["y"]
    floor = 0.99 if cpu_has_vnni() else 0.98  # without VNNI, u8 x s8 pair sums in int16 saturate (0.988)
    assert cosine(OpenVINORunner(xml, load_target("cpu-openvino").openvino).predict(data)["y"], fp32) > floor


def test_a_streaming_model_compiles_and_its_ir_carries_the_state_like_a_frame_loop(tmp_path: Path) -> None:
    """A GRU detector with its state as input (batch on axis 1) and output: calibrated, evaluated and
    timed stream by stream on OpenVINO; the IR says how it is fed, so a runner on it alone carries
    the state frame by frame as a plain OpenVINO loop does."""
    detector = export_detector(tmp_path / "detector.onnx")
    x, _ = activity_streams(12, 20, seed=5)
    np.savez(tmp_path / "streams.npz", x=x)
    recipe = {
        "target": str(fast_target(tmp_path)),
        "calib": "streams.npz",
        "inputs": {"x": {"batch_axis": 0}, "h": {"batch_axis": 1, "state_from": "hn"}},
        "task": {"name": "streams", "options": {"threshold": 0.5}},
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = run_edgeq("compile", detector, "--recipe", "recipe.yaml", "-o", "out", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["feeding"]["streams"] is True and "per frame" in report["feeding"]["latency"]
    assert all(c["speedups"] for c in report["decision"]["candidates"]), "every candidate was timed"
    evaluation = split({"x": x}, 12, 0.5)[1]["x"]  # the held-out half the report scored
    xml = tmp_path / "out" / "model.xml"
    runner = OpenVINORunner(xml, load_target("cpu-openvino").openvino, batch_size=4)
    assert runner.roles.inputs["h"].state_from == "hn" and runner.roles.inputs["h"].batch_axis == 1
    streamed = runner.predict({"x": evaluation, "h": np.zeros((6, 1, HIDDEN), np.float32)})["y"][..., 0]
    np.testing.assert_allclose(streamed, ir_frame_loop(xml, evaluation, runner.config), atol=1e-5)
    fp32 = OrtRunner(detector, roles=runner.roles).predict(
        {"x": evaluation, "h": np.zeros((6, 1, HIDDEN), np.float32)}
    )["y"][..., 0]
    metrics = {m["name"]: m for m in report["accuracy"]["task"]["metrics"]}
    agreement = 100 * ((streamed > 0.5) == (fp32 > 0.5)).mean()
    assert metrics["decision_agreement"]["compiled"] == pytest.approx(agreement)
    assert metrics["positive_frames"]["compiled"] == pytest.approx(100 * (streamed > 0.5).mean())


def ir_frame_loop(xml: Path, x: np.ndarray, config: dict[str, str]) -> np.ndarray:
    """The IR's probabilities [streams, frames], one stream and one frame per plain OpenVINO call."""
    model = core().compile_model(str(xml), "CPU", config)
    probabilities = np.zeros(x.shape[:2], np.float32)
    for stream in range(len(x)):
        h = np.zeros((1, 1, HIDDEN), np.float32)
        for frame in range(x.shape[1]):
            outputs = model({"x": x[stream, frame][None], "h": h})
            y, h = outputs[model.output("y")], outputs[model.output("hn")]
            probabilities[stream, frame] = y[0, 0]
    return probabilities
