"""What each output is for, read from the graph and fp32's outputs, and the metric that judges it.

An embedding is judged by whether its nearest neighbours survive, a classifier by its argmax, a code
by its bits: output cosine alone passes INT8 sentence encoders that lose one neighbour in ten and
classifiers that flip 2% of their labels (docs/fidelity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

import numpy as np
import onnx

from edgeq.measure.fidelity import cosine
from edgeq.quant.primitives import sqnr_db
from edgeq.recipe import OutputKindName

KINDS: tuple[str, ...] = get_args(OutputKindName)

NEIGHBOURS = 10  # recall@k of fp32's nearest neighbours: k = min(NEIGHBOURS, N - 1)
TOP_K = 5
MIN_EMBEDDING_DIM = 8
NORMALISED = 1e-2  # rows whose L2 norms are all within this of 1 are unit vectors

_PASS_THROUGH = {"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}
_POOLING = {"ReduceMean", "ReduceSum", "ReduceMax", "GlobalAveragePool", "GlobalMaxPool"}
_NORMS = {"LpNormalization", "ReduceL2", "ReduceSumSquare", "Sqrt"}
_THRESHOLDS = {"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Sign", "Round"}
_SCORE_NAMES = ("logit", "score", "class", "cls", "prob", "label")
_EMBEDDING_NAMES = ("emb", "feat", "vec", "pool", "sentence", "hidden")


@dataclass(frozen=True)
class OutputKind:
    """One output's kind, why edgeq thinks so, and (class scores) the axis that holds the classes."""

    name: str
    kind: str
    reason: str
    axis: int = -1


@dataclass(frozen=True)
class KindMetric:
    """One measured value of an output's kind metric (e.g. `neighbour recall@10` of `embedding`)."""

    output: str
    kind: str
    metric: str
    value: float


# --- recognition -----------------------------------------------------------------------------


def graph_kinds(model: onnx.ModelProto) -> dict[str, OutputKind | None]:
    """Each graph output's kind from the graph alone (None: fp32's outputs on data decide); pass a
    shape-inferred model so the output dims are known."""
    found = {}
    for value in model.graph.output:
        tensor = value.type.tensor_type
        dims = [d.dim_value or None for d in tensor.shape.dim]
        is_float = tensor.elem_type in _FLOATS
        found[value.name] = _from_graph(model, value.name, is_float, dims, opset_of(model))
    return found


def recognise(
    model: onnx.ModelProto, reference: Mapping[str, np.ndarray], overrides: Mapping[str, str] | None = None
) -> list[OutputKind]:
    """Each output's kind: the recipe's override, else the graph's evidence, else fp32's values."""
    overrides = overrides or {}
    opset = opset_of(model)
    kinds = []
    for name, values in reference.items():
        dims = list(values.shape)
        seen = _from_graph(model, name, values.dtype.kind == "f", dims, opset)
        found = seen or _from_values(name, values)
        if name in overrides:
            axis = found.axis if found.kind == "class-scores" else -1
            found = OutputKind(name, overrides[name], "set by the recipe (kinds)", axis)
        kinds.append(found)
    return kinds


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)


_FLOATS = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.BFLOAT16,
}


def _from_graph(
    model: onnx.ModelProto, name: str, is_float: bool, dims: list[int | None], opset: int
) -> OutputKind | None:
    """The kind the producing op shows, or None where only the values can tell."""
    if not is_float:
        return OutputKind(name, "integer", "integer dtype: exact agreement")
    node, reshaped = _producer(model, name)
    op = node.op_type if node is not None else None
    rank = len(dims)
    if op in _THRESHOLDS:
        return OutputKind(name, "binary", f"thresholded by {op}")
    if op in ("Softmax", "LogSoftmax"):
        axis = -1 if reshaped else _axis(node, opset)
        axis = axis % rank if rank else -1
        if rank >= 2 and axis != 0 and (dims[axis] or 2) >= 2:
            where = f"per position over axis {axis}" if rank > 2 else f"over {dims[axis] or 'C'} classes"
            return OutputKind(name, "class-scores", f"{op} {where}", axis if rank > 2 else -1)
    if op == "Sigmoid" and rank == 2 and (dims[1] or 2) >= 2:
        return OutputKind(name, "class-scores", f"Sigmoid over {dims[1] or 'C'} classes")
    lowered = name.lower()
    if rank == 2 and (dims[1] or 2) >= 2 and any(word in lowered for word in _SCORE_NAMES):
        return OutputKind(name, "class-scores", f"[N, C] named {name!r} (logits)")
    if rank == 2 and (dims[1] or MIN_EMBEDDING_DIM) >= MIN_EMBEDDING_DIM:
        if op in _POOLING:
            return OutputKind(name, "embedding", f"[N, D] pooled by {op}")
        if op == "LpNormalization" or (op == "Div" and _divides_by_norm(model, node)):
            return OutputKind(name, "embedding", "[N, D] L2-normalised in the graph")
        if any(word in lowered for word in _EMBEDDING_NAMES):
            return OutputKind(name, "embedding", f"[N, D] named {name!r}")
    return None


