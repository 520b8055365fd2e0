"""TensorRT backend: build a serialized engine (.plan) from the TensorRT-ready QDQ ONNX.

Written to TensorRT 10's Python API. The library is imported only when an engine is built, so the
rest of edgeq (and the QDQ graph TensorRT consumes) works on machines without it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.backends.tensorrt_config import (
    builder_flags,
    graph_precisions,
    settings_of,
    shape_profiles,
    trtexec_command,
)
from edgeq.errors import InputError
from edgeq.targets import TargetSpec, TensorRTSettings, load_target

REFERENCE_NAME = "reference.fp32.onnx"  # kept beside model.onnx: build-engine's fp32 baseline
NEEDS_TENSORRT = "building the TensorRT engine needs TensorRT (pip install tensorrt) and an NVIDIA GPU"


def tensorrt_available() -> tuple[bool, str]:
    """Whether an engine can be built here, and if not, why (the library, or a CUDA device)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return False, f"the tensorrt Python package cannot be imported ({exc})"
    try:
        import torch
    except ImportError:
        return False, "torch is needed for GPU buffers and CUDA-event timing"
    if not torch.cuda.is_available():
        return False, "no CUDA device is visible (or torch is a CPU-only build)"
    return True, f"TensorRT {tensorrt.__version__} on {torch.cuda.get_device_name(0)}"


def finish_later_hint(
    out_dir: Path, model: onnx.ModelProto | None = None, target: TargetSpec | None = None
) -> str:
    """The commands that build the engine later on a GPU machine: `edgeq build-engine` or trtexec.

    `model`/`target` default to OUT/model.onnx and the target named in OUT/report.json.
    """
    out_dir = Path(out_dir)
    onnx_path = out_dir / "model.onnx"
    model = model if model is not None else onnx.load(str(onnx_path), load_external_data=False)
    target = target or target_of_report(out_dir)
    trtexec = trtexec_command(onnx_path, out_dir / "model.plan", model, target)
    return (
        f"TensorRT engine not built here. On a machine with TensorRT and an NVIDIA GPU run:\n"
        f"  edgeq build-engine {out_dir}/\n"
        f"or, with TensorRT's own tool:\n"
        f"  {trtexec}"
    )


def target_of_report(out_dir: Path) -> TargetSpec:
    """The target an output directory was compiled for, from its report.json recipe."""
    report = out_dir / "report.json"
    try:
        recipe = json.loads(report.read_text())["recipe"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{report} is missing or unreadable ({exc}); compile first") from None
    return load_target(recipe["target"])


def build_engine(onnx_path: Path, target: TargetSpec, out_dir: Path, stem: str = "model") -> Artifact:
    """Parse the ONNX, configure flags, profile, workspace and timing cache, write `stem.plan`.

    Also writes `stem.plan.json`: the TensorRT version, flags and shapes the engine was built with.
    """
    import tensorrt as trt

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise InputError(f"TensorRT's ONNX parser rejected {onnx_path.name}: " + " | ".join(errors))
    config = builder.create_builder_config()
    settings = settings_of(target)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    config.builder_optimization_level = settings.optimization_level
    flags = _apply_flags(trt, config, builder_flags(graph_precisions(model), target))
    if settings.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
    profiles = shape_profiles(model, target)
    profile = builder.create_optimization_profile()
    for name, shapes in profiles.items():
        profile.set_shape(name, shapes.min, shapes.opt, shapes.max)
    config.add_optimization_profile(profile)
    cache_path = Path(settings.timing_cache).expanduser() if settings.timing_cache else None
    _load_timing_cache(config, cache_path)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise InputError("TensorRT could not build the engine: " + logger.summary())
    _save_timing_cache(config, cache_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = out_dir / f"{stem}.plan"
    plan.write_bytes(memoryview(serialized))
    details = out_dir / f"{stem}.plan.json"
    details.write_text(json.dumps(_build_details(trt, flags, profiles, settings, started), indent=2))
    return Artifact(plan, "tensorrt-plan", [plan, details])


def _network_flags(trt: Any) -> int:
    """Weakly typed (precision by flags) on TensorRT 10; strongly typed where the flags are gone."""
    if hasattr(trt.BuilderFlag, "INT8"):
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _apply_flags(trt: Any, config: Any, names: list[str]) -> list[str]:
    """Set the flags this TensorRT has; strongly typed builds (TensorRT 11) take precision from the graph."""
    applied = [name for name in names if hasattr(trt.BuilderFlag, name)]
    for name in applied:
        config.set_flag(getattr(trt.BuilderFlag, name))
    return applied


def _load_timing_cache(config: Any, path: Path | None) -> None:
    """Start from earlier builds' kernel timings: rebuilding a similar model takes seconds, not minutes."""
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(blob), ignore_mismatch=False)


def _save_timing_cache(config: Any, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(memoryview(config.get_timing_cache().serialize()))


def _build_details(
    trt: Any, flags: list[str], profiles: dict, settings: TensorRTSettings, started: float
) -> dict[str, Any]:
    import torch

    return {
        "tensorrt_version": trt.__version__,
        "device": torch.cuda.get_device_name(0),
        "flags": flags,
        "profiles": {name: vars(shapes) for name, shapes in profiles.items()},
        "workspace_mib": settings.workspace_mib,
        "optimization_level": settings.optimization_level,
        "dla_core": settings.dla_core,
        "build_seconds": round(time.perf_counter() - started, 2),
    }


def _collecting_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps errors and warnings for the one-line failure message."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.messages.append(msg)

        def summary(self) -> str:
            return " | ".join(self.messages[-5:]) or "no message from TensorRT"

    return CollectingLogger()
