"""Run an OpenVINO model like `OrtRunner` does, compiled with every precision setting explicit.

OpenVINO's CPU plugin computes in bf16 by default where the CPU has it, and quantizes the inputs of
compressed-weight layers to int8 on the fly: precisions the user never asked for. Each runner names
its inference precision and dynamic-quantization group, checks the compiled model took them, and
says which layers really run in int8 (the compiled model's runtime info), since a Q/DQ pair is a
request.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq.backends.openvino_read import convert, core, openvino
from edgeq.errors import InputError
from edgeq.runtime.machine import lacking_isa
from edgeq.runtime.roles import METADATA_KEY, InputRoles, roles_in_metadata
from edgeq.runtime.runner import BatchRunner
from edgeq.runtime.timing import Timer, timed_calls
from edgeq.targets import InferencePrecision, OpenVINOSettings

PRECISION_KEY = ("edgeq", "inference_precision")
"""Where an IR edgeq wrote records the precision it was measured in (read back by every runner)."""
RUNTIME_OPTIONS = ("runtime_options", "INFERENCE_PRECISION_HINT")
"""The same precision where OpenVINO's own `compile_model` reads it, for users loading the IR."""
GROUP_KEY = ("edgeq", "dynamic_quantization_group_size")
"""Where an IR records the group its activations were quantized in per call (0: not quantized)."""
GROUP_OPTIONS = ("runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE")
INT8 = {"u8", "i8"}
MATRIX_LAYERS = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul"}
_PLUMBING = {"Input", "Output", "Const", "Reorder", "Reshape"}


X86_F16_FLAG = "amx_fp16"
"""What OpenVINO's f16 needs on x86 to be worth building: on a Xeon with AVX512-FP16 but no AMX-FP16
(model 167) the plugin lists FP16, yet MiniLM ran 1.3x slower in f16 than in f32, and its static
INT8 with the rest in f16 took 4.3 s a call (700x the f32 graph's 6 ms): most of a compile."""


