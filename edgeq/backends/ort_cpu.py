"""ONNX Runtime CPU backend: an offline-optimized .onnx plus the .ort format for minimal builds."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort

from edgeq.backends.artifact import Artifact
from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.runtime.session import session_options
from edgeq.targets import TargetSpec


def compile_ort_cpu(
    model: onnx.ModelProto, target: TargetSpec, out_dir: Path, stem: str = "model"
) -> Artifact:
    """Bake ORT's hardware-independent fusions into `stem.onnx`; also write `stem.ort` if asked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = save_model(model, out_dir / f"{stem}.input.onnx")
    optimized = out_dir / f"{stem}.onnx"
    _optimize(source, optimized, target.artifact.optimization_level, ort_format=False)
    files = [optimized]
    if target.artifact.ort_format:
        ort_path = out_dir / f"{stem}.ort"
        _optimize(optimized, ort_path, target.artifact.optimization_level, ort_format=True)
        files.append(ort_path)
    for leftover in (source, source.with_name(source.name + ".data")):
        leftover.unlink(missing_ok=True)
    return Artifact(optimized, "onnx", files)


def _optimize(source: Path, target: Path, level: str, *, ort_format: bool) -> None:
    options = session_options(level=level)
    options.optimized_model_filepath = str(target)
    if ort_format:
        options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types
        raise InputError(f"ONNX Runtime cannot compile the model: {str(exc).splitlines()[0]}") from None
