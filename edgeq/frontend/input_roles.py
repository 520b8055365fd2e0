"""Input roles of a model: the recipe's `inputs:` section checked against the graph, the rest inferred.

Inferred where the graph makes it clear: an input and an output of the same dtype and rank named
like a state and its next value (state/stateN, h/hn, c/cn, h0/hn, s/s_next) are a carried state,
batched on their one dynamic axis; a scalar input the data holds one value for is a constant (other
scalars are fed one sample per call); an input whose axis 0 is fixed and one other axis is named
like a batch is batched there; everything else is batched on axis 0, as edgeq always assumed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper

from edgeq.errors import InputError
from edgeq.recipe import InputSpec
from edgeq.runtime.roles import METADATA_KEY, InputRole, InputRoles, roles_in_metadata

Dims = tuple[int | str | None, ...]  # fixed size, symbolic name, or unknown


def _tensors(values) -> dict[str, tuple[np.dtype, Dims]]:
    found = {}
    for value in values:
        tensor = value.type.tensor_type
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim
        )
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)) if tensor.elem_type else None
        found[value.name] = (dtype, dims if tensor.HasField("shape") else None)
    return found


def model_inputs(model: onnx.ModelProto) -> dict[str, tuple[np.dtype, Dims]]:
    initializers = {t.name for t in model.graph.initializer}
    return {k: v for k, v in _tensors(model.graph.input).items() if k not in initializers}


def resolve_roles(
    model: onnx.ModelProto, specs: Mapping[str, InputSpec], data: Mapping[str, np.ndarray] | None = None
) -> InputRoles:
    """Every input's role: declared in `specs`, else inferred from the graph and `data` (raw arrays)."""
    inputs, outputs = model_inputs(model), _tensors(model.graph.output)
    unknown = [name for name in specs if name not in inputs]
    if unknown:
        raise InputError(f"inputs: the model has no input {unknown[0]!r} (its inputs: {', '.join(inputs)})")
    frame_inputs = [
        dims
        for name, (dtype, dims) in inputs.items()
        if not (specs.get(name) and specs[name].state_from)
        and _state_output(name, (dtype, dims), outputs) is None
    ]
    batches = {d[0] for d in frame_inputs if d and isinstance(d[0], int)}  # a fixed export's batch
    batch = next(iter(batches)) if len(batches) == 1 else None
    roles = {name: _role(name, inputs[name], specs.get(name), outputs, data or {}, batch) for name in inputs}
    return InputRoles(roles, _output_axes(roles, inputs, outputs))


def _role(name, signature, spec: InputSpec | None, outputs, data, batch: int | None) -> InputRole:
    dtype, dims = signature
    spec = spec or InputSpec()
    declared = any(v is not None for v in (spec.batch_axis, spec.constant, spec.state_from))
    how = "declared" if declared else "inferred"
    if spec.constant is not None:
        return InputRole(name, None, _constant(name, spec.constant, dtype, dims), how="declared")
    state_from = spec.state_from or (None if declared else _state_output(name, signature, outputs))
    if state_from is not None:
        _check_state(name, signature, state_from, outputs)
    axis = _axis(name, spec.batch_axis, dims, state_from, batch)
    if not dims and dims is not None and state_from is None and spec.batch_axis is None:
        value = _single_value(data.get(name))
        if value is not None:
            return InputRole(name, None, value.astype(dtype), how="inferred")
    if not declared and state_from is None and axis == 0:
        how = "default"
    return InputRole(name, axis, None, state_from, how)


def _axis(name: str, declared, dims: Dims | None, state_from: str | None, batch: int | None) -> int | None:
    """The declared batch axis (checked against the input's rank and fixed dims) or the inferred one:
    a state's is its one dynamic axis, or in a fixed export the one axis of the inputs' fixed batch."""
    if declared == "none":
        return None
    rank = len(dims) if dims is not None else None
    if declared is not None:
        if rank is not None and not -rank <= declared < rank:
            raise InputError(f"inputs: {name}.batch_axis {declared} is outside its {rank} axes")
        axis = declared % rank if rank else declared
        if dims is not None and isinstance(dims[axis], int) and dims[axis] > 1:
            raise InputError(
                f"inputs: {name}.batch_axis {declared}: that axis is fixed at {dims[axis]} in the model, "
                "it cannot hold the samples"
            )
        return axis
    if dims is None:
        return 0
    if not dims:
        return None  # a scalar: one value per call
    free = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    if state_from is not None:
        sized = [i for i, d in enumerate(dims) if d == batch]
        return free[0] if len(free) == 1 else (sized[0] if len(sized) == 1 and not free else None)
    named = [i for i in free if isinstance(dims[i], str) and "batch" in dims[i].lower()]
    return named[0] if isinstance(dims[0], int) and len(named) == 1 else 0


