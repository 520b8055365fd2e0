"""Honest accuracy: the task metric on the fake-quant simulation and on the real ONNX Runtime model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeq.data import Arrays
from edgeq.measure.tasks import Predictor, resolve_evaluator

Metric = Callable[[Predictor, Arrays], float]


def task_metric(task: str, name: str, reference: Predictor, **options: Any) -> Metric:
    """One metric of an edgeq task evaluator (e.g. "mrl-retrieval", "1nn_acc@8"), as a Metric.

    The evaluator scores the given predictor on its "compiled" side; `reference` is the fp32 side.
    """
    evaluator = resolve_evaluator(task)
    return lambda predictor, data: evaluator(reference, predictor, data, **options).metric(name).compiled


def compare_simulated_measured(
    simulated: Predictor, measured: Predictor, data: Arrays, metric: Metric, tolerance: float
) -> dict[str, float | bool]:
    """The report's `qat` section: {simulated, measured, gap, tolerance, flagged}.

    Fake quantization in torch and integer kernels in a runtime round differently; a gap past
    `tolerance` (metric units) means the simulated number must not be quoted as the deployed one.
    """
    sim, real = float(metric(simulated, data)), float(metric(measured, data))
    gap = sim - real
    return {
        "simulated": sim,
        "measured": real,
        "gap": gap,
        "tolerance": tolerance,
        "flagged": abs(gap) > tolerance,
    }
