"""ONNX Runtime's own offline graph optimizer, run as an edgeq pass."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.runtime.session import session_options


def ort_optimize(model: onnx.ModelProto, level: str) -> onnx.ModelProto:
    """The model as ONNX Runtime's offline optimizer rewrites it at `level` (basic/extended)."""
    with tempfile.TemporaryDirectory(prefix="edgeq-opt-") as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        save_model(model, source)
        options = session_options(level=level)
        options.optimized_model_filepath = str(target)
        try:
            ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unsupported models
            message = str(exc).splitlines()[0]
            raise InputError(f"ONNX Runtime cannot load the model: {message}") from None
        return onnx.load(str(target))
