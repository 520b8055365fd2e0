"""TensorRT build settings derived from the graph and the target: pure, testable without TensorRT.

One derivation feeds both the Python builder and the `trtexec` line a user runs elsewhere, so the
two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

import onnx

from edgeq.errors import InputError
from edgeq.targets import TargetSpec, TensorRTSettings

Shape = tuple[int, ...]
_INT8 = {onnx.TensorProto.INT8}
_INT4 = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4}
_TRTEXEC_FLAGS = {"INT8": "--int8", "FP16": "--fp16", "GPU_FALLBACK": "--allowGPUFallback"}


@dataclass(frozen=True)
class ShapeRange:
    """One input's optimization-profile shapes."""

    min: Shape
    opt: Shape
    max: Shape


def settings_of(target: TargetSpec) -> TensorRTSettings:
    """The target's TensorRT section, defaults when it has none (a user target may omit it)."""
    return target.tensorrt or TensorRTSettings()


def fp32_baseline(target: TargetSpec) -> TargetSpec:
    """The target as the fp32 model it is compared against runs: same profile and workspace, no
    reduced precision (no FP16, no DLA), so a speedup reads against full precision."""
    settings = dataclasses.replace(settings_of(target), fp16=False, dla_core=None)
    return dataclasses.replace(target, precision="int8", tensorrt=settings)


def graph_precisions(model: onnx.ModelProto) -> set[str]:
    """Low precisions the graph asks for explicitly: "int8"/"int4" from DQ inputs, "fp16" tensors."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    found: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            zero = node.input[2] if len(node.input) > 2 else ""
            types.setdefault(node.output[0], types.get(zero, onnx.TensorProto.UINT8))
        if node.op_type == "DequantizeLinear":
            kind = types.get(node.input[0])
            found |= {"int8"} if kind in _INT8 else {"int4"} if kind in _INT4 else set()
    values = [*model.graph.initializer]
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in values) or any(
        v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]
    ):
        found.add("fp16")
    return found


def builder_flags(precisions: set[str], target: TargetSpec) -> list[str]:
    """`trt.BuilderFlag` names for a graph: INT8 whenever Q/DQ is present (else TensorRT#4021's
    obscure failure), FP16 where the target allows it, GPU_FALLBACK for DLA builds."""
    settings = settings_of(target)
    flags = []
    if precisions & {"int8", "int4"}:
        flags.append("INT8")
    on_dla = settings.dla_core is not None
    if settings.fp16 or target.precision == "fp16" or "fp16" in precisions or on_dla:
        flags.append("FP16")  # DLA runs FP16 or INT8 only
    if on_dla and settings.gpu_fallback:
        flags.append("GPU_FALLBACK")
    return flags


def shape_profiles(model: onnx.ModelProto, target: TargetSpec) -> dict[str, ShapeRange]:
    """Min/opt/max shape per input: the target's batch range on a dynamic first axis, the model's
    own size on fixed axes, and the target's `input_shapes` for inputs with other dynamic axes."""
    settings = settings_of(target)
    constants = {t.name for t in model.graph.initializer}
    profiles = {}
    for value in (v for v in model.graph.input if v.name not in constants):
        if value.name in settings.input_shapes:
            profiles[value.name] = _explicit_range(value.name, settings.input_shapes[value.name])
            continue
        dims = value.type.tensor_type.shape.dim
        ranges = [_dim_range(value.name, axis, d, settings) for axis, d in enumerate(dims)]
        profiles[value.name] = ShapeRange(*(tuple(r[i] for r in ranges) for i in range(3)))
    return profiles


def profile_shapes(profiles: dict[str, ShapeRange], key: str) -> str:
    """One end (`min`, `opt`, `max`) of every input's range, as trtexec and the TensorRT EP take it."""
    return ",".join(f"{name}:{'x'.join(map(str, getattr(shapes, key)))}" for name, shapes in profiles.items())


def _dim_range(name: str, axis: int, dim, settings: TensorRTSettings) -> tuple[int, int, int]:
    if dim.HasField("dim_value") and dim.dim_value > 0:
        return (dim.dim_value,) * 3
    if axis == 0:
        batch = settings.batch
        return batch.min, batch.opt, batch.max
    label = dim.dim_param or "?"
    raise InputError(
        f"input {name!r} has dynamic axis {axis} ({label}); TensorRT needs its range: add "
        f"tensorrt.input_shapes.{name} with min/opt/max shapes to the target file"
    )


def _explicit_range(name: str, given: dict[str, list[int]]) -> ShapeRange:
    try:
        shapes = [tuple(int(d) for d in given[key]) for key in ("min", "opt", "max")]
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"tensorrt.input_shapes.{name} needs min, opt and max, each a list of integers"
        ) from None
    rule = f"tensorrt.input_shapes.{name}: min <= opt <= max per axis, same rank, sizes >= 1"
    if len({len(s) for s in shapes}) != 1:
        raise InputError(rule)
    if not all(1 <= a <= b <= c for a, b, c in zip(*shapes, strict=True)):
        raise InputError(rule)
    return ShapeRange(*shapes)


def trtexec_command(onnx_path: Path, plan_path: Path, model: onnx.ModelProto, target: TargetSpec) -> str:
    """The `trtexec` line that builds the same engine as `build_engine` does."""
    settings = settings_of(target)
    profiles = shape_profiles(model, target)
    args = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={plan_path}"]
    args += [_TRTEXEC_FLAGS[f] for f in builder_flags(graph_precisions(model), target)]
    args += [f"--{key}Shapes={profile_shapes(profiles, key)}" for key in ("min", "opt", "max")]
    args.append(f"--memPoolSize=workspace:{settings.workspace_mib}M")
    args.append(f"--builderOptimizationLevel={settings.optimization_level}")
    if settings.timing_cache:
        args.append(f"--timingCacheFile={Path(settings.timing_cache).expanduser()}")
    if settings.dla_core is not None:
        args.append(f"--useDLACore={settings.dla_core}")
    return " ".join(shlex.quote(a) for a in args)
