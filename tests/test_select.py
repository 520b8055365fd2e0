"""Selection among measured candidates: ties, sizes, the run-off and the never-slower rule."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from edgeq.backends.artifact import Artifact
from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.kinds import KindMetric
from edgeq.recipe import Recipe, build_recipe
from edgeq.runtime.timing import LatencyEntry, LatencyStats
from edgeq.stages.candidate import Candidate
from edgeq.stages.selection import (
    fastest_fp32,
    problem,
    select,
    select_across_runtimes,
    select_unmeasured,
    size_tied_leaders,
)

NOISE = {1: 0.05, 32: 0.05}


def _artifact(tmp_path: Path, name: str, padding: int) -> Artifact:
    """A real ONNX file whose size grows with `padding` (a constant of that many floats)."""
    pad = helper.make_tensor("pad", TensorProto.FLOAT, [padding], [0.0] * padding)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [pad],
    )
    path = tmp_path / f"{name}.onnx"
    onnx.save(helper.make_model(graph), path)
    return Artifact(path, "onnx")


def _candidate(tmp_path: Path, name: str, speed: float, padding: int) -> Candidate:
    fp32 = LatencyStats.of([[1.0]] * 5)
    compiled = LatencyStats.of([[1.0 / speed]] * 5)
    candidate = Candidate(name, onnx.ModelProto(), artifact=_artifact(tmp_path, name, padding))
    candidate.latency = [LatencyEntry(b, 2, 5, fp32, compiled) for b in NOISE]
    candidate.outputs = [OutputFidelity("y", 0.999, 0.01, 40.0, 0.01, None)]
    return candidate


def test_equal_sizes_tied_on_speed_go_to_the_faster_and_to_a_run_off(tmp_path: Path) -> None:
    fp32 = _candidate(tmp_path, "fp32", 1.0, 4000)
    static = _candidate(tmp_path, "int8-static", 2.00, 1000)
    dynamic = _candidate(tmp_path, "int8-dynamic", 2.05, 1010)
    recipe = Recipe()
    chosen, _ = select([fp32, static, dynamic], recipe, NOISE)
    assert chosen is dynamic, "sizes within 5% are equal: the faster wins, not the smaller"
    assert size_tied_leaders([fp32, static, dynamic], recipe, NOISE) == [static, dynamic]


def test_a_much_smaller_artifact_wins_a_speed_tie_and_needs_no_run_off(tmp_path: Path) -> None:
    fp32 = _candidate(tmp_path, "fp32", 1.0, 4000)
    big = _candidate(tmp_path, "int8-static", 2.05, 3000)
    small = _candidate(tmp_path, "int4-planned", 2.00, 1000)
    chosen, _ = select([fp32, big, small], Recipe(), NOISE)
    assert chosen is small
    assert size_tied_leaders([fp32, big, small], Recipe(), NOISE) == [small]


def test_without_latency_the_smallest_within_budget_wins_and_equal_sizes_go_to_the_most_faithful(
    tmp_path: Path,
) -> None:
    fp32 = _candidate(tmp_path, "fp32", 1.0, 4000)
    static = _candidate(tmp_path, "int8-static", 1.0, 1000)
    dynamic = _candidate(tmp_path, "int8-dynamic", 1.0, 1010)
    lossy = _candidate(tmp_path, "int4-uniform", 1.0, 500)
    for candidate in (fp32, static, dynamic, lossy):
        candidate.latency = []
    dynamic.outputs = [OutputFidelity("y", 0.9995, 0.01, 40.0, 0.01, None)]
    lossy.outputs = [OutputFidelity("y", 0.9, 0.3, 10.0, 0.3, None)]
    chosen, reason = select_unmeasured([fp32, static, dynamic, lossy], Recipe())
    assert chosen is dynamic, "int4 misses the budget; static and dynamic are one size: the more faithful"
    assert reason.startswith("latency not measured on the target: the smallest candidate within")
    chosen, reason = select_unmeasured([fp32, lossy], Recipe())
    assert chosen is fp32 and "int4-uniform: output cosine" in reason


def _recall(candidate: Candidate, value: float) -> Candidate:
    candidate.metrics = [
        KindMetric("embedding", "embedding", "mean cosine", 0.999),
        KindMetric("embedding", "embedding", "neighbour recall@10", value),
    ]
    return candidate


def test_each_output_is_judged_by_its_kind_metric_named_in_the_problem(tmp_path: Path) -> None:
    lossy = _recall(_candidate(tmp_path, "int8-static", 2.0, 1000), 0.89)
    assert lossy.budget_problem(Recipe()) == "neighbour recall@10 0.89 < 0.97 (output 'embedding')"
    assert _recall(lossy, 0.98).budget_problem(Recipe()) is None
    assert lossy.budget_problem(build_recipe(budget={"min_recall": 0.99})) is not None


def test_a_pruned_fp32_outside_the_budget_is_not_kept_over_an_int8_within_it(tmp_path: Path) -> None:
    """Pruning is judged against the unpruned model, so the fp32 candidate can miss the budget too."""
    fp32 = _recall(_candidate(tmp_path, "fp32", 1.0, 4000), 0.90)
    slow = _recall(_candidate(tmp_path, "int8-static", 0.5, 1000), 0.975)
    chosen, reason = select([fp32, slow], Recipe(), NOISE)
    assert chosen is slow and reason.startswith("fp32 misses the accuracy budget (neighbour recall@10 0.9")
    _recall(slow, 0.80)
    chosen, reason = select([fp32, slow], Recipe(), NOISE)
    assert chosen is fp32 and reason.startswith("no candidate meets the accuracy budget")
    chosen, reason = select_unmeasured([fp32, slow], Recipe())
    assert chosen is fp32 and "no candidate meets the accuracy budget" in reason


def _timed(tmp_path: Path, name: str, speeds: dict[int, float]) -> Candidate:
    """A candidate with its own speedup at each batch size (one artifact size for all)."""
    candidate = _candidate(tmp_path, name, 1.0, 1000)
    fp32 = LatencyStats.of([[1.0]] * 5)
    candidate.latency = [
        LatencyEntry(b, 2, 5, fp32, LatencyStats.of([[1.0 / s]] * 5)) for b, s in speeds.items()
    ]
    return candidate


def test_with_two_runtimes_a_candidate_faster_than_both_fp32s_wins_over_a_higher_mean(tmp_path: Path) -> None:
    """OpenVINO's fp32 is 1.6x ONNX Runtime's at batch 32: an ORT INT8 at 1.6x / 1.2x has the higher
    mean but is slower there than simply switching runtime; the OpenVINO INT8 faster than both fp32s
    at both batches is kept."""
    fp32 = _timed(tmp_path, "fp32", {1: 1.0, 32: 1.0})
    openvino_fp32 = _timed(tmp_path, "openvino-fp32", {1: 0.7, 32: 1.6})
    ort_int8 = _timed(tmp_path, "int8-dynamic", {1: 1.6, 32: 1.2})
    openvino_int8 = _timed(tmp_path, "openvino-int8-static", {1: 1.1, 32: 1.7})
    candidates = [fp32, ort_int8, openvino_fp32, openvino_int8]
    assert select(candidates, Recipe(), NOISE)[0] is ort_int8, "one runtime's rule: the higher mean"
    chosen, reason = select_across_runtimes(candidates, Recipe(), NOISE, [openvino_fp32])
    assert chosen is openvino_int8, reason
    floor = fastest_fp32([openvino_fp32])
    assert floor == {1: 1.0, 32: 1.6}
    assert problem(ort_int8, Recipe(), NOISE, floor) == (
        "slower than the faster runtime's fp32 (batch 32: 1.60x) at batch 32: 1.20x"
    )
    assert problem(ort_int8, Recipe(), NOISE) is None


def test_with_two_runtimes_and_no_candidate_faster_than_both_the_best_mean_is_kept_and_said(
    tmp_path: Path,
) -> None:
    """ORT wins batch 1, OpenVINO batch 32 (the corpus's mtcnn_rnet on an AVX2 EPYC): nothing beats both
    fp32s everywhere, so the fastest by geometric mean of those as fast as one runtime's fp32 is kept,
    and the reason says it was a trade-off; a candidate slower than both fp32s at a batch is not."""
    fp32 = _timed(tmp_path, "fp32", {1: 1.0, 32: 1.0})
    openvino_fp32 = _timed(tmp_path, "openvino-fp32", {1: 0.69, 32: 1.6})
    ort_int8 = _timed(tmp_path, "int8-dynamic-per-tensor", {1: 1.12, 32: 1.06})
    openvino_int8 = _timed(tmp_path, "openvino-int8-weights", {1: 0.71, 32: 1.59})
    lopsided = _timed(tmp_path, "openvino-int8-static", {1: 0.5, 32: 2.6})
    candidates = [fp32, ort_int8, openvino_fp32, openvino_int8, lopsided]
    chosen, reason = select_across_runtimes(candidates, Recipe(), NOISE, [openvino_fp32])
    assert chosen is ort_int8 and "as fast as every runtime's fp32 at every batch" in reason, reason
    assert "batch 32: 1.60x" in reason, reason


def test_a_trade_off_within_the_noise_goes_to_the_smaller_artifact(tmp_path: Path) -> None:
    """The corpus's GRU denoiser on an AMX Xeon: OpenVINO's fp32 0.64x / 1.64x (geometric mean 1.02x)
    against ONNX Runtime's INT8 at 1.0x / 1.0x in fewer bytes. Their means are equal within
    the noise, so the trade-off goes the way `select` breaks a tie: to the smaller artifact."""
    fp32 = _timed(tmp_path, "fp32", {1: 0.96, 32: 0.99})
    openvino_fp32 = _timed(tmp_path, "openvino-fp32", {1: 0.64, 32: 1.64})
    ort_int8 = _timed(tmp_path, "int8-static", {1: 0.98, 32: 1.02})
    ort_int8.artifact = _artifact(tmp_path, "int8-static", 250)
    chosen, reason = select_across_runtimes([fp32, ort_int8, openvino_fp32], Recipe(), NOISE, [openvino_fp32])
    assert chosen is ort_int8 and "within timing noise of it and smaller" in reason, reason
    faster = _timed(tmp_path, "openvino-int8-static", {1: 0.7, 32: 1.9})
    candidates = [fp32, ort_int8, openvino_fp32, faster]
    chosen, _ = select_across_runtimes(candidates, Recipe(), NOISE, [openvino_fp32])
    assert chosen is faster, "a mean beyond the noise still wins"


def test_with_two_runtimes_the_reference_fp32_is_no_trade_off_for_its_timing_noise(
    tmp_path: Path,
) -> None:
    """The fp32 artifact is the reference compiled: its A/A shortfall (0.90x) is no reason to call
    keeping it a trade-off when the other runtime's fp32 is no faster anywhere."""
    fp32 = _timed(tmp_path, "fp32", {1: 0.90, 32: 1.0})
    openvino_fp32 = _timed(tmp_path, "openvino-fp32", {1: 0.7, 32: 0.9})
    chosen, reason = select_across_runtimes([fp32, openvino_fp32], Recipe(), NOISE, [openvino_fp32])
    assert chosen is fp32 and "every runtime's fp32" not in reason, reason
