"""ONNX Runtime on an NVIDIA GPU (TensorRT and CUDA execution providers), for the `gpu-ort` target.

Usable only where onnxruntime-gpu is installed: the CPU wheel lists no GPU providers, and asking for
one there silently falls back to the CPU, which would report CPU numbers as GPU ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from edgeq.backends.tensorrt_config import builder_flags, graph_precisions, settings_of, shape_profiles
from edgeq.targets import TargetSpec

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def ort_gpu_available(target: TargetSpec) -> tuple[bool, str]:
    """Whether this ONNX Runtime has the target's GPU providers, and if not, which are missing."""
    available = set(ort.get_available_providers())
    wanted = [p for p in target.providers if p in GPU_PROVIDERS]
    missing = [p for p in wanted if p not in available]
    if not wanted:
        return False, f"target {target.name} lists no GPU execution provider"
    if missing:
        return False, (
            f"this ONNX Runtime lacks {', '.join(missing)} "
            "(install onnxruntime-gpu, and TensorRT for the TensorRT provider)"
        )
    return True, f"ONNX Runtime {ort.__version__} with {', '.join(wanted)}"


def ort_gpu_providers(
    model: onnx.ModelProto, target: TargetSpec, cache_dir: Path
) -> list[str | tuple[str, dict[str, Any]]]:
    """The target's providers with TensorRT EP options matching `build_engine`'s builder settings.

    trt_int8_enable is what the builder's INT8 flag is for a QDQ graph (without it: "Int8 precision
    has been set for a layer ... but int8 is not configured in the builder").
    """
    settings = settings_of(target)
    flags = builder_flags(graph_precisions(model), target)
    profiles = shape_profiles(model, target)

    def shapes(key: str) -> str:
        return ",".join(f"{n}:{'x'.join(map(str, getattr(r, key)))}" for n, r in profiles.items())

    options: dict[str, Any] = {
        "trt_int8_enable": "INT8" in flags,
        "trt_fp16_enable": "FP16" in flags,
        "trt_max_workspace_size": settings.workspace_mib << 20,
        "trt_builder_optimization_level": settings.optimization_level,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": bool(settings.timing_cache),
        "trt_profile_min_shapes": shapes("min"),
        "trt_profile_opt_shapes": shapes("opt"),
        "trt_profile_max_shapes": shapes("max"),
    }
    if settings.timing_cache:
        options["trt_timing_cache_path"] = str(Path(settings.timing_cache).expanduser().parent)
    if settings.dla_core is not None:
        options |= {"trt_dla_enable": True, "trt_dla_core": settings.dla_core}
    return [(p, options) if p == "TensorrtExecutionProvider" else p for p in target.providers]
