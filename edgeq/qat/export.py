"""Export a fake-quant model to standard QDQ ONNX (Brevitas QCDQ) with a dynamic batch axis."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from torch import nn

from edgeq.qat.deps import require_brevitas


def export_qdq(
    model: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int = 17,
) -> onnx.ModelProto:
    """Write `path` and return it checked: int8 weight initializers -> Clip -> DequantizeLinear.

    TorchScript export (not dynamo): Brevitas' dynamo path cannot write integer weights.
    """
    require_brevitas()
    from brevitas.export import export_onnx_qcdq

    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    model.eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        export_onnx_qcdq(
            model,
            args=example_inputs,
            export_path=str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            keep_initializers_as_inputs=False,
        )
    exported = onnx.load(str(path))
    onnx.checker.check_model(exported, full_check=True)
    return exported
