"""ONNX Runtime's own offline graph optimizer, run as an edgeq pass."""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx

from edgeq.graph import save_model
from edgeq.runtime.session import write_optimized


def ort_optimize(model: onnx.ModelProto, level: str) -> onnx.ModelProto:
    """The model as ONNX Runtime's offline optimizer rewrites it at `level` (basic/extended)."""
    with tempfile.TemporaryDirectory(prefix="edgeq-opt-") as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        write_optimized(save_model(model, source), target, level)
        return onnx.load(str(target))
