"""Backends chosen by the target's `runtime`, a closed set: each checks, compiles and opens sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol, get_args

import onnx
import onnxruntime as ort

from edgeq.backends.artifact import Artifact
from edgeq.backends.ort_cpu import compile_ort_cpu
from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.runtime.session import OrtRunner
from edgeq.targets import TargetSpec

Runtime = Literal["onnxruntime", "tensorrt"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)


class Backend(Protocol):
    """What the pipeline needs of a runtime."""

    runtime: str
    measures_latency: bool
    """False where latency can only be measured later, on the target itself (TensorRT engines)."""

    def unavailable(self, target: TargetSpec) -> str | None:
        """Why this machine cannot run `target` as declared (a missing provider), or None."""

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        """Write the deployable artifact for `model` into `out_dir`."""

    def session(self, artifact: Path, target: TargetSpec) -> OrtRunner:
        """A session over `artifact` on the target's providers, in order, for fidelity and timing."""


class OnnxRuntimeBackend:
    """ONNX Runtime with the target's execution providers."""

    runtime = "onnxruntime"
    measures_latency = True

    def unavailable(self, target: TargetSpec) -> str | None:
        missing = [p for p in target.providers if p not in ort.get_available_providers()]
        if missing:
            return (
                f"target {target.name} needs {', '.join(missing)}, which this ONNX Runtime "
                f"({ort.__version__}) does not have"
            )
        return None

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        return compile_ort_cpu(model, target, out_dir)

    def session(self, artifact: Path, target: TargetSpec) -> OrtRunner:
        return OrtRunner(artifact, threads=target.latency.threads, providers=tuple(target.providers))


class TensorRTBackend:
    """The TensorRT-ready QDQ graph; fidelity is read in ONNX Runtime CPU, the engine built on the GPU."""

    runtime = "tensorrt"
    measures_latency = False

    def unavailable(self, target: TargetSpec) -> str | None:
        return None  # writing the graph needs no GPU; the engine build says what it lacks

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = save_model(model, out_dir / "model.onnx")
        quantized = any(n.op_type == "QuantizeLinear" for n in model.graph.node)
        return Artifact(path, "onnx-qdq" if quantized else "onnx", [path])

    def session(self, artifact: Path, target: TargetSpec) -> OrtRunner:
        return OrtRunner(artifact, threads=target.latency.threads)


_BACKENDS: dict[str, Backend] = {"onnxruntime": OnnxRuntimeBackend(), "tensorrt": TensorRTBackend()}


def backend_for(target: TargetSpec) -> Backend:
    """The backend of the target's runtime; an unknown runtime is the target file's mistake."""
    backend = _BACKENDS.get(target.runtime)
    if backend is None:
        raise InputError(
            f"target {target.name}: unknown runtime {target.runtime!r}; use one of {', '.join(RUNTIMES)}"
        )
    return backend