def cpu_precisions() -> set[str]:
    """The reduced precisions this machine's OpenVINO CPU plugin has kernels for (f16, bf16): f16
    on x86 only with X86_F16_FLAG."""
    capabilities = set(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    have = {name for name, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in capabilities}
    if platform.machine().lower() in ("x86_64", "amd64") and lacking_isa([X86_F16_FLAG]):
        have.discard("f16")
    return have


def compile_config(
    settings: OpenVINOSettings, precision: InferencePrecision, dynamic_group: int = 0
) -> dict[str, str]:
    """The properties every compile passes: precision, dynamic quantization (0: off), threads, hint
    and streams, none left default."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": str(dynamic_group),
        "INFERENCE_NUM_THREADS": str(settings.inference_num_threads),
        "PERFORMANCE_HINT": settings.performance_hint,
        "NUM_STREAMS": str(settings.num_streams),
        "EXECUTION_MODE_HINT": "ACCURACY" if precision == "f32" else "PERFORMANCE",
    }


def ir_precision(model: Any) -> InferencePrecision:
    """The precision an IR edgeq wrote was measured in; f32 for any other model."""
    if model.has_rt_info(list(PRECISION_KEY)):
        return model.get_rt_info(list(PRECISION_KEY)).astype(str)
    return "f32"


def ir_dynamic_group(model: Any) -> int:
    """The dynamic-quantization group an IR edgeq wrote was measured with; 0 (off) for any other."""
    if model.has_rt_info(list(GROUP_KEY)):
        return int(model.get_rt_info(list(GROUP_KEY)).astype(str))
    return 0


def model_roles(model: Any, names: list[str]) -> InputRoles:
    """How the model's inputs are fed, from the ONNX metadata edgeq wrote: OpenVINO's ONNX frontend
    keeps metadata under rt_info `framework`, and an IR saved from it keeps that; else the default."""
    key = ["framework", METADATA_KEY]
    metadata = {METADATA_KEY: model.get_rt_info(key).astype(str)} if model.has_rt_info(key) else {}
    return roles_in_metadata(metadata, names)


@dataclass(frozen=True)
class Port:
    """A model input: its name, static dims as ints (None where dynamic) and the numpy dtype it takes."""

    name: str
    shape: tuple[int | None, ...]
    dtype: Any


class OpenVINORunner(BatchRunner):
    """An OpenVINO compiled model with one infer request; predicts whole arrays in batches."""

    def __init__(
        self,
        model: str | Path,
        settings: OpenVINOSettings,
        *,
        precision: InferencePrecision | None = None,
        batch_size: int = 64,
        roles: InputRoles | None = None,
    ) -> None:
        """`precision`: run in it, activations unquantized (the fp32 reference: f32); None: the
        precision and dynamic-quantization group the IR was measured with. `roles`: how inputs are
        fed; None: as the model says (see `model_roles`)."""
        source = convert(Path(model))
        self.precision = precision or ir_precision(source)
        self.dynamic_group = 0 if precision else ir_dynamic_group(source)
        self.config = compile_config(settings, self.precision, self.dynamic_group)
        try:
            self.compiled = core().compile_model(source, settings.device, self.config)
        except RuntimeError as exc:
            raise InputError(f"OpenVINO cannot compile {Path(model).name}: {_first_line(exc)}") from None
        took = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if took != str(getattr(openvino().Type, self.precision)):
            raise InputError(f"OpenVINO compiled {Path(model).name} in {took}, not {self.precision} as asked")
        group = int(self.compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE"))
        if group != self.dynamic_group:
            raise InputError(
                f"OpenVINO compiled {Path(model).name} with dynamic quantization group {group}, "
                f"not {self.dynamic_group} as asked"
            )
        self.request = self.compiled.create_infer_request()
        names = {name for port in [*source.inputs, *source.outputs] for name in port.get_names()}
        self.inputs = {p.name: p for p in (_port(port, names) for port in self.compiled.inputs)}
        self.dtypes = {name: port.dtype for name, port in self.inputs.items()}
        self.output_names = [_name(port, names) for port in self.compiled.outputs]
        self.set_roles(roles or model_roles(source, list(self.inputs)), batch_size)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One inference; outputs copied out of the request's buffers, which the next call reuses."""
        results = self.request.infer(dict(feeds))
        ports = zip(self.output_names, self.compiled.outputs, strict=True)
        return {name: np.array(results[port]) for name, port in ports}

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer:
        feeds = dict(feeds)
        return lambda runs: timed_calls(lambda: self.request.infer(feeds, share_inputs=True), runs)

    def layer_precisions(self) -> dict[str, Any]:
        """What the CPU plugin compiled: per layer type the precisions it runs in, and the layers in
        int8 (u8/i8), from the runtime model's `layerType` / `runtimePrecision` info."""
        counts: dict[str, dict[str, int]] = {}
        int8_layers, matrix, matrix_int8 = [], 0, 0
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            kind, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
            if kind in _PLUMBING:
                continue
            by_precision = counts.setdefault(kind, {})
            by_precision[precision] = by_precision.get(precision, 0) + 1
            matrix += kind in MATRIX_LAYERS
            if precision in INT8:
                int8_layers.append(f"{op.get_friendly_name()} ({kind})")
                matrix_int8 += kind in MATRIX_LAYERS
        return {
            "runtime": "openvino",
            "inference_precision": self.precision,
            "dynamic_quantization_group_size": self.dynamic_group,
            "config": dict(self.config),
            "layer_precisions": counts,
            "int8_layers": int8_layers,
            "matrix_layers": matrix,
            "matrix_layers_int8": matrix_int8,
        }


def _name(port: Any, names: set[str]) -> str:
    """The compiled port's name in the model as read: compiling merges a tensor's aliases into its
    port (CLIP's text input `input_ids` is also `/model/Reshape_output_0`), and `get_any_name`
    picked the alias."""
    own = sorted(port.get_names() & names)
    return own[0] if own else port.get_any_name()


def _port(port: Any, names: set[str]) -> Port:
    shape = port.get_partial_shape()
    dims = () if shape.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in shape)
    return Port(_name(port, names), dims, port.get_element_type().to_dtype())


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip() and not line.startswith("Check ")]
    return lines[-1].strip() if lines else type(exc).__name__
