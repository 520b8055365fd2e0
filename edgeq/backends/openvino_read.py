"""Models read by OpenVINO: the one module that imports it, one Core per process, ONNX files converted
by its ONNX frontend, conversion failures in one line."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import onnx

from edgeq.errors import InputError

_UNCONVERTED = re.compile(r"No conversion rule found for operations: (.+)")
_FAILED = re.compile(r"Conversion is failed for: (.+)")
_UNKNOWN_RANK = ("rank has to be known", "Unsupported input type dynamic")
_CONTEXT = ("While validating", "Check ", "Exception from", "FrontEnd API", "Model wasn't", "Summary", "-- ")


def openvino() -> Any:
    """The `openvino` module, or one line saying how to install it."""
    try:
        import openvino as ov
    except ImportError:
        raise InputError("this target runs on OpenVINO: pip install 'edgeq[openvino]'") from None
    return ov


@cache
def core() -> Any:
    """One OpenVINO Core per process (it holds the loaded plugins)."""
    return openvino().Core()


def convert(path: Path) -> Any:
    """A model file (ONNX, or an IR) read by OpenVINO (`Core.read_model`); a model it cannot convert
    is refused naming the ops. Not `ov.convert_model`: its telemetry forks a process per call from
    this multi-threaded one, and a forked child stuck on an inherited lock stalled a corpus compile
    of rapidocr_cls past 400 s."""
    ov = openvino()
    try:
        model = core().read_model(str(path))
    except Exception as exc:  # OpenVINO raises its own exception types
        version = ov.__version__.split("-")[0]
        raise InputError(f"OpenVINO {version} cannot convert the model: {_why(str(exc), path)}") from None
    return model


def conversion_error(path: Path) -> str | None:
    """Why OpenVINO cannot convert the model file at `path` (the one line `convert` refuses it
    with), or None."""
    try:
        convert(path)
    except InputError as exc:
        return str(exc)
    return None


def _why(text: str, path: Path) -> str:
    """OpenVINO's conversion failure in one line: the ops without a conversion rule; those whose input
    rank is unknown because an If branches on runtime shapes into outputs of different rank
    (TorchScript-scripted models: silero-vad); the ops that failed, with OpenVINO's reason; or its
    last line."""
    if ops := _UNCONVERTED.search(text):
        return f"no conversion for {ops[1]}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    failed = _FAILED.search(text)
    if not failed:
        return lines[-1] if lines else "unknown error"
    if any(marker in text for marker in _UNKNOWN_RANK) and _has_if(path):
        ops = ", ".join(sorted({op.rsplit("-", 1)[0] for op in failed[1].split(", ")}))
        return (
            f"{ops} get inputs of unknown rank: the model's If nodes branch on runtime shapes into "
            "outputs of different rank; compile it for an ONNX Runtime target (cpu-x86-avx2)"
        )
    details = [line for line in lines if not line.startswith(_CONTEXT)]
    return f"{failed[1]} failed" + (f": {details[-1]}" if details else "")


def _has_if(path: Path) -> bool:
    """Whether the ONNX file's main graph has an If node."""
    return any(node.op_type == "If" for node in onnx.load(str(path), load_external_data=False).graph.node)
