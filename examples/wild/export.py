"""Writing ONNX files: both torch exporters, external data, graph signatures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

TORCHSCRIPT_OPSET = 17
DYNAMO_OPSET = 18


def torch_to_onnx(
    module: torch.nn.Module,
    example: dict[str, torch.Tensor],
    outputs: list[str],
    path: Path,
    exporter: str,
    batch_axis: bool = True,
    opset: int | None = None,
) -> None:
    """Export module with the TorchScript ('torchscript') or torch.export ('dynamo') exporter.

    Inputs are named after the example's keys; axis 0 of every input is dynamic unless batch_axis is False.
    onnx.version_converter cannot lower torch's opset-17 graphs (no down-adapters for Relu-14, Identity-16),
    so an older opset is asked of the exporter itself.
    """
    module.eval()
    names = list(example)
    axes = {n: {0: "batch"} for n in [*names, *outputs]} if batch_axis else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                module,
                tuple(example.values()),
                str(path),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset or TORCHSCRIPT_OPSET,
                dynamo=False,
            )
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch")
            shapes = tuple({0: batch} for _ in names) if batch_axis else None
            program = torch.onnx.export(
                module,
                tuple(example.values()),
                input_names=names,
                output_names=outputs,
                dynamic_shapes=shapes,
                verbose=False,
                opset_version=opset or DYNAMO_OPSET,
                dynamo=True,
                external_data=False,
            )
            program.save(str(path), external_data=False)
        else:
            raise ValueError(f"unknown exporter {exporter!r}")


def to_external_data(path: Path) -> None:
    """Rewrite path so every initializer lives in path + '.data' (the large-model layout)."""
    model = onnx.load(str(path))
    location = path.name + ".data"
    onnx.save(model, str(path), save_as_external_data=True, location=location, size_threshold=0)


def opset(model: onnx.ModelProto) -> int:
    """The default-domain ('ai.onnx') opset the model imports."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def signature(model: onnx.ModelProto) -> list[dict]:
    """The graph inputs that are not initializers: name, element type and shape (str for symbolic dims)."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tensor.shape.dim]
        name = "string" if tensor.elem_type == onnx.TensorProto.STRING else np.dtype(dtype).name
        inputs.append({"name": value.name, "dtype": name, "shape": dims})
    return inputs
