"""Pointer-network evaluators (TSP, planar convex hull) and the exact solvers they compare against.

Helpers are plain numpy and hand-checkable: monotone-chain hull, Held-Karp DP, tour length,
shoelace area. Hull convention: counter-clockwise, starting at the lexicographically smallest
point (min x, then min y); the decoded sequence closes by pointing back at its first vertex.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgeq.measure.tasks import Predictor, TaskMetric, TaskResult


def convex_hull(points: np.ndarray) -> list[int]:
    """Indices of the hull vertices of `points` [n, 2], CCW from the lexicographically smallest."""
    order = sorted(range(len(points)), key=lambda i: (points[i, 0], points[i, 1]))

    def cross(o: int, a: int, b: int) -> float:
        (ox, oy), (ax, ay), (bx, by) = points[o], points[a], points[b]
        return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)

    def chain(indices: list[int]) -> list[int]:
        out: list[int] = []
        for i in indices:
            while len(out) >= 2 and cross(out[-2], out[-1], i) <= 0:
                out.pop()
            out.append(i)
        return out

    lower, upper = chain(order), chain(order[::-1])
    return lower[:-1] + upper[:-1]


def hull_targets(points: np.ndarray, steps: int) -> np.ndarray:
    """Padded hull pointer targets [batch, steps]: hull CCW, then its first vertex repeated."""
    targets = np.empty((len(points), steps), dtype=np.int64)
    for b, pts in enumerate(points):
        hull = convex_hull(pts)
        targets[b] = hull + [hull[0]] * (steps - len(hull))
    return targets


def polygon_area(points: np.ndarray, order: np.ndarray | list[int]) -> float:
    """Absolute shoelace area of the polygon visiting `points` in `order`."""
    x, y = points[np.asarray(order)].T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def tour_length(points: np.ndarray, tours: np.ndarray) -> np.ndarray:
    """Closed tour lengths for `points` [batch, n, 2] visited in `tours` [batch, steps]."""
    ordered = np.take_along_axis(points, tours[..., None], axis=1)
    return np.linalg.norm(ordered - np.roll(ordered, -1, axis=1), axis=-1).sum(axis=1)


def held_karp(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact TSP by Held-Karp DP, vectorised over the batch: (lengths [b], tours [b, n] from 0)."""
    batch, n, _ = points.shape
    if n > 12:
        raise ValueError(f"held_karp is exponential in n; got n={n} (> 12)")
    dist = np.linalg.norm(points[:, :, None] - points[:, None, :], axis=-1)
    m = n - 1  # node 0 is the fixed start; bit j-1 of a mask stands for node j
    cost = np.full((batch, 1 << m, n), np.inf)
    parent = np.zeros((batch, 1 << m, n), dtype=np.int8)
    for j in range(1, n):
        cost[:, 1 << (j - 1), j] = dist[:, 0, j]
    for mask in range(1, 1 << m):
        ends = [j for j in range(1, n) if mask >> (j - 1) & 1]
        if len(ends) < 2:
            continue
        ends_arr = np.array(ends)
        prev = np.array([mask ^ (1 << (j - 1)) for j in ends])
        totals = cost[:, prev, :] + dist[:, :, ends_arr].transpose(0, 2, 1)  # [b, ends, k]
        parent[:, mask, ends_arr] = totals.argmin(axis=-1)
        cost[:, mask, ends_arr] = totals.min(axis=-1)
    full = (1 << m) - 1
    closing = cost[:, full, :] + dist[:, :, 0]
    last = closing.argmin(axis=-1)
    lengths = closing[np.arange(batch), last]
    tours = np.zeros((batch, n), dtype=np.int64)
    for b in range(batch):
        mask, node = full, int(last[b])
        for step in range(n - 1, 0, -1):
            tours[b, step] = node
            node, mask = int(parent[b, mask, node]), mask ^ (1 << (node - 1))
    return lengths, tours


def canonical_tours(points: np.ndarray, tours: np.ndarray) -> np.ndarray:
    """Cycles [b, n] in canonical form: start at node 0, step first to its nearer cycle neighbour.

    One cycle has 2n spellings; a fixed one makes supervised targets and agreement well defined.
    """
    n = tours.shape[1]
    start = (tours == 0).argmax(axis=1)
    rolled = np.take_along_axis(tours, (np.arange(n) + start[:, None]) % n, axis=1)
    rows = np.arange(len(tours))
    ahead = np.linalg.norm(points[rows, rolled[:, 1]] - points[:, 0], axis=-1)
    behind = np.linalg.norm(points[rows, rolled[:, -1]] - points[:, 0], axis=-1)
    flipped = np.concatenate([rolled[:, :1], rolled[:, :0:-1]], axis=1)
    return np.where((behind < ahead)[:, None], flipped, rolled)


def _valid_tours(tours: np.ndarray, n: int) -> np.ndarray:
    return (np.sort(tours, axis=1) == np.arange(n)).all(axis=1)


