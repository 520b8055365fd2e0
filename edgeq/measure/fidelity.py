"""How far a compiled model's outputs are from fp32: cosine, relative L2, SQNR, max abs error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgeq.quant.primitives import sqnr_db


def cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays (1.0 when both are all zero)."""
    a = reference.astype(np.float64).ravel()
    b = candidate.astype(np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(a @ b / norms)


@dataclass(frozen=True)
class OutputFidelity:
    """One output's agreement with fp32 (`agreement` = share of equal values, for integer outputs)."""

    name: str
    cosine: float | None
    rel_l2: float | None
    sqnr_db: float | None
    max_abs: float | None
    agreement: float | None
    centered_cosine: float | None = None  # cosine after removing fp32's mean output: what differs


def compare_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> list[OutputFidelity]:
    """Per-output fidelity of `candidate` against `reference` over all evaluation samples."""
    results = []
    for name, want in reference.items():
        have = candidate[name]
        if want.shape != have.shape:
            raise ValueError(f"output {name!r} changed shape: {want.shape} -> {have.shape}")
        if want.dtype.kind != "f":
            results.append(OutputFidelity(name, None, None, None, None, float(np.mean(want == have))))
            continue
        a, b = want.astype(np.float64), have.astype(np.float64)
        norm = float(np.linalg.norm(a))
        error = float(np.linalg.norm(a - b))
        rel_l2 = error / norm if norm else (0.0 if error == 0.0 else float("inf"))
        max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
        mean = a.mean(axis=0, keepdims=True) if a.ndim > 1 and len(a) > 1 else 0.0
        results.append(
            OutputFidelity(
                name, cosine(a, b), rel_l2, sqnr_db(a, b), max_abs, None, cosine(a - mean, b - mean)
            )
        )
    return results
