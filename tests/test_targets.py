"""`native` resolves to the shipped CPU target this machine's ISA calls for; a target file names a known
runtime and ONNX Runtime providers that end with the CPU, or is refused in one line."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import yaml

from edgeq.errors import InputError
from edgeq.targets import load_target
from tests.bad_inputs import make
from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.tiny_models import brief_target, tiny_calib, tiny_mlp


def _cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def test_native_target_follows_the_cpu_flags() -> None:
    flags = _cpu_flags()
    spec = load_target("native")
    if platform.machine() in ("aarch64", "arm64"):
        assert spec.name == "cpu-arm64"
    elif flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        assert spec.name == "cpu-x86-avx512vnni" and not spec.quantization.int8.weights.reduce_range
    else:
        assert spec.name == "cpu-x86-avx2" and spec.quantization.int8.weights.reduce_range


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"runtime": "tflite"}, ["runtime", "'tflite' is not allowed", "'onnxruntime', 'tensorrt'"]),
        ({"runtime": "onnxrutime"}, ["'onnxrutime' is not allowed", "'onnxruntime', 'tensorrt'"]),
        (
            {"providers": ["CPUExecutionProvder"]},
            ["providers: ONNX Runtime has no 'CPUExecutionProvder'", "CUDAExecutionProvider"],
        ),
        ({"providers": []}, ["providers must end with CPUExecutionProvider"]),
        (
            {"providers": ["CPUExecutionProvider", "CUDAExecutionProvider"]},
            ["providers must end with CPUExecutionProvider"],
        ),
        ({"providers": ["CPUExecutionProvider"] * 2}, ["providers lists CPUExecutionProvider twice"]),
        ({"runtime": "tensorrt"}, ["providers must be [] for runtime tensorrt"]),
        ({"runtime": "openvino"}, ["providers must be [] for runtime openvino"]),
        ({"runtime": "openvino", "providers": []}, ["an openvino runtime needs its openvino: settings"]),
        ({"runtimes": ["openvino", "onnxruntime"]}, ["runtimes must start with the target's runtime"]),
        ({"runtimes": ["onnxruntime", "openvino"]}, ["an openvino runtime needs its openvino: settings"]),
    ],
)
def test_a_bad_runtime_or_provider_list_is_refused_in_one_line(
    tmp_path: Path, change: dict, words: list
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(make.FAST_TARGET) | change))
    with pytest.raises(InputError) as refused:
        load_target(path)
    message = str(refused.value)
    assert message.startswith("target bad.yaml") and "\n" not in message
    for word in words:
        assert word in message


def test_the_compile_command_exits_2_on_an_unknown_runtime(reference_models, tmp_path: Path) -> None:
    model, calib = reference_models["mlp"]
    target = tmp_path / "bad.yaml"
    target.write_text(make.FAST_TARGET.replace("runtime: onnxruntime", "runtime: tflite"))
    out = tmp_path / "out"
    result = run_edgeq("compile", model, "--calib", calib, "--target", target, "-q", "-o", out, cwd=tmp_path)
    assert_refused(result, out, "runtime", "'tflite'", "'onnxruntime', 'tensorrt'")


def test_a_target_whose_isa_this_cpu_lacks_is_measured_with_a_warning(tmp_path: Path) -> None:
    """Latency timed on a CPU without the target's instruction sets is this machine's: the report
    says which flags are missing, and a target the CPU fully has gets no such warning."""
    target = brief_target(tmp_path / "t.yaml")
    foreign = tmp_path / "foreign.yaml"
    have = load_target("native").isa  # what this CPU has, by how `native` is chosen
    isa = ", ".join([*have, "avx10_9"])
    foreign.write_text(target.read_text().replace("name: cpu-brief", f"name: cpu-future\nisa: [{isa}]"))
    model, calib = tiny_mlp(tmp_path / "m.onnx"), tiny_calib(tmp_path / "c.npz")
    messages = {}
    for spec in (target, foreign):
        out = tmp_path / spec.stem
        result = run_edgeq(
            "compile", model, "--calib", calib, "--target", spec, "-o", out, "-q", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        report = json.loads((out / "report.json").read_text())
        messages[spec.stem] = [w["message"] for w in report["warnings"] if w["source"] == "ForeignCpu"]
    assert messages["t"] == []
    (message,) = messages["foreign"]
    assert "lacks avx10_9, which target cpu-future declares" in message
    assert not any(flag in message for flag in have), message
