"""Streaming agreement: fp32 and the compiled model run over the same streams, each carrying its own
state, compared frame by frame, so error that accumulates through the state is measured, not hidden.

Built-in task `streams` (the default for a model with a carried state): outputs are
[streams, frames, ...]; a detector (one probability per frame) is also judged by its decisions.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from edgeq.measure.tasks import Predictor, TaskMetric, TaskResult

CURVE_POINTS = 32


class OneSidedDecisions(UserWarning):
    """The fp32 detector decided the same way on every evaluation frame (the report lists this)."""


# error by frame position, as many points as a report chart needs


def evaluate_streams(
    fp32: Predictor,
    compiled: Predictor,
    data: Mapping[str, np.ndarray],
    threshold: float = 0.5,
    output: str | None = None,
) -> TaskResult:
    """Per-frame agreement of every float output (99th percentile of each frame's error, the worst
    frame's cosine) and, for a detector output (one probability per frame), the share of frames whose
    decision at `threshold` matches fp32's: the primary metric. Otherwise the mean frame cosine is."""
    want, have = fp32.predict(data), compiled.predict(data)
    floats = [name for name, value in want.items() if value.dtype.kind == "f" and value.ndim >= 2]
    detector = output or next((name for name in floats if _is_probability(want[name])), None)
    metrics, details = [], {"streams": int(len(next(iter(want.values())))), "threshold": threshold}
    for name in floats:
        a, b = _frames(want[name]), _frames(have[name])
        if a.shape[-1] == 1:  # one value a frame: relative error is meaningless near zero
            error = np.abs(a - b)[..., 0]
            metrics.append(
                TaskMetric(f"{name}:frame_abs_error_p99", 0.0, float(np.percentile(error, 99)), False)
            )
        else:
            rel = np.linalg.norm(a - b, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1), 1e-12)
            metrics.append(TaskMetric(f"{name}:frame_rel_l2_p99", 0.0, float(np.percentile(rel, 99)), False))
            metrics.append(TaskMetric(f"{name}:frame_cosine_min", 1.0, float(_frame_cosines(a, b).min())))
        details[f"{name}:abs_error_by_frame"] = _curve(np.abs(a - b).mean(axis=(0, 2)))
    details["frames"] = int(_frames(want[floats[0]]).shape[1]) if floats else 0
    if detector is not None:
        a, b = _frames(want[detector])[..., 0] > threshold, _frames(have[detector])[..., 0] > threshold
        metrics.append(TaskMetric("decision_agreement", 100.0, 100.0 * float((a == b).mean()), True, "%"))
        metrics.append(
            TaskMetric("positive_frames", 100.0 * float(a.mean()), 100.0 * float(b.mean()), True, "%")
        )
        details["detector"] = detector
        if a.all() or not a.any():
            side = "positive" if a.all() else "negative"
            warnings.warn(
                f"every fp32 decision of {detector!r} at {threshold} is {side} on the evaluation streams: "
                "decision agreement cannot tell the models apart there; evaluate on streams where the "
                "detector both fires and does not",
                OneSidedDecisions,
                stacklevel=2,
            )
        return TaskResult("streams", metrics, ["decision_agreement"], details)
    name = floats[0]
    cosines = _frame_cosines(_frames(want[name]), _frames(have[name]))
    metrics.append(TaskMetric(f"{name}:frame_cosine_mean", 100.0, 100.0 * float(cosines.mean()), True, "%"))
    return TaskResult("streams", metrics, [f"{name}:frame_cosine_mean"], details)


def _frames(value: np.ndarray) -> np.ndarray:
    """[streams, frames, ...] as [streams, frames, values per frame], in float64."""
    return value.reshape(*value.shape[:2], -1).astype(np.float64)


def _is_probability(value: np.ndarray) -> bool:
    """One value per frame, all in [0, 1]: a detector's probability (a sigmoid output)."""
    return _frames(value).shape[-1] == 1 and bool(((value >= 0) & (value <= 1)).all())


def _frame_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dots = (a * b).sum(axis=-1)
    return np.where(norms > 0, dots / np.maximum(norms, 1e-300), np.where((a == b).all(axis=-1), 1.0, 0.0))


def _curve(errors: np.ndarray) -> list[float]:
    """Mean error by frame position, averaged into at most CURVE_POINTS bins (does it grow?)."""
    bins = np.array_split(errors, min(CURVE_POINTS, len(errors)))
    return [round(float(b.mean()), 6) for b in bins]
