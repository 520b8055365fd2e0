"""Targets are data: a YAML file declares runtime, quantization formats and latency settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import onnxruntime as ort

from edgeq.config import from_dict, limit, load_yaml, over_limit
from edgeq.errors import InputError
from edgeq.runtime.session import CPU_PROVIDER

Runtime = Literal["onnxruntime", "tensorrt", "openvino"]
"""The runtimes edgeq has a backend for (`backends.registry` keys them); a target names one."""
RUNTIMES: tuple[str, ...] = get_args(Runtime)


@dataclass(frozen=True)
class TensorFormat:
    """How one kind of tensor is quantized on this target."""

    signed: bool = True
    symmetric: bool = True
    per_channel: bool = False
    reduce_range: bool = False


@dataclass(frozen=True)
class Int8Scheme:
    """Static INT8 (QDQ) conventions the target's runtime executes fast."""

    activations: TensorFormat = field(default_factory=lambda: TensorFormat(False, False))
    weights: TensorFormat = field(default_factory=lambda: TensorFormat(True, True, True))
    ops: list[str] = field(default_factory=lambda: ["Conv", "Gemm", "MatMul"])
    output_qdq: bool = True
    fold_relu: bool = True
    activation_matmul: bool = False
    attention_scores: bool = False
    """Q·Kᵀ (an activation MatMul that does not read a softmax) int8, its two inputs signed and
    symmetric: what OpenVINO runs its fused attention in int8 from (u8 inputs keep it in float)."""
    dynamic_ops: list[str] = field(default_factory=list)
    per_token: bool = False  # also a dynamic candidate with one activation scale per row (token)
    quantize_bias: bool = True  # int32 bias DQ; TensorRT's parser rejects it, so its targets say false
    smoothquant: bool = False  # SmoothQuant candidates by default (as `methods.smoothquant`), measured


@dataclass(frozen=True)
class QuantizationSchemes:
    int8: Int8Scheme = field(default_factory=Int8Scheme)


@dataclass(frozen=True)
class ArtifactSettings:
    optimization_level: Literal["disable", "basic", "extended", "all"] = "extended"  # ORT graph levels
    ort_format: bool = True


MAX_BATCH, MAX_ROUNDS, MAX_SECONDS = 4096, 1000, 60.0  # beyond these, timing a model is a hang


@dataclass(frozen=True)
class LatencySettings:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    threads: int = 0
    warmup: int = 3
    rounds: int = 7
    seconds_per_round: float = 0.25

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ValueError("batch_sizes must list positive integers")
        if self.rounds < 1 or self.warmup < 0 or self.threads < 0:
            raise ValueError("rounds must be >= 1, warmup and threads >= 0")
        if self.threads > limit("EDGEQ_MAX_THREADS"):
            raise over_limit("EDGEQ_MAX_THREADS", "latency threads", self.threads)
        if max(self.batch_sizes) > MAX_BATCH or max(self.rounds, self.warmup) > MAX_ROUNDS:
            raise ValueError(f"batch_sizes must be <= {MAX_BATCH}, rounds and warmup <= {MAX_ROUNDS}")
        if not (math.isfinite(self.seconds_per_round) and 0 < self.seconds_per_round <= MAX_SECONDS):
            raise ValueError(f"seconds_per_round must be a number in (0, {MAX_SECONDS}]")


