"""Measure activation ranges by running the fp32 model on calibration samples (two streaming passes;
streams of a stateful model run frame by frame, state carried, so ranges are the ones seen mid-stream)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from edgeq.cache import digest_arrays, digest_bytes
from edgeq.cache.memo import memo
from edgeq.errors import InputError
from edgeq.graph.edit import with_outputs
from edgeq.quant.observers import CalibrationDataError, make_observer, observer_options
from edgeq.quant.primitives import QuantFormat
from edgeq.recipe import Calibration
from edgeq.runtime.session import OrtRunner

Progress = Callable[[str, int], None]  # (phase description, batches done in this phase)


def calibrate_ranges(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    data: Mapping[str, np.ndarray],
    settings: Calibration,
    fmt: QuantFormat,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> dict[str, tuple[float, float]]:
    """The clip range of every tensor, by the recipe's method, over `settings.samples` samples
    (stored in the active cache, keyed by the model, tensors, samples used and settings)."""
    if not tensors:
        return {}

    def parts() -> dict:
        inputs = {i.name for i in model.graph.input}
        used = {name: array for name, array in data.items() if name in inputs}
        return {
            "model": digest_bytes(model.SerializeToString()),
            "tensors": list(tensors),
            "data": digest_arrays(used, settings.samples),
            "settings": settings,
            "format": fmt,
            "batch_size": batch_size,
        }

    def compute() -> dict[str, tuple[float, float]]:
        return _calibrate(model, tensors, data, settings, fmt, batch_size, progress)

    return memo("calibration", parts, compute)


def _calibrate(model, tensors, data, settings, fmt, batch_size, progress) -> dict[str, tuple[float, float]]:
    runner = OrtRunner(with_outputs(model, tensors).SerializeToString(), batch_size=batch_size)
    count = min(settings.samples, len(next(iter(data[n] for n in runner.input_names))))
    given = {"bins": settings.bins, "percentile": settings.percentile}
    options = {name: given[name] for name in observer_options(settings.method)}
    observers = {name: make_observer(settings.method, **options) for name in tensors}
    _stream(runner, data, count, observers, "update_range", progress)
    if any(o.needs_histogram for o in observers.values()):
        _stream(runner, data, count, observers, "update_histogram", progress)
    return {name: observer.compute_range(fmt) for name, observer in observers.items()}


def _stream(runner, data, count, observers, method: str, progress) -> None:
    """One pass over the samples, feeding each tensor's values to its observer's `method`."""
    phase = "ranges" if method == "update_range" else "histograms"
    for done, start in enumerate(range(0, count, runner.batch_size), start=1):
        for outputs in runner.calls(data, start, min(start + runner.batch_size, count)):
            for name, observer in observers.items():
                try:
                    getattr(observer, method)(outputs[name])
                except CalibrationDataError as exc:
                    raise InputError(f"calibration: tensor {name!r}: {exc}") from None
        if progress:
            progress(phase, done)
