"""The run-off's early stop: clearly ordered models stop after SIGN_TEST_ROUNDS rounds, tied ones
run every round they were given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import measure_interleaved
from edgeq.stages.timing import SIGN_TEST_ROUNDS, candidates_ordered
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
        stop=candidates_ordered(["small", "large"]),
    )
    assert len(stats["small"].round_p50_ms) == len(stats["large"].round_p50_ms) == SIGN_TEST_ROUNDS


def test_models_that_swap_places_are_timed_every_round() -> None:
    ordered = candidates_ordered(["a", "b"])
    rounds = [[[1.0, 1.1]] for _ in range(SIGN_TEST_ROUNDS + 2)]
    swapped = [[[1.2, 1.2]] if i == 3 else [[0.9, 1.0]] for i in range(SIGN_TEST_ROUNDS + 2)]
    samples = {"a": [r[0] for r in rounds], "b": [r[0] for r in swapped]}
    assert not ordered(samples)  # b was slower in round 3 and faster in the others
    assert not ordered({"a": samples["a"][:5], "b": [[2.0]] * 5})  # too few rounds to tell
    assert ordered({"a": samples["a"], "b": [[2.0]] * len(samples["a"])})
