"""Task evaluators and helpers on hand-computed cases, plus fp32-vs-fp32 runs on real models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgeq.measure.tasks import resolve_evaluator
from edgeq.measure.tasks.binary_code import bit_agreement, evaluate_binary_code, psnr
from edgeq.measure.tasks.pointer import (
    canonical_tours,
    convex_hull,
    decoded_polygon,
    evaluate_convex_hull,
    evaluate_tsp,
    held_karp,
    hull_targets,
    polygon_area,
    tour_length,
)
from edgeq.measure.tasks.retrieval import evaluate_mrl_retrieval, leave_one_out_scores
from edgeq.runtime.session import OrtRunner

ROOT = Path(__file__).resolve().parents[1]
# Unit square with an interior point and a point on the bottom edge, in scrambled order.
SQUARE = np.array([[0.5, 0.5], [1, 1], [0, 0], [1, 0], [0, 1], [0.5, 0]], dtype=float)


class Fixed:
    """A predictor that returns prepared outputs: the hand-computed side of a test."""

    def __init__(self, **outputs: np.ndarray) -> None:
        self.outputs = outputs

    def predict(self, data):
        return self.outputs


def circle(n: int, order: list[int]) -> np.ndarray:
    """Points on the unit circle; point i sits at angle 2*pi*order[i]/n."""
    angles = 2 * np.pi * np.array(order) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_convex_hull_of_square_drops_interior_and_edge_points():
    assert convex_hull(SQUARE) == [2, 3, 1, 4]
    assert hull_targets(SQUARE[None], 6).tolist() == [[2, 3, 1, 4, 2, 2]]


def test_polygon_area_and_tour_length_by_hand():
    assert polygon_area(SQUARE, [2, 3, 1, 4]) == pytest.approx(1.0)
    triangle = np.array([[0, 0], [2, 0], [0, 3]], dtype=float)
    assert polygon_area(triangle, [0, 1, 2]) == pytest.approx(3.0)
    corners = SQUARE[[2, 3, 1, 4]][None]
    assert tour_length(corners, np.array([[0, 1, 2, 3]]))[0] == pytest.approx(4.0)
    assert tour_length(corners, np.array([[0, 2, 1, 3]]))[0] == pytest.approx(2 + 2 * math.sqrt(2))


def test_held_karp_goes_around_the_circle():
    order = [0, 5, 2, 7, 1, 4, 6, 3]
    points = circle(8, order)
    lengths, tours = held_karp(points[None])
    assert lengths[0] == pytest.approx(8 * 2 * math.sin(math.pi / 8))
    angles = np.array(order)[tours[0]]
    steps = np.diff(np.append(angles, angles[0])) % 8
    assert set(steps.tolist()) in ({1}, {7})


def test_canonical_tours_start_at_zero_toward_nearer_neighbour():
    points = circle(4, [0, 1, 2, 3]) * np.array([2.0, 1.0])  # ellipse: 0's nearer side is 1 or 3
    points[3] *= 0.5
    tours = canonical_tours(points[None], np.array([[2, 1, 0, 3]]))
    assert tours.tolist() == [[0, 3, 2, 1]]


def test_decoded_polygon_stops_at_the_closing_pointer():
    assert decoded_polygon(np.array([2, 3, 1, 4, 2, 2])) == [2, 3, 1, 4]
    assert decoded_polygon(np.array([2, 3, 1, 4, 0, 5])) is None


def test_evaluate_convex_hull_by_hand():
    data = {"points": SQUARE[None].repeat(3, axis=0)}
    truth = [2, 3, 1, 4, 2, 2]
    rotated = [3, 1, 4, 2, 3, 3]  # same cycle, other start: still exact
    triangle = [2, 3, 1, 2, 2, 2]  # misses (0, 1): covers half the square
    fp32 = Fixed(tour=np.array([truth, truth, truth]))
    compiled = Fixed(tour=np.array([rotated, triangle, [2, 3, 1, 4, 0, 5]]))
    result = evaluate_convex_hull(fp32, compiled, data)
    assert result.metric("hull_exact_acc").fp32 == pytest.approx(100.0)
    assert result.metric("hull_exact_acc").compiled == pytest.approx(100 / 3)
    assert result.metric("area_coverage").compiled == pytest.approx(50.0)
    assert result.metric("closed_polygons").compiled == pytest.approx(200 / 3)
    assert result.metric("sequence_agreement").compiled == pytest.approx(0.0)
    assert result.worst_primary_drop == pytest.approx(200 / 3)


def test_evaluate_tsp_by_hand():
    points = circle(4, [0, 1, 2, 3])[None].repeat(3, axis=0)
    best = [0, 1, 2, 3]
    fp32 = Fixed(tour=np.array([best, [2, 1, 0, 3], best]))  # second: same cycle, reversed
    compiled = Fixed(tour=np.array([best, [0, 2, 1, 3], [0, 0, 1, 2]]))  # crossing, invalid
    result = evaluate_tsp(fp32, compiled, {"points": points})
    side, diagonal = math.sqrt(2), 2.0
    assert result.metric("tour_length").fp32 == pytest.approx(4 * side)
    crossing = 2 * side + 2 * diagonal
    assert result.metric("tour_length").compiled == pytest.approx((4 * side + crossing) / 2)
    assert result.metric("optimality_gap").fp32 == pytest.approx(0.0, abs=1e-9)
    assert result.metric("valid_tours").compiled == pytest.approx(200 / 3)
    assert result.metric("tour_agreement").compiled == pytest.approx(100 / 3)
    assert result.metric("tour_length").higher_is_better is False


def test_bit_agreement_is_one_minus_hamming_share():
    assert bit_agreement(np.array([1, 0, 1, 1]), np.array([1, 1, 0, 1])) == pytest.approx(50.0)
    assert psnr(np.zeros((2, 4)), np.full((2, 4), 0.1)) == pytest.approx(20.0)


def test_evaluate_binary_code_by_hand():
    image = np.zeros((2, 1, 2, 2))
    bits = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=np.float32)
    flipped = bits.copy()
    flipped[0, :2] = 1 - flipped[0, :2]  # two of eight bits differ
    logits = np.array([[2, -2, 0.05, 1], [-1, -1, -1, -0.01]])
    fp32 = Fixed(bits=bits, recon=np.full((2, 1, 2, 2), 0.1), logits=logits)
    compiled = Fixed(bits=flipped, recon=np.full((2, 1, 2, 2), 0.01))
    result = evaluate_binary_code(fp32, compiled, {"image": image})
    assert result.metric("bit_agreement").compiled == pytest.approx(75.0)
    assert result.metric("identical_codes").compiled == pytest.approx(50.0)
    assert result.metric("psnr").fp32 == pytest.approx(20.0)
    assert result.metric("psnr").compiled == pytest.approx(40.0)
    assert result.details["fp32_logits_near_zero"]["count"] == 2
    assert result.primary == ["bit_agreement", "psnr"]


def test_leave_one_out_scores_by_hand():
    similarity = np.array(
        [
            [0, 0.9, 0.1, 0.8, 0.5],  # relevant at ranks 1 and 4: AP = (1 + 2/4) / 2
            [0.9, 0, 0.8, 0.1, 0.1],
            [0.8, 0.9, 0, 0.1, 0.1],
            [0.1, 0.1, 0.1, 0, 0.9],
            [0.9, 0.1, 0.1, 0.5, 0],  # 1-NN wrong; its one relevant item at rank 2: AP = 1/2
        ]
    )
    labels = np.array([0, 0, 0, 1, 1])
    nn_acc, mean_ap = leave_one_out_scores(np.eye(5), similarity.T, labels, k=10)
    assert nn_acc == pytest.approx(80.0)
    assert mean_ap == pytest.approx(85.0)


def test_evaluate_mrl_retrieval_compatibility_by_hand():
    old = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]])
    new = old.copy()
    new[0] = [0.05, 1]  # sample 0 now looks like class 1
    data = {"labels": np.array([0, 0, 1, 1])}
    result = evaluate_mrl_retrieval(Fixed(embedding=old), Fixed(embedding=new), data, dims=(2,))
    assert result.metric("1nn_acc@2").fp32 == pytest.approx(100.0)
    assert result.metric("map@10@2").fp32 == pytest.approx(100.0)
    assert result.metric("1nn_acc@2").compiled == pytest.approx(0.0)
    assert result.metric("compat_1nn_acc@2").compiled == pytest.approx(75.0)
    assert result.primary == ["1nn_acc@2", "compat_1nn_acc@2"]


@pytest.mark.parametrize(
    ("task", "model", "calib", "options"),
    [
        ("mrl-retrieval", "mrl_encoder/model.onnx", "mrl_digits.npz", {}),
        ("binary-code", "binary_ae/model.onnx", "binary_ae.npz", {}),
        ("pointer-tsp", "pointer_net/tsp.onnx", "pointer_tsp.npz", {}),
        ("pointer-hull", "pointer_net/hull.onnx", "pointer_hull.npz", {}),
    ],
)
def test_builtin_evaluators_on_real_models_show_no_drop_against_themselves(task, model, calib, options):
    data = dict(np.load(ROOT / "calib" / calib))
    data = {name: array[:200] for name, array in data.items()}
    runner = OrtRunner(ROOT / "examples" / model, threads=1)
    result = resolve_evaluator(task)(runner, runner, data, **options)
    assert result.worst_primary_drop == pytest.approx(0.0, abs=1e-9)
    assert all(np.isfinite(m.fp32) for m in result.metrics)


def test_encoder_onnx_codes_agree_with_the_full_autoencoder():
    data = {"image": np.load(ROOT / "calib" / "binary_ae.npz")["image"][:200]}
    full = OrtRunner(ROOT / "examples" / "binary_ae" / "model.onnx", threads=1)
    encoder = OrtRunner(ROOT / "examples" / "binary_ae" / "encoder.onnx", threads=1)
    result = evaluate_binary_code(full, encoder, data)
    assert result.metric("bit_agreement").compiled == pytest.approx(100.0)
    assert "psnr" not in result.primary