def _from_values(name: str, values: np.ndarray) -> OutputKind:
    """Kinds only fp32's outputs reveal: codes, unit-norm rows; otherwise a dense output."""
    if values.size and np.isin(values, (0.0, 1.0)).all():
        return OutputKind(name, "binary", "fp32 values are all 0 or 1")
    if values.size and np.isin(values, (-1.0, 1.0)).all():
        return OutputKind(name, "binary", "fp32 values are all -1 or +1")
    if values.ndim == 2 and values.shape[1] >= MIN_EMBEDDING_DIM and len(values):
        norms = np.linalg.norm(values.astype(np.float64), axis=1)
        if np.all(np.abs(norms - 1.0) <= NORMALISED):
            return OutputKind(name, "embedding", "[N, D] rows are L2-normalised")
    shape = "[N, D]" if values.ndim == 2 else f"a float map of rank {values.ndim}"
    reason = f"{shape} with no softmax, pooling or normalisation before it: relative L2 and SQNR"
    return OutputKind(name, "dense", reason)


def _producer(model: onnx.ModelProto, name: str) -> tuple[onnx.NodeProto | None, bool]:
    """The op that computes `name`, looking through shape-only ops; whether a reshape was passed."""
    producers = {out: node for node in model.graph.node for out in node.output}
    node, reshaped = producers.get(name), False
    while node is not None and node.op_type in _PASS_THROUGH and node.input:
        reshaped |= node.op_type not in ("Identity", "Cast")
        node = producers.get(node.input[0])
    return node, reshaped


def _axis(node: onnx.NodeProto, opset: int) -> int:
    given = next((a.i for a in node.attribute if a.name == "axis"), None)
    return given if given is not None else (-1 if opset >= 13 else 1)


def _divides_by_norm(model: onnx.ModelProto, node: onnx.NodeProto, depth: int = 4) -> bool:
    """x / ‖x‖: the divisor is computed by a norm op within a few steps."""
    producers = {out: n for n in model.graph.node for out in n.output}
    frontier = [node.input[1]] if len(node.input) > 1 else []
    for _ in range(depth):
        nodes = [producers[name] for name in frontier if name in producers]
        if any(n.op_type in _NORMS for n in nodes):
            return True
        frontier = [name for n in nodes for name in n.input]
    return False


# --- metrics (pure) ------------------------------------------------------------------------


