"""Load an ONNX file (external data included) and prove it is a model edgeq can work on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper
from onnx.external_data_helper import load_external_data_for_model

from edgeq.data import InputSignature
from edgeq.errors import InputError
from edgeq.graph import all_nodes, default_opset

MIN_OPSET = 11
# Op domains ONNX Runtime's CPU provider implements: standard ONNX, ONNX-ML and ORT's contrib ops.
RUNTIME_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


PROTOBUF_MAX = 2**31 - 1  # bytes: a ModelProto above this cannot be serialized in memory


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """The model with its weights in memory; one clear error for any file that is not one.

    Everything is checked before the weights are read: the checker runs on the file (so models
    over 2 GB with external data are checked too) and shape inference on the weightless graph.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"model file {path} is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning and others
        raise InputError(f"{path} is not an ONNX model (cannot parse it: {_first_line(exc)})") from None
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path} is not an ONNX model (no graph inside)")
    _check_external_data(model, path.parent)
    check_model(model, str(path), path=path)
    try:
        load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the external data of {path}: {_first_line(exc)}") from None
    return model


def _check_external_data(model: onnx.ModelProto, base: Path) -> None:
    """Refuse external-data locations that escape the model's folder, are missing or too short."""
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (base / location).resolve()
        if not location or base.resolve() not in target.parents:
            raise InputError(f"tensor {tensor.name!r} points outside the model folder: {location!r}")
        if not target.is_file():
            raise InputError(f"external data file {location!r} for tensor {tensor.name!r} is missing")
        try:
            end = int(info.get("offset", 0)) + int(info.get("length", 0))
        except ValueError:
            raise InputError(f"tensor {tensor.name!r} has a malformed external-data offset/length") from None
        if end > target.stat().st_size:
            raise InputError(
                f"external data file {location!r} is shorter than tensor {tensor.name!r} needs "
                f"({target.stat().st_size} < {end} bytes): it is truncated or from another model"
            )


def _tensors(graph: onnx.GraphProto):
    """Initializers and tensor attributes (Constant values) of a graph and of all its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _tensors(subgraph)


def check_model(model: onnx.ModelProto, name: str, path: Path | None = None) -> None:
    """onnx.checker and shape inference, reported as one line naming the problem.

    With `path` the checker reads the file (external data stays on disk); otherwise it checks the
    proto in memory, which protobuf cannot do above 2 GB, so such models skip the checker.
    """
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise InputError(f"{name} uses opset {opset}; edgeq needs opset >= {MIN_OPSET} (re-export it)")
    _check_custom_ops(model, name)
    if not input_signatures(model):
        raise InputError(
            f"{name} has no inputs: it computes constants, so there is nothing to calibrate or measure; "
            "compile the model that feeds on data"
        )
    fits = fits_protobuf(model)
    try:
        if path is not None:
            onnx.checker.check_model(str(path), full_check=False)
        elif fits:
            onnx.checker.check_model(model, full_check=False)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InputError(f"{name} fails the ONNX checker: {_first_line(exc)}") from None
    if not fits:
        return
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False)
    except (onnx.shape_inference.InferenceError, ValueError) as exc:
        raise InputError(f"{name} fails ONNX shape inference: {_first_line(exc)}") from None


def fits_protobuf(model: onnx.ModelProto) -> bool:
    """Whether the model can be serialized in memory (under protobuf's 2 GB limit)."""
    try:
        return model.ByteSize() <= PROTOBUF_MAX
    except Exception:  # upb refuses to even size a message past the limit
        return False


def _check_custom_ops(model: onnx.ModelProto, name: str) -> None:
    """Refuse ops from custom domains: ONNX Runtime cannot run them, so nothing could be measured."""
    local = {(f.domain, f.name) for f in model.functions}  # model-local functions are inlined
    for node in all_nodes(model.graph):
        if node.domain not in RUNTIME_DOMAINS and (node.domain, node.op_type) not in local:
            raise InputError(
                f"{name}: node {node.name or node.output[0]!r} uses custom op "
                f"{node.domain}:{node.op_type}, which ONNX Runtime cannot run; replace it with "
                "standard ONNX ops or export without it"
            )


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def input_signatures(model: onnx.ModelProto) -> list[InputSignature]:
    """The graph inputs a caller must feed (initializers listed as inputs are not among them)."""
    initializers = {t.name for t in model.graph.initializer}
    signatures = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        signatures.append(InputSignature(value.name, dtype, dims))
    return signatures
