"""Backends chosen by the target's `runtime`, a closed set: each checks, compiles and opens sessions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import onnx
import onnxruntime as ort

from edgeq.backends.artifact import Artifact
from edgeq.backends.openvino import OpenVINOBackend, metadata, tagged
from edgeq.backends.ort_cpu import compile_ort_cpu
from edgeq.backends.ort_providers import providers_unavailable, session_providers
from edgeq.backends.tensorrt_config import fp32_baseline
from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.runtime.session import CPU_ONLY, OrtRunner, Provider
from edgeq.targets import RUNTIMES as RUNTIMES  # the closed set, kept importable from here
from edgeq.targets import Runtime, TargetSpec

ENGINE_CACHE = "trt-engines"  # beside the artifact: where the TensorRT EP keeps the engines it builds


class Backend(Protocol):
    """What the pipeline needs of a runtime.

    The pipeline asks `unavailable(target)` before compiling. A message: stop with it (InputError,
    exit 2), unless the user asked to compile anyway; then `compile` as usual, open every session
    (fp32 and artifact) as `session(path, target, providers=CPU_ONLY)` for fidelity, time none of
    them and mark every latency "not measured on target". A session on providers other than the
    target's is for fidelity only: its timings are never reported as the target's."""

    runtime: Runtime
    measures_latency: bool
    """False where latency can only be measured later, on the target itself (TensorRT engines)."""

    def unavailable(self, target: TargetSpec) -> str | None:
        """Why this machine cannot run `target` as declared (which provider, how to get it), or None."""

    def unreadable(self, model: Path) -> str | None:
        """Why this runtime cannot read the ONNX file `model` as it is (then the fp32 reference is
        the model as edgeq prepared it), or None."""

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        """Write the deployable artifact for `model` into `out_dir` (needs no accelerator)."""

    def session(
        self,
        artifact: Path,
        target: TargetSpec,
        providers: Sequence[Provider] | None = None,
        *,
        reference: bool = False,
    ) -> OrtRunner:
        """A session over `artifact` on the target's providers, in order, for fidelity and timing; on
        `providers` instead, for fidelity only. `reference`: `artifact` is the fp32 model compared
        against, run without the reduced precision the target allows (the TensorRT EP without FP16).
        InputError (the `unavailable` line) where the target's providers are missing; never falls
        back to other providers silently."""


class OnnxRuntimeBackend:
    """ONNX Runtime with the target's execution providers, TensorRT's with the engine builder's settings."""

    runtime: Runtime = "onnxruntime"
    measures_latency = True

    def __init__(self, available: Sequence[str] | None = None) -> None:
        """`available`: the providers to take as installed (default: this ONNX Runtime's own)."""
        self.available = tuple(ort.get_available_providers() if available is None else available)

    def unavailable(self, target: TargetSpec) -> str | None:
        return providers_unavailable(target, self.available)

    def unreadable(self, model: Path) -> str | None:
        return None  # what ONNX Runtime cannot load is refused when the model is read

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        return compile_ort_cpu(model, target, out_dir)

    def session(
        self,
        artifact: Path,
        target: TargetSpec,
        providers: Sequence[Provider] | None = None,
        *,
        reference: bool = False,
    ) -> OrtRunner:
        if providers is None:
            if why := self.unavailable(target):
                raise InputError(why)
            declared = fp32_baseline(target) if reference else target
            providers = session_providers(declared, artifact, artifact.parent / ENGINE_CACHE)
        return OrtRunner(artifact, threads=target.latency.threads, providers=providers)


class TensorRTBackend:
    """The TensorRT-ready QDQ graph; fidelity is read in ONNX Runtime CPU, the engine built on the GPU."""

    runtime: Runtime = "tensorrt"
    measures_latency = False

    def unavailable(self, target: TargetSpec) -> str | None:
        return None  # writing the graph needs no GPU; the engine build says what it lacks

    def unreadable(self, model: Path) -> str | None:
        return None  # fidelity is read in ONNX Runtime

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = save_model(model, out_dir / "model.onnx")
        quantized = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
        return Artifact(path, "onnx-qdq" if quantized else "onnx", [path])

    def session(
        self,
        artifact: Path,
        target: TargetSpec,
        providers: Sequence[Provider] | None = None,
        *,
        reference: bool = False,
    ) -> OrtRunner:
        return OrtRunner(artifact, threads=target.latency.threads, providers=providers or CPU_ONLY)


BACKENDS: dict[Runtime, Backend] = {
    "onnxruntime": OnnxRuntimeBackend(),
    "tensorrt": TensorRTBackend(),
    "openvino": OpenVINOBackend(),
}


class RuntimeChoiceBackend:
    """Several runtimes in one compile: each candidate model names its runtime (`for_runtime`), each
    artifact is opened by the runtime that wrote it; the fp32 reference runs in the first."""

    measures_latency = True

    def __init__(self, runtimes: Sequence[Runtime]) -> None:
        self.runtime: Runtime = runtimes[0]
        self.backends = {runtime: BACKENDS[runtime] for runtime in runtimes}

    def unavailable(self, target: TargetSpec) -> str | None:
        return next((why for b in self.backends.values() if (why := b.unavailable(target))), None)

    def unreadable(self, model: Path) -> str | None:
        return self.backends[self.runtime].unreadable(model)  # the reference runs in the first

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        return self.backends[runtime_of(model, self.runtime)].compile(model, target, out_dir)

    def session(
        self,
        artifact: Path,
        target: TargetSpec,
        providers: Sequence[Provider] | None = None,
        *,
        reference: bool = False,
    ) -> OrtRunner:
        runtime = "openvino" if artifact.suffix == ".xml" else self.runtime
        return self.backends[runtime].session(artifact, target, providers, reference=reference)


RUNTIME_METADATA = "edgeq.runtime"


def for_runtime(model: onnx.ModelProto, runtime: Runtime) -> onnx.ModelProto:
    """A copy of a candidate model that a several-runtime target compiles for `runtime`."""
    return tagged(model, RUNTIME_METADATA, runtime)


def runtime_of(model: onnx.ModelProto, default: Runtime) -> Runtime:
    return metadata(model).get(RUNTIME_METADATA, default)


def backend_for(target: TargetSpec) -> Backend:
    """The backend of the target's runtime (a `TargetSpec` cannot name another: it refuses one), or
    the one that measures several runtimes side by side."""
    if len(target.runtimes) > 1:
        return RuntimeChoiceBackend(target.runtimes)
    return BACKENDS[target.runtime]
