"""MatMulNBits' compute precision (`accuracy_level`) chosen by timing each on the target's CPU."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

import numpy as np
import onnx

from edgeq.quant.int4 import set_accuracy_level
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import timed_calls


def fastest_accuracy_level(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    levels: Iterable[int] = (0, 1, 4),
    *,
    rounds: int = 15,
    threads: int = 0,
) -> tuple[int, dict[int, float]]:
    """The accuracy_level with the lowest median run time on `feeds`, and every level's median (ms).

    Sessions are timed interleaved round by round, so machine noise hits every level alike.
    """
    runners = {
        level: OrtRunner(set_accuracy_level(model, level).SerializeToString(), threads=threads)
        for level in levels
    }
    feeds = dict(feeds)
    calls = {
        level: (lambda runner=runner: runner.session.run(None, feeds)) for level, runner in runners.items()
    }
    for call in calls.values():  # warm-up: first runs pay one-off allocations
        call()
    times: dict[int, list[float]] = {level: [] for level in calls}
    for _ in range(rounds):
        for level, call in calls.items():
            times[level] += timed_calls(call, 1)
    medians = {level: statistics.median(samples) for level, samples in times.items()}
    return min(medians, key=medians.__getitem__), medians
