"""Raise an old model's opset to the one edgeq's quantized form needs, kept only if it computes the same.

Per-channel QuantizeLinear/DequantizeLinear (the `axis` attribute) exist from opset 13; a CNN exported
at opset 11 or 12 would otherwise get Q/DQ nodes ONNX Runtime refuses to load.
"""

from __future__ import annotations

import onnx
from onnx import version_converter

from edgeq.data import Arrays
from edgeq.graph import default_opset
from edgeq.passes.simplify import same_outputs
from edgeq.quant.plan import PER_CHANNEL_OPSET


def upgrade_opset(
    model: onnx.ModelProto, check: Arrays | None, version: int = PER_CHANNEL_OPSET
) -> tuple[onnx.ModelProto, str | None]:
    """The model at `version` or above, and a note saying what was done (None when nothing was).

    When onnx's converter fails or the converted model computes differently on `check`, the model
    comes back unchanged and the note says so (the plan then quantizes weights per tensor)."""
    found = default_opset(model)
    if found >= version:
        return model, None
    try:
        converted = version_converter.convert_version(model, version)
        onnx.checker.check_model(converted)
        kept = check is None or same_outputs(model, converted, check)
    except Exception as exc:  # the converter raises assorted C++-bound exception types
        return model, f"opset {found} kept (converting to {version} failed: {str(exc).splitlines()[0][:120]})"
    if not kept:
        return model, f"opset {found} kept (at opset {version} the model computes differently)"
    return converted, f"opset {found} upgraded to {version} for per-channel Q/DQ"
