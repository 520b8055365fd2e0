"""MRL retrieval evaluator: quality at every nested dim, and compatibility with an fp32 index.

At each dim m the embeddings are sliced to their first m dims and L2-normalised (cosine search).
Protocol: leave-one-out over the evaluation set, each sample a query against all the others.
Compatibility: compiled-model queries searched against the fp32 gallery; its fp32 column is the
fp32-vs-fp32 score, so its drop says whether a deployed index must be re-embedded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeq.measure.tasks import Predictor, TaskMetric, TaskResult


def normalized_prefix(embeddings: np.ndarray, dim: int) -> np.ndarray:
    """First `dim` dims, L2-normalised (zero vectors stay zero)."""
    prefix = np.asarray(embeddings[:, :dim], dtype=np.float64)
    norms = np.linalg.norm(prefix, axis=1, keepdims=True)
    return prefix / np.maximum(norms, 1e-12)


def leave_one_out_scores(
    queries: np.ndarray, gallery: np.ndarray, labels: np.ndarray, k: int
) -> tuple[float, float]:
    """(1-NN accuracy %, mAP@k %) of query i against gallery rows j != i by cosine similarity.

    AP@k divides by min(k, relevant items in the gallery), so a perfect ranking scores 100.
    """
    k = min(k, len(gallery) - 1)
    similarity = queries @ gallery.T
    np.fill_diagonal(similarity, -np.inf)
    ranked = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    relevant = labels[ranked] == labels[:, None]
    nn_accuracy = 100.0 * relevant[:, 0].mean()
    hits = np.cumsum(relevant, axis=1)
    precision_at_hit = np.where(relevant, hits / np.arange(1, k + 1), 0.0)
    available = np.bincount(labels)[labels] - 1
    denominator = np.maximum(np.minimum(k, available), 1)
    return float(nn_accuracy), float(100.0 * (precision_at_hit.sum(axis=1) / denominator).mean())


def evaluate_mrl_retrieval(
    fp32: Predictor,
    compiled: Predictor,
    data: Mapping[str, np.ndarray],
    output: str = "embedding",
    dims: Sequence[int] = (8, 16, 32, 64, 128),
    k: int = 10,
    label_key: str = "labels",
) -> TaskResult:
    """1-NN accuracy, mAP@k and fp32-gallery compatibility at every nested dim."""
    labels = np.asarray(data[label_key]).astype(np.int64)
    reference = fp32.predict(data)[output]
    candidate = compiled.predict(data)[output]
    metrics: list[TaskMetric] = []
    table = []
    for m in dims:
        old, new = normalized_prefix(reference, m), normalized_prefix(candidate, m)
        old_nn, old_map = leave_one_out_scores(old, old, labels, k)
        new_nn, new_map = leave_one_out_scores(new, new, labels, k)
        compat_nn, compat_map = leave_one_out_scores(new, old, labels, k)
        metrics += [
            TaskMetric(f"1nn_acc@{m}", old_nn, new_nn, True, "%"),
            TaskMetric(f"map@{k}@{m}", old_map, new_map, True, "%"),
            TaskMetric(f"compat_1nn_acc@{m}", old_nn, compat_nn, True, "%"),
            TaskMetric(f"compat_map@{k}@{m}", old_map, compat_map, True, "%"),
        ]
        cosine = float(np.mean(np.sum(old * new, axis=1)))
        table.append(
            {
                "dim": m,
                "fp32_1nn": old_nn,
                "compiled_1nn": new_nn,
                "compat_1nn": compat_nn,
                "mean_cosine_fp32_vs_compiled": cosine,
            }
        )
    primary = [f"1nn_acc@{m}" for m in dims] + [f"compat_1nn_acc@{m}" for m in dims]
    details = {
        "samples": len(labels),
        "k": k,
        "per_dim": table,
        "protocol": "leave-one-out cosine search over the evaluation set",
    }
    return TaskResult("mrl-retrieval", metrics, primary, details)