def evaluate_tsp(
    fp32: Predictor,
    compiled: Predictor,
    data: Mapping[str, np.ndarray],
    tour: str = "tour",
    points_key: str = "points",
) -> TaskResult:
    """Tour length and optimality gap vs Held-Karp, valid-tour share and fp32 agreement."""
    points = np.asarray(data[points_key], dtype=np.float64)
    n = points.shape[1]
    optimal = (
        np.asarray(data["optimal_length"], dtype=np.float64)
        if "optimal_length" in data
        else held_karp(points)[0]
    )
    tours = {"fp32": fp32.predict(data)[tour], "compiled": compiled.predict(data)[tour]}
    stats: dict[str, dict[str, float]] = {}
    for side, t in tours.items():
        valid = _valid_tours(t, n)
        lengths = tour_length(points[valid], t[valid])
        stats[side] = {
            "valid": 100.0 * float(valid.mean()),
            "length": float(lengths.mean()) if valid.any() else float("nan"),
            "gap": float(100.0 * (lengths / optimal[valid] - 1).mean()) if valid.any() else 100.0,
        }
    both_valid = _valid_tours(tours["fp32"], n) & _valid_tours(tours["compiled"], n)
    same = both_valid & (
        canonical_tours(points, tours["fp32"]) == canonical_tours(points, tours["compiled"])
    ).all(axis=1)
    metrics = [
        TaskMetric("tour_length", stats["fp32"]["length"], stats["compiled"]["length"], False),
        TaskMetric("optimality_gap", stats["fp32"]["gap"], stats["compiled"]["gap"], False, "%"),
        TaskMetric("valid_tours", stats["fp32"]["valid"], stats["compiled"]["valid"], True, "%"),
        TaskMetric("tour_agreement", 100.0, 100.0 * float(np.mean(same)), True, "%"),
    ]
    details = {
        "instances": len(points),
        "n": n,
        "optimal_length": float(optimal.mean()),
        "note": "length and gap are averaged over each model's valid tours only",
    }
    return TaskResult("pointer-tsp", metrics, ["optimality_gap", "valid_tours"], details)


def decoded_polygon(sequence: np.ndarray) -> list[int] | None:
    """Vertices pointed at before the sequence returns to its first one; None if it never closes."""
    closes = np.flatnonzero(sequence[1:] == sequence[0])
    return None if len(closes) == 0 else [int(i) for i in sequence[: closes[0] + 1]]


def _same_cycle(a: list[int], b: list[int]) -> bool:
    """Equal as cycles: any rotation, same (CCW) direction."""
    return len(a) == len(b) and any(a == b[k:] + b[:k] for k in range(len(b)))


def _hull_scores(points: np.ndarray, sequences: np.ndarray) -> tuple[float, float, float]:
    exact, coverage, closed = [], [], []
    for pts, seq in zip(points, sequences, strict=True):
        truth, polygon = convex_hull(pts), decoded_polygon(seq)
        closed.append(polygon is not None)
        exact.append(polygon is not None and _same_cycle(polygon, truth))
        area = polygon_area(pts, polygon) if polygon and len(set(polygon)) >= 3 else 0.0
        coverage.append(area / polygon_area(pts, truth))
    share = [100.0 * float(np.mean(v)) for v in (exact, coverage, closed)]
    return share[0], share[1], share[2]


def evaluate_convex_hull(
    fp32: Predictor,
    compiled: Predictor,
    data: Mapping[str, np.ndarray],
    tour: str = "tour",
    points_key: str = "points",
) -> TaskResult:
    """Exact hull accuracy (cycle equal up to rotation, CCW) and area coverage, fp32 vs compiled."""
    points = np.asarray(data[points_key], dtype=np.float64)
    seqs = {"fp32": fp32.predict(data)[tour], "compiled": compiled.predict(data)[tour]}
    scores = {side: _hull_scores(points, s) for side, s in seqs.items()}
    pairs = zip(seqs["fp32"], seqs["compiled"], strict=True)
    agree = [decoded_polygon(a) == decoded_polygon(b) for a, b in pairs]
    metrics = [
        TaskMetric("hull_exact_acc", scores["fp32"][0], scores["compiled"][0], True, "%"),
        TaskMetric("area_coverage", scores["fp32"][1], scores["compiled"][1], True, "%"),
        TaskMetric("closed_polygons", scores["fp32"][2], scores["compiled"][2], True, "%"),
        TaskMetric("sequence_agreement", 100.0, 100.0 * float(np.mean(agree)), True, "%"),
    ]
    details = {
        "instances": len(points),
        "n": points.shape[1],
        "convention": "hull CCW from the min-(x, y) vertex, closed by pointing back at it; "
        "exact = same cycle up to rotation; coverage = |shoelace area| / true hull area",
    }
    return TaskResult("pointer-hull", metrics, ["hull_exact_acc", "area_coverage"], details)
