"""`edgeq inspect`: what a user needs to know about a model before building its calibration data."""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edgeq.frontend.input_roles import resolve_roles
from edgeq.frontend.onnx_load import load_onnx
from edgeq.graph import all_nodes, default_opset, model_bytes
from edgeq.measure.kinds import OutputKind, graph_kinds
from edgeq.quant.prequantized import is_quantized

Dim = int | str | None  # a fixed size, a symbolic name (e.g. "batch"), or unknown


@dataclass
class TensorInfo:
    """One graph input or output: name, numpy dtype name, shape with symbolic dims kept."""

    name: str
    dtype: str
    shape: list[Dim]
    kind: str | None = None
    """What an output is for (embedding, class-scores, ...) as the graph shows it, the same rule a
    compile starts from (`edgeq.measure.kinds`); None: a compile decides from the outputs on data."""
    kind_reason: str | None = None


@dataclass
class ModelInfo:
    """A model's interface and size, as `edgeq inspect` prints it (or writes it with --json)."""

    path: str
    opset: int
    producer: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ops: dict[str, int]
    nodes: int
    parameters: int
    parameter_bytes: int
    file_bytes: int
    quantized: bool
    opsets: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    """How each input would be fed with no `inputs:` declared (see docs/streaming.md), in words."""
    arrays: dict[str, str] = field(default_factory=dict)
    """What a calibration file holds for each input, where that is not `[N, ...]` of its shape."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspect_model(path: str | Path) -> ModelInfo:
    """Read and check an ONNX file (one clear error if it is not one) and describe it."""
    path = Path(path)
    model = load_onnx(path)
    inferred = onnx.shape_inference.infer_shapes(model)  # fills output shapes an exporter left out
    initializers = {t.name for t in model.graph.initializer}
    kinds = graph_kinds(inferred)
    weights = [*model.graph.initializer, *_constant_tensors(model.graph)]
    histogram = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        for node in all_nodes(model.graph)
    )
    return ModelInfo(
        path=str(path.resolve()),
        opset=default_opset(model),
        producer=" ".join(filter(None, (model.producer_name, model.producer_version))),
        inputs=[_tensor(v) for v in inferred.graph.input if v.name not in initializers],
        outputs=[_output(v, kinds[v.name]) for v in inferred.graph.output],
        ops=dict(histogram.most_common()),
        nodes=sum(histogram.values()),
        parameters=sum(_elements(t) for t in weights),
        parameter_bytes=sum(_elements(t) * _itemsize(t) for t in weights),
        file_bytes=model_bytes(path),
        quantized=is_quantized(model),
        opsets={o.domain or "ai.onnx": o.version for o in model.opset_import},
        roles=_roles(model),
        arrays=_arrays(model),
    )


def _arrays(model: onnx.ModelProto) -> dict[str, str]:
    """The calibration arrays of a model fed other than batch-first: streams, constants, states."""
    roles = resolve_roles(model, {})
    if roles.plain:
        return {}
    arrays = {}
    for value in model.graph.input:
        role = roles.inputs.get(value.name)
        if role is None:
            continue
        shape = _tensor(value).shape
        if role.state_from:
            arrays[value.name] = "optional (a carried state starts at zeros)"
        elif not shape:
            arrays[value.name] = "a scalar (one value: a constant) or [N]"
        else:
            rest = [d for axis, d in enumerate(shape) if axis != role.batch_axis]
            lead = ["S", "F"] if roles.streaming else ["N"]
            whole = (
                " (or one stream as the model takes it, frames on its batch axis)" if roles.streaming else ""
            )
            arrays[value.name] = shape_text([*lead, *rest]) + whole
    return arrays


def _roles(model: onnx.ModelProto) -> dict[str, str]:
    """Each input's inferred role; a scalar's value is read from the data when it holds one."""
    roles = resolve_roles(model, {})
    return {
        name: "scalar: a constant if the data holds one value, else one sample per call"
        if role.batch_axis is None and role.constant is None and not role.state_from
        else role.describe()
        for name, role in roles.inputs.items()
    }


def _tensor(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor = value.type.tensor_type
    shape: list[Dim] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
    ]
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name if tensor.elem_type else "?"
    return TensorInfo(value.name, dtype, shape)


def _output(value: onnx.ValueInfoProto, kind: OutputKind | None) -> TensorInfo:
    info = _tensor(value)
    if kind is not None:
        info.kind, info.kind_reason = kind.kind, kind.reason
    return info


def _constant_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Weights held in Constant nodes (some exporters write them instead of initializers)."""
    return [
        a.t for node in all_nodes(graph) if node.op_type == "Constant" for a in node.attribute if a.t.dims
    ]


def _elements(tensor: onnx.TensorProto) -> int:
    return int(np.prod(tensor.dims, dtype=np.int64))


def _itemsize(tensor: onnx.TensorProto) -> int:
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize


def shape_text(shape: list[Dim]) -> str:
    """`[batch, 1, 8, 8]`: symbolic dims by name, unknown ones as `?`."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def describe(info: ModelInfo, calib_samples: int = 256, eval_fraction: float = 0.5) -> list[str]:
    """The lines `edgeq inspect` prints, ending with what a calibration file for this model holds."""
    width = max(len(t.name) for t in [*info.inputs, *info.outputs])
    lines = [
        f"model    {info.path}",
        f"opset    {info.opset}" + (f" ({info.producer})" if info.producer else ""),
    ]
    for title, tensors in (("inputs", info.inputs), ("outputs", info.outputs)):
        lines.append(title)
        lines += [f"  {t.name:<{width}}  {t.dtype:<8} {shape_text(t.shape)}" for t in tensors]
    if any(how != "batch axis 0" for how in info.roles.values()):
        lines.append("roles    (inferred; declare them in the recipe's inputs: section)")
        lines += [f"  {name:<{width}}  {how}" for name, how in info.roles.items()]
    lines.append(
        "kinds    what each output is judged as (a compile confirms on data; recipe `kinds` overrides)"
    )
    lines += [f"  {t.name:<{width}}  {_kind_text(t)}" for t in info.outputs]
    ops = ", ".join(f"{op} {count}" for op, count in info.ops.items())
    lines += textwrap.wrap(
        f"{info.nodes} nodes: {ops}", 100, initial_indent="ops      ", subsequent_indent=" " * 9
    )
    lines.append(
        f"size     {info.parameters:,} parameters, {_mb(info.parameter_bytes)} of weights, "
        f"file {_mb(info.file_bytes)}" + (" (already quantized)" if info.quantized else "")
    )
    arrays = ", ".join(
        f"{t.name}={t.dtype} {info.arrays.get(t.name) or shape_text(['N', *t.shape[1:]])}"
        for t in info.inputs
    )
    held = round(100 * eval_fraction)
    unit = "S = streams of F frames" if any("S, F" in a for a in info.arrays.values()) else "N = samples"
    lines += [
        f"calib    an .npz with one array per input: {arrays} ({unit})",
        f"         build it: edgeq calib SOURCE --model {Path(info.path).name} -o calib.npz",
        f"         a compile holds out {held}% of N (seeded) to evaluate unless --eval is given, and "
        f"calibrates on up to {calib_samples} of the rest (--calib-samples)",
    ]
    return lines


def _kind_text(output: TensorInfo) -> str:
    if output.kind is None:
        return (
            "decided on data: embedding if rows are unit vectors, binary if values are 0/1 or ±1, else dense"
        )
    return f"{output.kind}: {output.kind_reason}"


def _mb(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 10_000 else f"{count} B"