def _state_output(name: str, signature, outputs) -> str | None:
    """The output named like this input's next value, with its dtype and rank (state → stateN, h → hn)."""
    stem = name[:-1] if name.endswith("0") else name
    wanted = {f"{stem}n", f"{stem}N", f"{stem}_n", f"{stem}_next", f"next_{stem}"}
    wanted |= {w.lower() for w in wanted}
    for output, (dtype, dims) in outputs.items():
        if output in wanted and output != name and _compatible(signature, (dtype, dims)):
            return output
    return None


def _compatible(a, b) -> bool:
    (dtype_a, dims_a), (dtype_b, dims_b) = a, b
    if dtype_a != dtype_b or dims_a is None or dims_b is None or len(dims_a) != len(dims_b):
        return False
    return all(
        not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(dims_a, dims_b, strict=True)
    )


def _check_state(name, signature, output: str, outputs) -> None:
    if output not in outputs:
        raise InputError(
            f"inputs: {name}.state_from names no output {output!r} "
            f"(the model's outputs: {', '.join(outputs)})"
        )
    if not _compatible(signature, outputs[output]) and outputs[output][1] is not None:
        raise InputError(
            f"inputs: {name} ({_text(signature)}) cannot take output {output!r} ({_text(outputs[output])}): "
            "a carried state needs the same dtype and shape"
        )


def _text(signature) -> str:
    dtype, dims = signature
    shape = "?" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
    return f"{dtype} {shape}"


def _constant(name: str, value, dtype: np.dtype, dims: Dims | None) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError:
        raise InputError(f"inputs: {name}.constant is ragged; give a number or equal-length rows") from None
    if array.dtype.kind not in "biuf" or dtype.kind in "iu" and array.dtype.kind == "f":
        raise InputError(f"inputs: {name}.constant {value!r:.40} does not fit the input's dtype {dtype}")
    if dims is not None and (
        array.ndim != len(dims)
        or any(isinstance(d, int) and d != s for d, s in zip(dims, array.shape, strict=True))
    ):
        raise InputError(
            f"inputs: {name}.constant has shape {list(array.shape)}, the input is {_text((dtype, dims))}"
        )
    return array.astype(dtype)


def _single_value(array: np.ndarray | None) -> np.ndarray | None:
    """The one value a scalar input's data holds (a scalar, or the same value repeated), else None."""
    if array is None or array.size == 0 or array.ndim > 1 or (array != array.flat[0]).any():
        return None
    return np.asarray(array.flat[0])


def _output_axes(roles: dict[str, InputRole], inputs, outputs) -> dict[str, int | None]:
    """Each output's batch axis: a state's is its input's; else the axis named like an input's batch
    dim (a symbolic dim), else axis 0 where the model is batched."""
    batched = [r for r in roles.values() if r.batch_axis is not None and r.constant is None]
    named = {
        inputs[r.name][1][r.batch_axis] for r in batched if isinstance(inputs[r.name][1][r.batch_axis], str)
    }
    axes: dict[str, int | None] = {}
    for output, (_, dims) in outputs.items():
        carried = [r for r in roles.values() if r.state_from == output]
        if carried:
            axes[output] = carried[0].batch_axis
        elif not batched:
            axes[output] = None
        else:
            matches = [i for i, d in enumerate(dims or ()) if isinstance(d, str) and d in named]
            axes[output] = matches[0] if matches else 0
    return axes


def with_roles(model: onnx.ModelProto, roles: InputRoles) -> onnx.ModelProto:
    """`model` carrying `roles` in its metadata (unless they are the plain layout, which needs no note)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if not roles.plain:
        model.metadata_props.add(key=METADATA_KEY, value=roles.to_json())
    return model


def roles_of(model: onnx.ModelProto) -> InputRoles:
    """The roles `model` carries (see `with_roles`), or batch on axis 0 of every input."""
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return roles_in_metadata(metadata, list(model_inputs(model)))