def neighbours(embeddings: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Each row's k nearest other rows by cosine similarity (as a set per row), `block` rows at a
    time so a large evaluation set never holds the whole N×N similarity matrix."""
    rows = embeddings.astype(np.float64).reshape(len(embeddings), -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    found = []
    for start in range(0, len(unit), block):
        similarity = unit[start : start + block] @ unit.T
        own = np.arange(start, start + len(similarity))
        similarity[own - start, own] = -np.inf
        found.append(np.argpartition(-similarity, k - 1, axis=1)[:, :k])
    return np.concatenate(found) if found else np.zeros((0, k), dtype=np.int64)


def neighbour_recall(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    """Mean share of each sample's k nearest fp32 neighbours still among its k nearest (recall@k)."""
    want, have = neighbours(reference, k), neighbours(candidate, k)
    kept = (want[:, :, None] == have[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(kept / k))


def mean_row_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine per sample, averaged (what an embedding user calls 'cosine')."""
    return float(np.mean([cosine(a, b) for a, b in zip(reference, candidate, strict=True)]))


def class_rows(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Scores as [positions, classes]: one row per sample (and per pixel or frame of a map)."""
    moved = np.moveaxis(scores, axis, -1)
    return moved.reshape(-1, moved.shape[-1])


def top_k_agreement(reference: np.ndarray, candidate: np.ndarray, k: int) -> float:
    """Share of rows whose fp32 argmax is among the candidate's k highest scores (k=1: same argmax)."""
    want = np.argmax(reference, axis=1)
    if k == 1:
        return float(np.mean(want == np.argmax(candidate, axis=1)))
    top = np.argsort(-candidate, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == want[:, None]).any(axis=1)))


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose argmax is the label."""
    return float(np.mean(np.argmax(scores, axis=1) == labels.reshape(-1)))


def positives(values: np.ndarray, signed: bool) -> np.ndarray:
    """The set bits: > 0 for ±1 codes, > 0.5 for 0/1 codes (a candidate's values may sit between)."""
    return values > (0.0 if signed else 0.5)


def bit_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of equal bits (positions of a map)."""
    return float(np.mean(reference == candidate)) if reference.size else 1.0


def iou(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Intersection over union of the set bits (1.0 when neither sets any)."""
    union = np.logical_or(reference, candidate).sum()
    return float(np.logical_and(reference, candidate).sum() / union) if union else 1.0


def relative_l2(reference: np.ndarray, candidate: np.ndarray) -> float:
    a, b = reference.astype(np.float64), candidate.astype(np.float64)
    norm, error = float(np.linalg.norm(a)), float(np.linalg.norm(a - b))
    return error / norm if norm else (0.0 if error == 0.0 else float("inf"))


# --- per output ------------------------------------------------------------------------------


def kind_metrics(
    kinds: list[OutputKind],
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    labels: np.ndarray | None = None,
) -> list[KindMetric]:
    """Every output's kind metrics, candidate against fp32 over all evaluation samples."""
    found = []
    for kind in kinds:
        values = _measure(kind, reference[kind.name], candidate[kind.name], labels)
        found += [KindMetric(kind.name, kind.kind, metric, value) for metric, value in values.items()]
    return found


def _measure(
    kind: OutputKind, want: np.ndarray, have: np.ndarray, labels: np.ndarray | None
) -> dict[str, float]:
    if kind.kind == "integer" or want.dtype.kind != "f":
        return {"agreement": float(np.mean(want == have)) if want.size else 1.0}
    if kind.kind == "embedding":
        rows_want, rows_have = want.reshape(len(want), -1), have.reshape(len(have), -1)
        found = {"mean cosine": mean_row_cosine(rows_want, rows_have)}
        k = min(NEIGHBOURS, len(want) - 1)
        if k >= 1:
            found[f"neighbour recall@{k}"] = neighbour_recall(rows_want, rows_have, k)
        return found
    if kind.kind == "class-scores" and want.ndim >= 2:
        rows_want, rows_have = class_rows(want, kind.axis), class_rows(have, kind.axis)
        found = {"top-1 agreement": top_k_agreement(rows_want, rows_have, 1)}
        if len(rows_want) > 1 and np.unique(rows_want.argmax(axis=1)).size == 1:
            # fp32 gives every sample one class: agreement cannot see damage, so the scores are judged too
            found["cosine"] = cosine(want, have)
        if rows_want.shape[1] > TOP_K:
            found[f"top-{TOP_K} agreement"] = top_k_agreement(rows_want, rows_have, TOP_K)
        if labels is not None and labels.size == len(rows_want) and labels.dtype.kind in "iub":
            found["accuracy"] = accuracy(rows_have, labels)
            found["fp32 accuracy"] = accuracy(rows_want, labels)
        return found
    if kind.kind == "binary":
        signed = bool(want.size) and want.min() < 0
        bits_want, bits_have = positives(want, signed), positives(have, signed)
        return {"bit agreement": bit_agreement(bits_want, bits_have), "IoU": iou(bits_want, bits_have)}
    return {"cosine": cosine(want, have), "rel L2": relative_l2(want, have), "SQNR dB": sqnr_db(want, have)}


def unknown_kinds(model: onnx.ModelProto, overrides: Mapping[str, str]) -> str | None:
    """One line naming a kind override for an output the model does not have (or an unknown kind)."""
    outputs = [o.name for o in model.graph.output]
    for name, kind in overrides.items():
        if name not in outputs:
            return f"kinds: the model has no output {name!r}; its outputs: {', '.join(outputs)}"
        if kind not in KINDS:
            return f"kinds[{name!r}]: unknown kind {kind!r}; choose one of {', '.join(KINDS)}"
    return None
