"""The execution providers an ONNX Runtime session opens for a target: its list, in order, with options.

ONNX Runtime asked for a provider it lacks falls back to the CPU with only a warning (the CPU wheel
has no GPU providers), so what is missing is named, with where to get it, before a session opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from edgeq.backends.tensorrt_config import (
    builder_flags,
    graph_precisions,
    profile_shapes,
    settings_of,
    shape_profiles,
)
from edgeq.runtime.session import Provider
from edgeq.targets import TargetSpec

TENSORRT_EP = "TensorrtExecutionProvider"
_WHEELS = {  # the ONNX Runtime package that has each provider, installed in place of `onnxruntime`
    TENSORRT_EP: "onnxruntime-gpu",
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "QNNExecutionProvider": "onnxruntime-qnn",
}


def providers_unavailable(target: TargetSpec, available: Sequence[str]) -> str | None:
    """One line naming the target's providers not in `available` and the package that has them."""
    missing = [p for p in target.providers if p not in available]
    if not missing:
        return None
    packages = sorted({_WHEELS[p] for p in missing if p in _WHEELS})
    others = [p for p in missing if p not in _WHEELS]
    hints = [f"pip uninstall onnxruntime && pip install {' '.join(packages)}"] if packages else []
    if TENSORRT_EP in missing:
        hints.append("TensorRT's libraries for its provider (pip install tensorrt)")
    if others:
        hints.append(f"an ONNX Runtime build with {', '.join(others)}")
    return (
        f"target {target.name} needs {', '.join(missing)}, which this ONNX Runtime {ort.__version__} "
        f"lacks (it has {', '.join(available)}): {'; '.join(hints)}"
    )


def session_providers(target: TargetSpec, artifact: Path, cache_dir: Path) -> list[Provider]:
    """The target's providers in order, TensorRT's with options matching `build_engine`'s settings."""
    if TENSORRT_EP not in target.providers:
        return list(target.providers)
    options = tensorrt_ep_options(onnx.load(str(artifact), load_external_data=False), target, cache_dir)
    return [(p, options) if p == TENSORRT_EP else p for p in target.providers]


def tensorrt_ep_options(model: onnx.ModelProto, target: TargetSpec, cache_dir: Path) -> dict[str, Any]:
    """TensorRT EP options for `model`: the flags, profiles and workspace the engine builder uses.

    trt_int8_enable is what the builder's INT8 flag is for a QDQ graph (without it: "Int8 precision
    has been set for a layer ... but int8 is not configured in the builder").
    """
    settings = settings_of(target)
    flags = builder_flags(graph_precisions(model), target)
    profiles = shape_profiles(model, target)

    options: dict[str, Any] = {
        "trt_int8_enable": "INT8" in flags,
        "trt_fp16_enable": "FP16" in flags,
        "trt_max_workspace_size": settings.workspace_mib << 20,
        "trt_builder_optimization_level": settings.optimization_level,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": bool(settings.timing_cache),
        "trt_profile_min_shapes": profile_shapes(profiles, "min"),
        "trt_profile_opt_shapes": profile_shapes(profiles, "opt"),
        "trt_profile_max_shapes": profile_shapes(profiles, "max"),
    }
    if settings.timing_cache:
        options["trt_timing_cache_path"] = str(Path(settings.timing_cache).expanduser().parent)
    if settings.dla_core is not None:
        options |= {"trt_dla_enable": True, "trt_dla_core": settings.dla_core}
    return options
