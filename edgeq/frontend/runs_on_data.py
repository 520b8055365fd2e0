"""Prove the user's fp32 model runs on the user's data before any work: a failure there is the input's."""

from __future__ import annotations

import onnx

from edgeq.data import Arrays
from edgeq.errors import InputError
from edgeq.runtime.session import OrtRunner


def check_runs_on(model: onnx.ModelProto, data: Arrays, what: str, limit: int | None = None) -> None:
    """Run `model` on the samples of `data` a compile will feed (the first `limit`, or all); ONNX
    Runtime refusing one (an out-of-range Gather id, a shape the graph cannot take) is one line naming
    the samples and ONNX Runtime's reason."""
    runner = OrtRunner(model.SerializeToString())
    count = len(next(iter(data[name] for name in runner.input_names)))
    count = count if limit is None else min(count, limit)
    for start in range(0, count, runner.batch_size):
        stop = min(start + runner.batch_size, count)
        try:
            for _ in runner.calls(data, start, stop):  # every frame of a stream, its state carried
                pass
        except Exception as exc:  # ORT raises its own exception types (InvalidArgument, Fail, ...)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(
                f"ONNX Runtime cannot run the model on {what} samples {start}-{stop - 1}: {reason}; "
                "fix the data (or the model) so the fp32 model runs on it"
            ) from None
