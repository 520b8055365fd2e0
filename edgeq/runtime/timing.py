"""Latency of fp32 and compiled sessions, timed interleaved in one process over repeated rounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

MAX_KEPT_SAMPLES = 200  # per model and batch size: enough to draw the distribution in a report
MAX_CALLS_PER_ROUND = 500
MIN_CALLS_PER_ROUND = 3  # a round's median discards the first call after the switch between sessions
LONG_CALL_MS = 50.0
"""When every model's call is this long, each is timed once a round: the switch between sessions
(cache refill, thread wake-up) costs it well under 1%, and at batch 32 three calls a round of six
encoders were most of a compile (MiniLM fp32 A/A noise under load: 1-call rounds 0.4-5.5%, 3-call
1.2-8%). One model under it keeps every model at three: the first call after a switch can take
twice a 30 ms call (RapidOCR's detector, its own fp32 artifact read 0.78x when only it was timed
once a round)."""
MIN_PAIRED_ROUNDS = 3  # fewer rounds than this: a median of ratios is no more robust than one ratio
HOPELESS_PACE = 20.0
"""A model whose warm-up calls take this many times the first model's (the fp32 reference) is timed
no further: no choice turns on how much slower than fp32 it is. OpenVINO 2026.4 ran MiniLM's static
INT8 in f16 at 4.3 s a call against f32's 6 ms on a Xeon with AVX512-FP16 and no AMX-FP16 (model
167), and its rounds at batch 32 held a compile for over half an hour."""


@dataclass(frozen=True)
class LatencyStats:
    """One model's latency distribution, with the median of each interleaved round kept apart."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    samples_ms: list[float]
    round_p50_ms: list[float] = field(default_factory=list)

    @property
    def warm_up_only(self) -> bool:
        """Timed no further than its warm-up calls (`HOPELESS_PACE`): no round pairs with another model."""
        return not self.round_p50_ms

    @classmethod
    def of(cls, rounds: Sequence[Sequence[float]]) -> LatencyStats:
        """Statistics of samples grouped by round (one group when there were no rounds)."""
        values = np.concatenate([np.asarray(r, dtype=np.float64) for r in rounds])
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        kept = values[:: max(1, len(values) // MAX_KEPT_SAMPLES)]
        medians = [round(float(np.median(r)), 5) for r in rounds]
        return cls(
            float(p50),
            float(p90),
            float(p99),
            float(values.mean()),
            [round(float(v), 4) for v in kept],
            medians,
        )


def speedup(reference: LatencyStats, candidate: LatencyStats) -> float:
    """How many times faster `candidate` ran: the median over rounds of the per-round ratio.

    A load spike on a shared machine lands in one round, where it skews whichever models ran then;
    pairing the two models round by round and taking the median ratio leaves such rounds out.
    Without matching rounds (a report from before they were kept): the ratio of the medians."""
    pairs = zip(reference.round_p50_ms, candidate.round_p50_ms, strict=False)
    ratios = [ref / cand for ref, cand in pairs if cand > 0]
    if len(ratios) >= MIN_PAIRED_ROUNDS and len(reference.round_p50_ms) == len(candidate.round_p50_ms):
        return float(np.median(ratios))
    return reference.p50_ms / candidate.p50_ms


@dataclass(frozen=True)
class LatencyEntry:
    """One batch size: both models' distributions and the speedup (fp32 / compiled, see `speedup`)."""

    batch: int
    threads: int
    rounds: int
    fp32: LatencyStats
    compiled: LatencyStats

    @property
    def speedup(self) -> float:
        return speedup(self.fp32, self.compiled)


Timer = Callable[[int], list[float]]
"""Runs a model n times on feeds bound beforehand; returns each run's milliseconds."""


class Runner(Protocol):
    """What the timing loop needs of a session (ONNX Runtime's or a TensorRT engine's)."""

    @property
    def input_names(self) -> list[str]: ...

    def feeds(
        self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]: ...

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer: ...


def batch_feeds(runner: Runner, data: Mapping[str, np.ndarray], batch: int) -> dict:
    """`batch` samples for the model's inputs, cycling through `data` if it has fewer."""
    count = len(next(iter(data[name] for name in runner.input_names)))
    index = np.arange(batch) % count
    return runner.feeds({name: data[name][index] for name in runner.input_names})


def timed_calls(call: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of each of `runs` back-to-back calls: the one timing primitive edgeq uses."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def warm_up(timer: Timer, warmup: int) -> float:
    """Run the warm-up calls; the fastest one's milliseconds. A long call is warm after its second
    (ONNX Runtime allocates on the first, which alone would call a 30 ms model long), so it stops there."""
    fastest = min(timer(1))
    if fastest >= LONG_CALL_MS:
        return min(fastest, *timer(1))
    return min(fastest, *timer(warmup - 1)) if warmup > 1 else fastest


def calls_per_round(paces_ms: Mapping[str, float], share_ms: float) -> dict[str, int]:
    """How many calls fill each model's share of a round (its fastest warm-up call sets its pace);
    at least MIN_CALLS_PER_ROUND for every model unless every one of them is a long call, so paired
    models are never timed one warm and one straight after the switch."""
    least = 1 if min(paces_ms.values()) >= LONG_CALL_MS else MIN_CALLS_PER_ROUND
    calls = {name: share_ms / max(ms, 1e-3) for name, ms in paces_ms.items()}
    return {name: int(np.clip(count, least, MAX_CALLS_PER_ROUND)) for name, count in calls.items()}


def measure_interleaved(
    runners: Mapping[str, Runner],
    data: Mapping[str, np.ndarray],
    *,
    batch: int,
    warmup: int,
    rounds: int,
    seconds_per_round: float,
    tick: Callable[[], None] | None = None,
    stop: Callable[[Mapping[str, list[list[float]]]], bool] | None = None,
) -> dict[str, LatencyStats]:
    """Time every model round by round, rotating the order each round so drift hits all alike.

    Each model gets an equal share of a round's time, not an equal number of calls: one slow model
    would otherwise cut fast ones to a dozen calls a round, timed mostly warming up after the switch
    between sessions (ResNet-64 INT8 read 1.69x fp32 instead of 2.36x beside ORT's 22 ms
    ConvInteger model); the warm-up calls (one for a long call) set each model's pace. Each runner's own
    timer clocks it: the host clock for ONNX Runtime, CUDA events for a TensorRT engine.
    `stop(samples so far)` may end the rounds early (each model's list of per-round samples, every
    model through the same rounds). A model HOPELESS_PACE times slower than the first in its warm-up
    is left out of the rounds: its statistics are its fastest warm-up call, `warm_up_only`."""
    timers = {name: runner.timed(batch_feeds(runner, data, batch)) for name, runner in runners.items()}
    paces = {name: warm_up(timer, warmup) for name, timer in timers.items()}
    first = next(iter(paces))
    hopeless = {name: pace for name, pace in paces.items() if pace > HOPELESS_PACE * paces[first]}
    names = [name for name in runners if name not in hopeless]
    share_ms = seconds_per_round * 1e3 / len(names)
    runs = calls_per_round({name: paces[name] for name in names}, share_ms)
    samples: dict[str, list[list[float]]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timers[name](runs[name]))
        if tick:
            tick()
        if stop is not None and stop(samples):
            break
    timed = {name: LatencyStats.of(per_round) for name, per_round in samples.items()}
    warmed = {name: LatencyStats(pace, pace, pace, pace, [round(pace, 4)]) for name, pace in hopeless.items()}
    return timed | warmed
