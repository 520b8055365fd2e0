"""What a report read from a file must satisfy beyond its types: bounded shape and possible values.

A tampered or corrupted report is refused naming the field (`InputError`, exit 2), never read into
numbers that would crash a view or pass a gate: negative sizes, non-finite or non-positive
latencies and speedups, cosines outside [-1, 1], primary task metrics that do not exist.
"""

from __future__ import annotations

import math
from typing import Any

from edgeq.errors import InputError
from edgeq.report.schema import Accuracy, Report
from edgeq.runtime.timing import LatencyStats

MAX_DEPTH = 32
MAX_INT = 2**63
_COSINE_SLACK = 1e-6


def check_shape(data: Any, where: str) -> None:
    """No nesting deeper than MAX_DEPTH and no integer beyond 64 bits, anywhere in `data`."""
    stack = [(data, where, 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{path}: nested deeper than {MAX_DEPTH} levels: not an edgeq report")
        if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT < value < MAX_INT:
            raise InputError(f"{path}: integer of {len(str(abs(value)))} digits is not a measurement")
        if isinstance(value, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))


def check_values(report: Report) -> None:
    """Refuse values no measurement can produce, naming the first such field."""
    _at_least(report.model.bytes, 0, "report.model.bytes")
    _at_least(report.artifact.bytes, 0, "report.artifact.bytes")
    _finite(report.size_ratio, "report.size_ratio", minimum=0.0)
    _accuracy(report.accuracy, "report.accuracy")
    for i, entry in enumerate(report.latency):
        where = f"report.latency[{i}]"
        _at_least(entry.batch, 1, f"{where}.batch")
        _at_least(entry.threads, 0, f"{where}.threads")
        _at_least(entry.rounds, 0, f"{where}.rounds")
        _stats(entry.fp32, f"{where}.fp32")
        _stats(entry.compiled, f"{where}.compiled")
        _finite(entry.speedup, f"{where}.speedup", minimum=0.0, positive=True)
    for i, candidate in enumerate(report.decision.candidates):
        for batch, value in candidate.speedups.items():
            _at_least(batch, 1, f"report.decision.candidates[{i}].speedups key")
            _finite(value, f"report.decision.candidates[{i}].speedups[{batch}]", minimum=0.0, positive=True)
    for batch, noise in report.decision.timing_noise.items():
        _finite(noise, f"report.decision.timing_noise[{batch}]", minimum=0.0)
    _quantization(report)
    if report.pruning is not None:
        summary = report.pruning.summary
        for name in ("parameters_before", "parameters_after", "flops_before", "flops_after", "passes"):
            _at_least(getattr(summary, name), 0, f"report.pruning.summary.{name}")
        _accuracy(report.pruning.accuracy, "report.pruning.accuracy")
    if report.precision_plan is not None:
        _finite(report.precision_plan.weight_bytes, "report.precision_plan.weight_bytes", minimum=0.0)
        for i, row in enumerate(report.precision_plan.comparison):
            if row.speedup is not None:
                _finite(row.speedup, f"report.precision_plan.comparison[{i}].speedup", 0.0, positive=True)
    for i, group in enumerate(report.sensitivity or []):
        _at_least(group.params, 0, f"report.sensitivity[{i}].params")
    for i, stage in enumerate(report.stages):
        _finite(stage.seconds, f"report.stages[{i}].seconds", minimum=0.0)
    for i, warning in enumerate(report.warnings):
        _at_least(warning.count, 0, f"report.warnings[{i}].count")


def _accuracy(accuracy: Accuracy, where: str) -> None:
    _at_least(accuracy.samples, 0, f"{where}.samples")
    for i, output in enumerate(accuracy.outputs):
        for name in ("cosine", "centered_cosine"):
            value = getattr(output, name)
            if value is not None and not math.isnan(value) and abs(value) > 1 + _COSINE_SLACK:
                raise InputError(f"{where}.outputs[{i}].{name} must be within [-1, 1], got {value!r}")
    task = accuracy.task
    if task is not None:
        names = {metric.name for metric in task.metrics}
        if not task.primary:
            raise InputError(f"{where}.task.primary must name at least one metric")
        missing = [name for name in task.primary if name not in names]
        if missing:
            raise InputError(f"{where}.task.primary names {missing[0]!r}, which is not among its metrics")


def _quantization(report: Report) -> None:
    quantization = report.quantization
    for precision, count in quantization.counts.items():
        _at_least(count, 0, f"report.quantization.counts[{precision!r}]")
    if quantization.calibration is not None:
        _at_least(quantization.calibration.samples, 0, "report.quantization.calibration.samples")
    for i, layer in enumerate(quantization.layers):
        try:
            layer.own_sqnr_db  # noqa: B018 (computed by every view: it must be computable)
        except OverflowError:
            raise InputError(f"report.quantization.layers[{i}]: SQNR out of range") from None


def _stats(stats: LatencyStats, where: str) -> None:
    for name in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
        _finite(getattr(stats, name), f"{where}.{name}", minimum=0.0, positive=name == "p50_ms")
    for key in ("samples_ms", "round_p50_ms"):
        for i, value in enumerate(getattr(stats, key)):
            _finite(value, f"{where}.{key}[{i}]", minimum=0.0)


def _at_least(value: int, minimum: int, where: str) -> None:
    if value < minimum:
        raise InputError(f"{where} must be >= {minimum}, got {value!r}")


def _finite(value: float, where: str, minimum: float, positive: bool = False) -> None:
    if not math.isfinite(value) or value < minimum or (positive and value <= 0):
        bound = "> 0" if positive else f">= {minimum:g}"
        raise InputError(f"{where} must be a finite number {bound}, got {value!r}")
