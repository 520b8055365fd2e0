"""Export a torch module to ONNX with a dynamic batch axis, then prove parity with torch."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import numpy as np
import onnx

from edgeq.errors import InputError, ParityError
from edgeq.frontend.onnx_load import check_model
from edgeq.measure.fidelity import cosine
from edgeq.optional import require_torch

torch = require_torch("exporting a torch module")

OPSET = 17


@dataclass(frozen=True)
class Parity:
    """Largest disagreement between torch and the exported ONNX model, per output."""

    output: str
    max_abs: float
    cosine: float


def export_torch(
    module: torch.nn.Module,
    example_inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    atol: float = 1e-4,
    min_cosine: float = 0.9999,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> tuple[onnx.ModelProto, list[Parity]]:
    """The module as fp32 ONNX, checked against torch on the example inputs.

    Axis 0 of every input and output is the dynamic batch unless `dynamic_axes` names them (e.g. a
    sequence axis too)."""
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise InputError("example_inputs must be a tensor or a sequence of tensors")
    module = module.eval()
    with torch.no_grad():
        try:
            outputs = module(*inputs)
        except Exception as exc:  # whatever the module raises on inputs it cannot take
            shapes = ", ".join(str(tuple(t.shape)) for t in inputs)
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise InputError(f"the module cannot run on example_inputs of shape {shapes}: {first}") from None
        reference = _as_tuple(outputs)
    in_names = list(input_names or [f"input_{i}" for i in range(len(inputs))])
    out_names = list(output_names or [f"output_{i}" for i in range(len(reference))])
    if len(in_names) != len(inputs) or len(out_names) != len(reference):
        raise InputError(
            f"the module takes {len(inputs)} inputs and returns {len(reference)} outputs; "
            f"got {len(in_names)} input names and {len(out_names)} output names"
        )
    buffer = io.BytesIO()
    axes = dynamic_axes or {name: {0: "batch"} for name in in_names + out_names}
    # Exported with autograd on: under no_grad torch takes fused fast paths (e.g. the transformer
    # encoder's) that have no ONNX form. Exporter chatter goes to a buffer, not the user's terminal.
    chatter = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(chatter), redirect_stderr(chatter):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                inputs,
                buffer,
                input_names=in_names,
                output_names=out_names,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        except Exception as exc:  # the exporter raises many types; the user needs its message
            raise InputError(f"torch.onnx.export failed: {str(exc).splitlines()[0]}") from None
    model = onnx.load_from_string(buffer.getvalue())
    check_model(model, f"exported {type(module).__name__}")
    parity = check_parity(model, inputs, reference, out_names, atol, min_cosine)
    return model, parity


def _as_tuple(value) -> tuple[torch.Tensor, ...]:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    raise InputError("the module must return a tensor or a tuple of tensors to be exported")


def check_parity(model, inputs, reference, out_names, atol: float, min_cosine: float) -> list[Parity]:
    """Run the exported model in ONNX Runtime and compare every output with torch's."""
    from edgeq.runtime.session import OrtRunner

    runner = OrtRunner(model.SerializeToString())
    feeds = {name: t.detach().cpu().numpy() for name, t in zip(runner.input_names, inputs, strict=True)}
    got = runner.run(runner.feeds(feeds))
    results = []
    for name, expected in zip(out_names, reference, strict=True):
        want = expected.detach().cpu().numpy()
        have = got[name]
        max_abs = float(np.max(np.abs(have.astype(np.float64) - want))) if want.size else 0.0
        cos = cosine(want, have) if want.dtype.kind == "f" else float(np.array_equal(want, have))
        results.append(Parity(name, max_abs, cos))
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if max_abs > atol * max(1.0, scale) or cos < min_cosine:
            raise ParityError(
                f"exported ONNX output {name!r} differs from torch: max abs error {max_abs:.3g}, "
                f"cosine {cos:.6f} (tolerance {atol:g}, min cosine {min_cosine})"
            )
    return results
