"""OpenVINO backend: edgeq's standard QDQ ONNX converted to OpenVINO IR, run by OpenVINO's CPU plugin.

The IR (`model.xml`/`model.bin`) is written beside the QDQ ONNX it came from; OpenVINO's
low-precision transformations turn the Q/DQ pairs into integer kernels, and weights behind a lone
DequantizeLinear (int8, or int4 blocks) into compressed-weight layers. A candidate's inference
precision (f32, or bf16/f16) and dynamic-quantization group travel in the model's metadata and are
written into the IR, so every later session runs it the way it was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.backends.openvino_read import conversion_error, convert, openvino
from edgeq.backends.openvino_runner import (
    GROUP_KEY,
    GROUP_OPTIONS,
    PRECISION_KEY,
    RUNTIME_OPTIONS,
    OpenVINORunner,
)
from edgeq.graph import save_model
from edgeq.runtime.session import Provider
from edgeq.targets import InferencePrecision, Runtime, TargetSpec

PRECISION_METADATA = "edgeq.inference_precision"
"""The ONNX metadata key a candidate names its OpenVINO inference precision with (absent: f32)."""
GROUP_METADATA = "edgeq.dynamic_quantization_group_size"
"""The key naming the group OpenVINO quantizes compressed-weight layers' inputs in (absent: 0, off)."""
IR_FORMAT = "openvino-ir"


def tagged(model: onnx.ModelProto, key: str, value: str) -> onnx.ModelProto:
    """A copy of `model` with metadata `key` set to `value` (its other metadata kept)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.helper.set_model_props(copy, {**metadata(model), key: value})
    return copy


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def with_precision(
    model: onnx.ModelProto, precision: InferencePrecision, dynamic_group: int = 0
) -> onnx.ModelProto:
    """A copy of `model` that OpenVINO is to run in `precision`, the inputs of its compressed-weight
    layers quantized to int8 per call in groups of `dynamic_group` channels (0: not quantized)."""
    precise = tagged(model, PRECISION_METADATA, precision)
    return tagged(precise, GROUP_METADATA, str(dynamic_group)) if dynamic_group else precise


def model_precision(model: onnx.ModelProto) -> InferencePrecision:
    return metadata(model).get(PRECISION_METADATA, "f32")


def model_dynamic_group(model: onnx.ModelProto) -> int:
    return int(metadata(model).get(GROUP_METADATA, "0"))


def unconvertible(model: onnx.ModelProto) -> str | None:
    """Why OpenVINO cannot take this candidate without trying: ONNX Runtime's com.microsoft
    contrib ops (dynamic LSTM, 4-bit MatMulNBits) have no OpenVINO conversion."""
    contrib = sorted({n.op_type for n in model.graph.node if n.domain == "com.microsoft"})
    return f"OpenVINO cannot convert com.microsoft {', '.join(contrib)}" if contrib else None


def compile_openvino(model: onnx.ModelProto, out_dir: Path, stem: str = "model") -> Artifact:
    """`stem.onnx` (the QDQ ONNX) and its IR `stem.xml`/`stem.bin`, precision and dynamic group
    recorded in both; weights stored as fp16 only for an f16 candidate (bf16 from fp16 weights
    would round twice)."""
    ov = openvino()
    out_dir.mkdir(parents=True, exist_ok=True)
    source = save_model(model, out_dir / f"{stem}.onnx")
    precision, group = model_precision(model), str(model_dynamic_group(model))
    converted = convert(source)
    for value, key in ((precision, PRECISION_KEY), (precision, RUNTIME_OPTIONS)):
        converted.set_rt_info(value, list(key))
    for value, key in ((group, GROUP_KEY), (group, GROUP_OPTIONS)):
        converted.set_rt_info(value, list(key))
    xml = out_dir / f"{stem}.xml"
    ov.save_model(converted, str(xml), compress_to_fp16=precision == "f16")
    beside = [p for p in (source.with_name(source.name + ".data"),) if p.exists()]
    return Artifact(xml, IR_FORMAT, [xml, xml.with_suffix(".bin"), source, *beside])


class OpenVINOBackend:
    """OpenVINO's CPU plugin with the target's threads and hint; every precision set explicitly."""

    runtime: Runtime = "openvino"
    measures_latency = True

    def unavailable(self, target: TargetSpec) -> str | None:
        if find_spec("openvino") is None:
            return f"target {target.name} runs on OpenVINO, not installed: pip install 'edgeq[openvino]'"
        return None

    def unreadable(self, model: Path) -> str | None:
        return conversion_error(model)

    def compile(self, model: onnx.ModelProto, target: TargetSpec, out_dir: Path) -> Artifact:
        return compile_openvino(model, out_dir)

    def session(
        self,
        artifact: Path,
        target: TargetSpec,
        providers: Sequence[Provider] | None = None,
        *,
        reference: bool = False,
    ) -> OpenVINORunner:
        """An IR (in the precision it records) or an ONNX file (f32); `reference`: always f32."""
        return OpenVINORunner(artifact, target.openvino, precision="f32" if reference else None)
