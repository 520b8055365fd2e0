"""Latency of fp32 and compiled sessions, timed interleaved in one process over repeated rounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeq.measure.runner import OrtRunner

MAX_KEPT_SAMPLES = 200  # per model and batch size: enough to draw the distribution in a report


@dataclass(frozen=True)
class LatencyStats:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    samples_ms: list[float]

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencyStats:
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        kept = values[:: max(1, len(values) // MAX_KEPT_SAMPLES)]
        return cls(
            float(p50), float(p90), float(p99), float(values.mean()), [round(float(v), 4) for v in kept]
        )


@dataclass(frozen=True)
class LatencyEntry:
    """One batch size: both models' distributions and the speedup of medians (fp32 / compiled)."""

    batch: int
    threads: int
    rounds: int
    fp32: LatencyStats
    compiled: LatencyStats

    @property
    def speedup(self) -> float:
        return self.fp32.p50_ms / self.compiled.p50_ms


def batch_feeds(runner: OrtRunner, data: Mapping[str, np.ndarray], batch: int) -> dict:
    """`batch` samples for the model's inputs, cycling through `data` if it has fewer."""
    count = len(next(iter(data[name] for name in runner.input_names)))
    index = np.arange(batch) % count
    return runner.feeds({name: data[name][index] for name in runner.input_names})


def _timed_calls(call: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def measure_interleaved(
    runners: Mapping[str, OrtRunner],
    data: Mapping[str, np.ndarray],
    *,
    batch: int,
    warmup: int,
    rounds: int,
    seconds_per_round: float,
    tick: Callable[[], None] | None = None,
) -> dict[str, LatencyStats]:
    """Time every model round by round, rotating the order each round so drift hits all alike."""
    names = list(runners)
    calls = {}
    for name, runner in runners.items():
        feeds = batch_feeds(runner, data, batch)
        calls[name] = lambda runner=runner, feeds=feeds: runner.session.run(None, feeds)
    for call in calls.values():
        _timed_calls(call, warmup)
    probe = max(min(_timed_calls(call, 3)) for call in calls.values())
    runs = int(np.clip(seconds_per_round * 1e3 / len(names) / max(probe, 1e-3), 3, 500))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].extend(_timed_calls(calls[name], runs))
        if tick:
            tick()
    return {name: LatencyStats.of(values) for name, values in samples.items()}
