"""Reference models (MRL encoder, binary AE, pointer net), loaders, and one ONNX export path."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgeq.errors import ParityError
from edgeq.zoo.binary_ae import BinaryAE, BitEncoder, load_binary_ae
from edgeq.zoo.mrl import NESTED_DIMS, MRLEncoder, digits_split, load_mrl_encoder
from edgeq.zoo.pointer import PointerNet, load_pointer_net

__all__ = [
    "NESTED_DIMS",
    "BinaryAE",
    "BitEncoder",
    "MRLEncoder",
    "PointerNet",
    "digits_split",
    "export_onnx",
    "load_binary_ae",
    "load_mrl_encoder",
    "load_pointer_net",
]


def export_onnx(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    output_names: Sequence[str],
    path: str | Path,
    atol: float = 1e-4,
) -> dict[str, float]:
    """Export with a dynamic "batch" axis (opset 17), then check ONNX Runtime against torch.

    Returns the max abs error per output; raises ParityError past `atol` (integer outputs must
    match exactly), so a checked-in ONNX file always reproduces its checkpoint.
    """
    model = model.eval()
    args = tuple(inputs.values())
    axes = {name: {0: "batch"} for name in [*inputs, *output_names]}
    with warnings.catch_warnings():
        # The LSTM batch-size caveat is about caller-given h0/c0; ours are zeros sized from the
        # input, and the tests run other batch sizes through ONNX Runtime.
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module="torch.nn")
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(output_names), {k: v.numpy() for k, v in inputs.items()})
    with torch.no_grad():
        expected = model(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    errors = {}
    for name, ours, theirs in zip(output_names, got, expected, strict=True):
        theirs = theirs.numpy()
        if ours.shape != theirs.shape:
            raise ParityError(f"{path}: output {name!r} shape {ours.shape} vs torch {theirs.shape}")
        errors[name] = float(np.abs(ours.astype(np.float64) - theirs).max())
        limit = 0.0 if np.issubdtype(theirs.dtype, np.integer) else atol
        if errors[name] > limit:
            raise ParityError(f"{path}: output {name!r} differs from torch by {errors[name]:.3g}")
    return errors