@dataclass(frozen=True)
class BatchProfile:
    """The batch range a TensorRT optimization profile covers; the engine runs any batch in it."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError("batch profile needs 1 <= min <= opt <= max")


@dataclass(frozen=True)
class TensorRTSettings:
    """TensorRT builder settings; `input_shapes` gives min/opt/max for inputs with other dynamic dims."""

    workspace_mib: int = 1024
    timing_cache: str = "~/.cache/edgeq/tensorrt.timing.cache"
    fp16: bool = True
    optimization_level: int = 3
    batch: BatchProfile = field(default_factory=BatchProfile)
    input_shapes: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    dla_core: int | None = None
    gpu_fallback: bool = True

    def __post_init__(self) -> None:
        if self.workspace_mib < 1:
            raise ValueError("workspace_mib must be >= 1")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError("optimization_level must be 0..5")
        if self.dla_core is not None and self.dla_core < 0:
            raise ValueError("dla_core must be >= 0 (or absent for the GPU)")


InferencePrecision = Literal["f32", "bf16", "f16"]


@dataclass(frozen=True)
class OpenVINOSettings:
    """How OpenVINO compiles each artifact: every key is passed explicitly (never its defaults, which
    pick bf16 on a CPU that has it). `precisions`: the extra candidates (an fp32 IR run in that
    precision) built where the CPU lists them in OPTIMIZATION_CAPABILITIES."""

    device: Literal["CPU"] = "CPU"
    inference_num_threads: int = 0
    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    num_streams: int = 1
    precisions: list[InferencePrecision] = field(default_factory=lambda: ["bf16", "f16"])

    def __post_init__(self) -> None:
        if self.inference_num_threads < 0 or self.num_streams < 1:
            raise ValueError("inference_num_threads must be >= 0 and num_streams >= 1")
        if "f32" in self.precisions:
            raise ValueError("precisions lists the reduced ones only: f32 is always a candidate")


@dataclass(frozen=True)
class TargetSpec:
    """One deployment target. `providers`: ONNX Runtime's execution providers, in the order a
    session tries them, ending with the CPU (which runs what the others cannot); none for TensorRT."""

    name: str
    runtime: Runtime
    providers: list[str]
    description: str = ""
    isa: list[str] = field(default_factory=list)
    quantization: QuantizationSchemes = field(default_factory=QuantizationSchemes)
    artifact: ArtifactSettings = field(default_factory=ArtifactSettings)
    latency: LatencySettings = field(default_factory=LatencySettings)
    precision: Literal["int8", "fp16"] = "int8"  # fp16: no Q/DQ, the runtime computes in half
    tensorrt: TensorRTSettings | None = None
    openvino: OpenVINOSettings | None = None
    runtimes: list[Runtime] = field(default_factory=list)
    """More than one runtime: candidates for each, measured in one run, the fastest within budget
    kept; `runtime` (listed first) is the one the fp32 reference runs in."""

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if self.runtimes and (self.runtimes[0] != self.runtime or "tensorrt" in self.runtimes):
            raise ValueError("runtimes must start with the target's runtime and cannot list tensorrt")
        if self.runtime in ("tensorrt", "openvino") and self.providers:
            raise ValueError(f"providers must be [] for runtime {self.runtime}: it runs without ONNX Runtime")
        if "openvino" in (self.runtime, *self.runtimes) and self.openvino is None:
            raise ValueError("an openvino runtime needs its openvino: settings")
        if self.runtime in ("tensorrt", "openvino"):
            return
        known = ort.get_all_providers()
        unknown = [p for p in self.providers if p not in known]
        if unknown:
            raise ValueError(f"providers: ONNX Runtime has no {unknown[0]!r}; it knows {', '.join(known)}")
        twice = [p for p in self.providers if self.providers.count(p) > 1]
        if twice:
            raise ValueError(f"providers lists {twice[0]} twice")
        if not self.providers or self.providers[-1] != CPU_PROVIDER:
            raise ValueError(
                f"providers must end with {CPU_PROVIDER}: ONNX Runtime runs there what others cannot"
            )


def builtin_targets_dir() -> Path:
    """Shipped target specs: inside the wheel, or the repository's `targets/` in a source checkout."""
    packaged = Path(str(resources.files("edgeq"))) / "targets"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "targets"


def builtin_targets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_targets_dir().glob("*.yaml"))}


NATIVE = "native"


def native_target_name() -> str:
    """The shipped CPU target for the machine this runs on, read from its ISA flags.

    VNNI (or AMX) makes full 8-bit weights safe; plain AVX2 needs 7-bit ones (reduce_range)."""
    from edgeq.runtime.machine import INT8_DOT_FLAGS, describe_machine

    machine = describe_machine()
    flags = set(machine.flags)
    if machine.arch in ("aarch64", "arm64"):
        return "cpu-arm64"
    if flags & INT8_DOT_FLAGS:
        return "cpu-x86-avx512vnni"
    if "avx2" in flags:
        return "cpu-x86-avx2"
    raise InputError(
        f"no shipped target matches this CPU ({machine.cpu}, {machine.arch}): name one or pass a YAML file"
    )


RUNTIME_SEPARATOR = "+"


def with_every_runtime(name: str) -> str:
    """The target name that also measures the other CPU runtimes (`--runtime auto`)."""
    extra = f"{RUNTIME_SEPARATOR}openvino"
    return name if name.endswith(extra) else name + extra


def load_target(name_or_path: str | Path) -> TargetSpec:
    """A shipped target by name (`native`: the one for this machine's CPU), or a target file by path;
    `NAME+openvino`: that target with OpenVINO candidates measured beside its own runtime's."""
    base, plus, extra = str(name_or_path).rpartition(RUNTIME_SEPARATOR)
    if plus and extra in RUNTIMES:
        return _adding_runtime(load_target(base), extra)
    known = builtin_targets()
    if str(name_or_path) == NATIVE:
        name_or_path = native_target_name()
    path = known.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise InputError(
            f"unknown target {str(name_or_path)!r}: use one of {', '.join(known)}, {NATIVE} "
            "or a YAML file path"
        )
    return from_dict(TargetSpec, load_yaml(path, "target file"), f"target {path.name}")


def _adding_runtime(spec: TargetSpec, runtime: str) -> TargetSpec:
    """`spec` measuring `runtime`'s candidates too (its settings: the target's threads, if it has none)."""
    runtimes = [*(spec.runtimes or [spec.runtime]), runtime]
    settings = spec.openvino or OpenVINOSettings(inference_num_threads=spec.latency.threads)
    name = f"{spec.name}{RUNTIME_SEPARATOR}{runtime}"
    try:
        return replace(spec, name=name, runtimes=list(dict.fromkeys(runtimes)), openvino=settings)
    except ValueError as exc:
        raise InputError(f"target {name}: {exc}") from None
