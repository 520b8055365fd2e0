"""Backends are chosen by the target's runtime and honour its providers: real sessions, real artifacts.

Where the target's providers are missing, the backend says which and how to get them, and no session
quietly runs on the CPU instead; a provider list can be injected to exercise the present branch."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest

from edgeq.backends.ort_providers import TENSORRT_EP, providers_unavailable, session_providers
from edgeq.backends.registry import BACKENDS, ENGINE_CACHE, OnnxRuntimeBackend, backend_for
from edgeq.backends.tensorrt_config import fp32_baseline
from edgeq.errors import InputError
from edgeq.runtime.session import CPU_ONLY, OrtRunner
from edgeq.targets import RUNTIMES, builtin_targets, load_target

GPU_ORT = load_target("gpu-ort")
GPU_HERE = providers_unavailable(GPU_ORT, ort.get_available_providers()) is None


@pytest.fixture(scope="module")
def mlp(reference_models) -> onnx.ModelProto:
    return onnx.load(str(reference_models["mlp"][0]))


def test_every_runtime_has_a_backend_and_every_shipped_target_finds_its_own() -> None:
    assert set(BACKENDS) == set(RUNTIMES) == {"onnxruntime", "tensorrt", "openvino"}
    for name in builtin_targets():
        target = load_target(name)
        assert backend_for(target).runtime == target.runtime, name


def test_a_cpu_target_session_runs_on_exactly_its_providers(mlp, tmp_path: Path) -> None:
    target = load_target("cpu-x86-avx2")
    backend = backend_for(target)
    assert backend.unavailable(target) is None and backend.measures_latency
    artifact = backend.compile(mlp, target, tmp_path)
    assert [f.name for f in artifact.files] == ["model.onnx", "model.ort"]
    for reference in (False, True):
        runner = backend.session(artifact.path, target, reference=reference)
        assert runner.session.get_providers() == target.providers == ["CPUExecutionProvider"]


@pytest.mark.skipif(GPU_HERE, reason="checks the refusal where ONNX Runtime has no GPU providers")
def test_gpu_ort_without_its_providers_is_refused_naming_them(mlp, tmp_path: Path) -> None:
    backend = backend_for(GPU_ORT)
    why = backend.unavailable(GPU_ORT)
    assert why is not None and "\n" not in why
    for word in (
        "gpu-ort",
        "TensorrtExecutionProvider, CUDAExecutionProvider",
        "onnxruntime-gpu",
        ort.__version__,
    ):
        assert word in why
    artifact = backend.compile(mlp, GPU_ORT, tmp_path)  # writing it needs no GPU
    with pytest.raises(InputError) as refused:
        backend.session(artifact.path, GPU_ORT)
    assert str(refused.value) == why
    fidelity = backend.session(artifact.path, GPU_ORT, providers=CPU_ONLY)
    assert fidelity.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.skipif(not GPU_HERE, reason="needs onnxruntime-gpu with the TensorRT and CUDA providers")
def test_gpu_ort_runs_on_its_providers_in_order(mlp, tmp_path: Path) -> None:
    backend = backend_for(GPU_ORT)
    assert backend.unavailable(GPU_ORT) is None
    artifact = backend.compile(mlp, GPU_ORT, tmp_path)
    assert backend.session(artifact.path, GPU_ORT).session.get_providers() == GPU_ORT.providers


@pytest.mark.filterwarnings("ignore:Specified provider")  # ORT's own warning before it falls back
def test_present_providers_open_the_target_list_in_order_with_tensorrt_options(mlp, tmp_path: Path) -> None:
    backend = OnnxRuntimeBackend(available=GPU_ORT.providers)
    assert backend.unavailable(GPU_ORT) is None
    artifact = backend.compile(mlp, GPU_ORT, tmp_path)
    assert artifact.files == [tmp_path / "model.onnx"] and onnx.load(str(artifact.path)).graph.node
    providers = session_providers(GPU_ORT, artifact.path, tmp_path / ENGINE_CACHE)
    (name, options), *rest = providers
    assert name == TENSORRT_EP and rest == GPU_ORT.providers[1:]
    assert not options["trt_int8_enable"] and options["trt_fp16_enable"]  # fp32 graph, fp16 allowed
    assert options["trt_profile_min_shapes"] == "x:1x32" and options["trt_profile_max_shapes"] == "x:32x32"
    assert options["trt_max_workspace_size"] == 2048 << 20
    assert options["trt_engine_cache_path"] == str(tmp_path / ENGINE_CACHE)
    baseline = session_providers(fp32_baseline(GPU_ORT), artifact.path, tmp_path)[0][1]
    assert not baseline["trt_fp16_enable"] and not baseline["trt_int8_enable"]  # fp32 compared against
    assert baseline == options | {"trt_fp16_enable": False, "trt_engine_cache_path": str(tmp_path)}
    if not GPU_HERE:  # told the providers are there, ONNX Runtime still cannot fall back quietly
        with pytest.raises(
            InputError, match="could not enable TensorrtExecutionProvider, CUDAExecutionProvider"
        ):
            backend.session(artifact.path, GPU_ORT)


def test_a_cpu_only_target_needs_no_tensorrt_options(tmp_path: Path) -> None:
    target = load_target("cpu-arm64")
    assert session_providers(target, tmp_path / "never-read.onnx", tmp_path) == ["CPUExecutionProvider"]


def test_the_missing_provider_message_says_where_to_get_each() -> None:
    cpu = load_target("cpu-x86-avx2")
    other = dataclasses.replace(
        cpu, providers=["OpenVINOExecutionProvider", "XnnpackExecutionProvider", "CPUExecutionProvider"]
    )
    why = providers_unavailable(other, CPU_ONLY)
    assert why is not None
    assert "needs OpenVINOExecutionProvider, XnnpackExecutionProvider" in why
    assert "pip install onnxruntime-openvino" in why
    assert "an ONNX Runtime build with XnnpackExecutionProvider" in why
    assert "tensorrt" not in why
    assert providers_unavailable(cpu, CPU_ONLY) is None


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is here")
@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_session_never_falls_back_to_the_cpu_silently(reference_models) -> None:
    model = reference_models["mlp"][0]
    with pytest.raises(InputError, match="could not enable CUDAExecutionProvider .*not running on CPU"):
        OrtRunner(model, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


def test_tensorrt_backend_writes_the_qdq_graph_and_reads_fidelity_on_the_cpu(mlp, tmp_path: Path) -> None:
    target = load_target("gpu-tensorrt")
    backend = backend_for(target)
    assert backend.unavailable(target) is None and not backend.measures_latency
    artifact = backend.compile(mlp, target, tmp_path)
    assert artifact.format == "onnx" and artifact.files == [tmp_path / "model.onnx"]
    assert backend.session(artifact.path, target).session.get_providers() == ["CPUExecutionProvider"]
