"""Timing stops once the models are decided: clearly ordered or tied models stop after
SIGN_TEST_ROUNDS rounds, models that swap places beyond the noise floor keep being timed (from ten
rounds on, one contrary round is outvoted), models behind the fastest need not be told apart nor
the fastest from a rival it trails by less than the noise floor, and a run-off is skipped when the
first run's rounds already decide the leaders or vary too much round to round for its rounds to."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry, LatencyStats, measure_interleaved
from edgeq.stages.candidate import Candidate
from edgeq.stages.timing import (
    SIGN_TEST_ROUNDS,
    decided,
    decided_already,
    median_interval_rank,
    runoff_can_decide,
)
from tests.tiny_models import FEATURES, tiny_mlp


def test_clearly_ordered_models_stop_after_the_sign_test_rounds(tmp_path: Path) -> None:
    small = OrtRunner(tiny_mlp(tmp_path / "small.onnx", hidden=8).read_bytes(), threads=1)
    large = OrtRunner(tiny_mlp(tmp_path / "large.onnx", hidden=4096).read_bytes(), threads=1)
    data = {"x": np.random.default_rng(0).standard_normal((8, FEATURES)).astype(np.float32)}
    stats = measure_interleaved(
        {"small": small, "large": large},
        data,
        batch=8,
        warmup=1,
        rounds=20,
        seconds_per_round=0.02,
        stop=decided(["small", "large"]),
    )
    assert len(stats["small"].round_p50_ms) == len(stats["large"].round_p50_ms) == SIGN_TEST_ROUNDS


def rounds(*medians: float) -> list[list[float]]:
    return [[m] for m in medians]


def test_models_that_swap_places_are_timed_every_round() -> None:
    stop = decided(["a", "b"])
    a = rounds(*[1.05] * (SIGN_TEST_ROUNDS + 2))
    b = rounds(*[1.2 if i == 3 else 0.95 for i in range(SIGN_TEST_ROUNDS + 2)])
    assert not stop({"a": a, "b": b})  # b was 14% slower in round 3 and 10% faster in the others
    assert not stop({"a": a[:5], "b": rounds(2.0, 2.0, 2.0, 2.0, 2.0)})  # too few rounds to tell
    assert stop({"a": a, "b": rounds(*[2.0] * len(a))})


def test_models_within_the_noise_floor_in_every_round_are_tied_and_stop() -> None:
    stop = decided(["a", "b"], margin=0.03)
    a = rounds(*[1.0] * SIGN_TEST_ROUNDS)
    tied = rounds(1.01, 0.99, 1.02, 0.98, 1.0, 1.01)  # swaps places, never more than 2% apart
    assert stop({"a": a, "b": tied})
    assert not stop({"a": a, "b": rounds(1.01, 0.99, 1.05, 0.98, 1.0, 1.01)})  # one round 5% apart


def test_from_ten_rounds_one_contrary_or_outlying_round_no_longer_blocks_a_decision() -> None:
    stop = decided(["a", "b"], margin=0.03)
    faster = [0.9] * 9 + [1.2]  # b faster in 9 of 10 rounds: its median ratio is below 1 at p < 1/32
    assert not stop({"a": rounds(*[1.0] * 9), "b": rounds(*faster[-9:])})  # 1 in 9: p = 0.04
    assert stop({"a": rounds(*[1.0] * 10), "b": rounds(*faster)})
    tied = [1.01, 0.99, 1.02, 0.98, 1.0, 1.01, 0.99, 1.0, 1.01, 1.08]  # one round 8% apart
    assert stop({"a": rounds(*[1.0] * 10), "b": rounds(*tied)})
    assert median_interval_rank(9) == 1 and median_interval_rank(10) == 2 and median_interval_rank(13) == 3


def test_only_fp32_and_the_fastest_must_be_decided_against_the_others() -> None:
    stop = decided(["fp32", "fast", "b", "c"], margin=0.03)
    fp32, fast = rounds(*[2.0] * SIGN_TEST_ROUNDS), rounds(*[1.0] * SIGN_TEST_ROUNDS)
    b = rounds(1.20, 1.30, 1.20, 1.30, 1.20, 1.30)
    c = rounds(1.30, 1.20, 1.30, 1.20, 1.30, 1.20)  # swaps places with b beyond the noise floor
    assert stop({"fp32": fp32, "fast": fast, "b": b, "c": c})  # both behind the fastest in every round
    close = rounds(0.95, 1.05, 0.95, 1.05, 0.95, 1.05)  # the fastest's rival, 5% ahead in 3 rounds
    assert not stop({"fp32": fp32, "fast": fast, "b": close, "c": c})
    trailing = rounds(1.10, 0.98, 1.10, 0.985, 1.05, 1.0)  # ahead of the fastest by at most 2%
    assert stop({"fp32": fp32, "fast": fast, "b": trailing, "c": c})  # neither ordered nor tied


def timed(name: str, *medians: float) -> Candidate:
    candidate = Candidate(name, model=None)  # type: ignore[arg-type]  # only its latency is read
    fp32 = LatencyStats.of([[2.0]] * len(medians))
    candidate.latency = [LatencyEntry(1, 1, len(medians), fp32, LatencyStats.of([[m] for m in medians]))]
    return candidate


def test_a_run_off_is_needed_only_when_the_first_run_left_the_leaders_undecided() -> None:
    steady = timed("static", *[1.0] * 7)
    assert decided_already([steady, timed("dynamic", *[1.1] * 7)])  # dynamic slower in every round
    assert decided_already([steady, timed("dynamic", 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01)])  # tied
    assert not decided_already([steady, timed("dynamic", 1.1, 0.9, 1.1, 0.9, 1.1, 0.9, 1.1)])
    other_run = timed("repaired", *[1.1] * 7)
    other_run.latency[0].fp32.round_p50_ms[0] = 2.1  # fp32's rounds of another run: no pairing
    assert not decided_already([steady, other_run])


def test_no_run_off_where_the_round_to_round_spread_is_beyond_what_its_rounds_can_decide() -> None:
    steady = timed("static", 1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0)
    assert runoff_can_decide([steady, timed("dynamic", 1.02, 1.0, 1.01, 0.99, 1.0, 1.01, 0.99)], rounds=14)
    swinging = timed("dynamic", 1.15, 0.85, 1.1, 0.9, 1.2, 0.95, 1.05)  # ±15% round to round
    assert not runoff_can_decide([steady, swinging], rounds=14)
    assert runoff_can_decide([steady, swinging], rounds=400)  # enough rounds would tell them apart
