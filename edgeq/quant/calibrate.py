"""Measure activation ranges by running the fp32 model on calibration samples (two streaming passes;
streams of a stateful model run frame by frame, state carried, so ranges are the ones seen mid-stream)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from edgeq.errors import InputError
from edgeq.graph.edit import with_outputs
from edgeq.quant.observers import CalibrationDataError, make_observer
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
    """The clip range of every tensor, by the recipe's method, over `settings.samples` samples."""
    if not tensors:
        return {}
    runner = OrtRunner(with_outputs(model, tensors).SerializeToString(), batch_size=batch_size)
    count = min(settings.samples, len(next(iter(data[n] for n in runner.input_names))))
    options = {"percentile": settings.percentile} if settings.method == "percentile" else {}
    if settings.method != "minmax":
        options["bins"] = settings.bins
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
