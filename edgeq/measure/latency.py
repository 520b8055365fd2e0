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
        return cls(float(p50), float(p90), float(p99), float(values.mean()),
                   [round(float(v), 4) for v in kept])


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


def measure_pair(
    fp32: OrtRunner,
    compiled: OrtRunner,
    data: Mapping[str, np.ndarray],
    *,
    batch: int,
    threads: int,
    warmup: int,
    rounds: int,
    seconds_per_round: float,
    tick: Callable[[], None] | None = None,
) -> LatencyEntry:
    """Alternate the two models round by round (order flipped each round) so drift hits both alike."""
    feeds = batch_feeds(fp32, data, batch), batch_feeds(compiled, data, batch)
    calls = [lambda: fp32.session.run(None, feeds[0]), lambda: compiled.session.run(None, feeds[1])]
    for call in calls:
        _timed_calls(call, warmup)
    probe = max(min(_timed_calls(call, 3)) for call in calls)
    runs = int(np.clip(seconds_per_round * 1e3 / 2 / max(probe, 1e-3), 3, 500))
    samples: list[list[float]] = [[], []]
    for round_index in range(rounds):
        order = (0, 1) if round_index % 2 == 0 else (1, 0)
        for which in order:
            samples[which].extend(_timed_calls(calls[which], runs))
        if tick:
            tick()
    return LatencyEntry(batch, threads, rounds, LatencyStats.of(samples[0]), LatencyStats.of(samples[1]))
