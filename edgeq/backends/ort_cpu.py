"""ONNX Runtime backend's compile: an offline-optimized .onnx plus the .ort format for minimal builds."""

from __future__ import annotations

from pathlib import Path

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.graph import save_model
from edgeq.runtime.session import write_optimized
from edgeq.targets import TargetSpec


def compile_ort_cpu(
    model: onnx.ModelProto, target: TargetSpec, out_dir: Path, stem: str = "model"
) -> Artifact:
    """Bake ORT's hardware-independent fusions into `stem.onnx`; also write `stem.ort` if asked."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = save_model(model, out_dir / f"{stem}.input.onnx")
    optimized = out_dir / f"{stem}.onnx"
    level = target.artifact.optimization_level
    write_optimized(source, optimized, level)
    files = [optimized]
    if target.artifact.ort_format:
        ort_path = out_dir / f"{stem}.ort"
        write_optimized(optimized, ort_path, level, ort_format=True)
        files.append(ort_path)
    for leftover in (source, source.with_name(source.name + ".data")):
        leftover.unlink(missing_ok=True)
    return Artifact(optimized, "onnx", files)
