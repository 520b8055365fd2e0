"""Speedups pair the models round by round, so one loaded round cannot decide a comparison."""

from __future__ import annotations

import numpy as np

from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyStats, measure_interleaved, speedup


def test_a_load_spike_in_one_round_does_not_move_the_speedup() -> None:
    quiet = [[1.0] * 20 for _ in range(6)]
    fp32 = LatencyStats.of([[2.0] * 20 for _ in range(6)] + [[2.0] * 20])
    # the candidate's last round hit a spike on a shared machine, lasting many calls
    candidate = LatencyStats.of([*quiet, [30.0] * 200])
    assert speedup(fp32, candidate) == 2.0
    assert fp32.p50_ms / candidate.p50_ms < 0.1, "pooled medians would read it 20x slower"


def test_reports_without_rounds_fall_back_to_the_ratio_of_medians() -> None:
    fp32 = LatencyStats(2.0, 2.0, 2.0, 2.0, [2.0])
    candidate = LatencyStats(1.0, 1.0, 1.0, 1.0, [1.0])
    assert speedup(fp32, candidate) == 2.0


def test_interleaved_timing_keeps_one_median_per_round(reference_models) -> None:
    model, _ = reference_models["mlp"]
    runner = OrtRunner(model, threads=1)
    data = {
        name: np.zeros((4, *[d if isinstance(d, int) else 1 for d in info.shape[1:]]), np.float32)
        for name, info in runner.inputs.items()
    }
    stats = measure_interleaved(
        {"a": runner, "b": OrtRunner(model, threads=1)},
        data,
        batch=2,
        warmup=1,
        rounds=4,
        seconds_per_round=0.02,
    )
    assert all(len(s.round_p50_ms) == 4 and min(s.round_p50_ms) > 0 for s in stats.values())
    assert 0.2 < speedup(stats["a"], stats["b"]) < 5.0
