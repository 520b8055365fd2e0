"""Speedups pair the models round by round, so one loaded round cannot decide a comparison; one
interleaved loop times every runner, ONNX Runtime's and TensorRT's alike, each by its own clock."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgeq.backends.tensorrt_runner import measure_engines
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import (
    HOPELESS_PACE,
    LONG_CALL_MS,
    MIN_CALLS_PER_ROUND,
    LatencyStats,
    Timer,
    measure_interleaved,
    speedup,
)


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


class ClockedRunner:
    """A runner whose timer reports a fixed time per run, as a CUDA-event timer reports the GPU's."""

    def __init__(self, ms: float, log: list[tuple[str, int]], name: str) -> None:
        self.ms, self.log, self.name = ms, log, name
        self.input_names = ["x"]

    def feeds(self, data: Mapping[str, np.ndarray], start: int = 0, stop: int | None = None):
        return {"x": data["x"][start:stop]}

    def timed(self, feeds: Mapping[str, np.ndarray]) -> Timer:
        assert len(feeds["x"]) == 8, "the loop binds one batch of the asked size"

        def runs(n: int) -> list[float]:
            self.log.append((self.name, n))
            return [self.ms] * n

        return runs


def test_the_one_loop_shares_each_round_by_time_and_rotates_the_order() -> None:
    log: list[tuple[str, int]] = []
    runners = {"slow": ClockedRunner(4.0, log, "slow"), "fast": ClockedRunner(1.0, log, "fast")}
    data = {"x": np.zeros((3, 2), np.float32)}
    stats = measure_interleaved(runners, data, batch=8, warmup=2, rounds=3, seconds_per_round=0.04)
    assert speedup(stats["slow"], stats["fast"]) == 4.0
    assert all(s.round_p50_ms == [s.p50_ms] * 3 for s in stats.values())
    warmups, timed = log[:4], log[4:]
    assert warmups == [("slow", 1), ("slow", 1), ("fast", 1), ("fast", 1)], "they also pace the rounds"
    assert timed == [("slow", 5), ("fast", 20), ("fast", 20), ("slow", 5), ("slow", 5), ("fast", 20)]


def test_long_calls_are_timed_once_a_round_only_when_every_model_is_long() -> None:
    """A long call is warm after two (the first allocates); beside a short one it is still timed
    three times a round, so the pair is never compared one warm, one straight after the switch."""
    log: list[tuple[str, int]] = []
    runners = {"long": ClockedRunner(LONG_CALL_MS, log, "long"), "short": ClockedRunner(1.0, log, "short")}
    data = {"x": np.zeros((3, 2), np.float32)}
    measure_interleaved(runners, data, batch=8, warmup=3, rounds=2, seconds_per_round=0.001)
    least = MIN_CALLS_PER_ROUND
    assert log[:4] == [("long", 1), ("long", 1), ("short", 1), ("short", 2)], "a long call: warm after two"
    assert log[4:] == [("long", least), ("short", least), ("short", least), ("long", least)]

    log.clear()
    runners = {name: ClockedRunner(LONG_CALL_MS, log, name) for name in ("a", "b")}
    measure_interleaved(runners, data, batch=8, warmup=3, rounds=2, seconds_per_round=0.001)
    assert log == [("a", 1), ("a", 1), ("b", 1), ("b", 1), ("a", 1), ("b", 1), ("b", 1), ("a", 1)]


def test_engine_timing_goes_through_the_shared_loop(reference_models) -> None:
    model, _ = reference_models["mlp"]
    runners = [OrtRunner(model, threads=1) for _ in range(2)]  # any runner with the shared surface
    data = {"x": np.zeros((4, 32), np.float32)}
    entry = measure_engines(*runners, data, batch=2, warmup=1, rounds=4, seconds_per_round=0.02)
    assert entry.batch == 2 and entry.rounds == 4
    assert len(entry.fp32.round_p50_ms) == len(entry.compiled.round_p50_ms) == 4
    assert 0.2 < entry.speedup < 5.0


def test_sessions_timed_side_by_side_stop_spinning_when_a_call_returns(reference_models) -> None:
    """An idle session's spinning workers would slow the session timed after it (docs/compile-time.md)."""
    model, _ = reference_models["mlp"]
    options = OrtRunner(model, threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


def test_a_model_far_slower_than_the_first_is_only_warmed_up() -> None:
    """A model HOPELESS_PACE times slower than fp32 cannot be chosen: it gets no rounds, and the rounds
    of the others and their stop rule go on without it."""
    log: list[tuple[str, int]] = []
    runners = {
        "fp32": ClockedRunner(1.0, log, "fp32"),
        "slower": ClockedRunner(HOPELESS_PACE - 1, log, "slower"),
        "hopeless": ClockedRunner(HOPELESS_PACE + 1, log, "hopeless"),
    }
    seen: list[set[str]] = []

    def stop(samples: Mapping[str, list[list[float]]]) -> bool:
        seen.append(set(samples))
        return False

    data = {"x": np.zeros((3, 2), np.float32)}
    stats = measure_interleaved(runners, data, batch=8, warmup=2, rounds=2, seconds_per_round=0.03, stop=stop)
    assert [name for name, _ in log].count("hopeless") == 2, "its two warm-up calls, no round"
    assert stats["hopeless"].warm_up_only and stats["hopeless"].p50_ms == HOPELESS_PACE + 1
    assert not stats["slower"].warm_up_only and len(stats["slower"].round_p50_ms) == 2
    assert seen == [{"fp32", "slower"}] * 2
    assert speedup(stats["fp32"], stats["hopeless"]) == 1 / (HOPELESS_PACE + 1)


def test_a_real_session_far_slower_than_fp32_is_left_out_of_the_rounds(tmp_path) -> None:
    """The same with ONNX Runtime sessions: one MatMul against a chain of wide ones on the same input."""
    rng = np.random.default_rng(0)

    def chain(widths: list[int]) -> Path:
        weights = [
            numpy_helper.from_array(rng.standard_normal((a, b)).astype(np.float32), f"w{i}")
            for i, (a, b) in enumerate(itertools.pairwise(widths))
        ]
        names = ["x", *(f"h{i}" for i in range(len(weights) - 1)), "y"]
        steps = zip(itertools.pairwise(names), weights, strict=True)
        nodes = [helper.make_node("MatMul", [a, w.name], [b]) for (a, b), w in steps]
        graph = helper.make_graph(
            nodes,
            "chain",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", widths[0]])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", widths[-1]])],
            weights,
        )
        path = tmp_path / f"chain{len(widths)}.onnx"
        onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]), path)
        return path

    runners = {
        "fp32": OrtRunner(chain([16, 16]), threads=1),
        "wide": OrtRunner(chain([16, *[1024] * 12, 16]), threads=1),
    }
    data = {"x": rng.standard_normal((4, 16)).astype(np.float32)}
    stats = measure_interleaved(runners, data, batch=4, warmup=2, rounds=3, seconds_per_round=0.02)
    assert stats["wide"].warm_up_only and not stats["fp32"].warm_up_only
    assert stats["wide"].p50_ms > HOPELESS_PACE * stats["fp32"].p50_ms
