"""Train the two pointer nets (TSP n=10 on Held-Karp tours, convex hull n=10) and export them.

Writes examples/pointer_net/{tsp,hull}.pt and .onnx plus calib/pointer_{tsp,hull}.npz (held-out
instances from their own seed), then prints the task metrics of each ONNX model.
Run from the repo root: python examples/pointer_net/train.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgeq.measure.tasks.pointer import (
    canonical_tours,
    evaluate_convex_hull,
    evaluate_tsp,
    held_karp,
    hull_targets,
)
from edgeq.runtime.session import OrtRunner
from edgeq.zoo import PointerNet, export_onnx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
N = 10
TRAIN_SEED, CALIB_SEED = 1, 12345


def solved_tsp(points: np.ndarray, chunk: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Exact lengths and tours for many instances, solved chunk by chunk to bound memory."""
    parts = [held_karp(points[i : i + chunk]) for i in range(0, len(points), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def augment(points: np.ndarray, tours: np.ndarray, rng: np.random.Generator):
    """Relabel points at random and apply a random square symmetry: the optimal cycle survives."""
    perm = rng.random(points.shape[:2]).argsort(axis=1)
    inverse = perm.argsort(axis=1)
    points = np.take_along_axis(points, perm[..., None], axis=1)
    tours = np.take_along_axis(inverse, tours, axis=1)
    flip = rng.random((len(points), 1, 2)) < 0.5
    points = np.where(flip, 1.0 - points, points)
    swap = rng.random((len(points), 1, 1)) < 0.5
    points = np.where(swap, points[..., ::-1], points)
    return points, canonical_tours(points, tours)


def hull_batch(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = rng.random((size, N, 2))
    return points, hull_targets(points, N + 1)


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy per pointer; for the hull, steps after the polygon closes are padding."""
    losses = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), reduction="none"
    ).view_as(targets)
    if task == "tsp":
        return losses.mean()
    closing = (targets[:, 1:] == targets[:, :1]).long().argmax(dim=1) + 1
    keep = torch.arange(targets.shape[1]) <= closing[:, None]
    return (losses * keep).sum() / keep.sum()


def train(task: str, steps: int, batch: int, train_size: int) -> PointerNet:
    rng = np.random.default_rng(TRAIN_SEED)
    torch.manual_seed(TRAIN_SEED)
    if task == "tsp":
        train_points = rng.random((train_size, N, 2))
        started = time.time()
        _, train_tours = solved_tsp(train_points)
        print(f"tsp: solved {train_size} training instances in {time.time() - started:.0f}s")
    model = PointerNet(n=N, task=task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=5e-5)
    model.train()
    for step in range(steps):
        if task == "tsp":
            pick = rng.integers(0, train_size, batch)
            points, targets = augment(train_points[pick], train_tours[pick], rng)
        else:
            points, targets = hull_batch(batch, rng)
        points_t = torch.from_numpy(points.astype(np.float32))
        targets_t = torch.from_numpy(targets)
        _, logits = model(points_t, targets_t)
        loss = sequence_loss(logits, targets_t, task)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"{task}: step {step:5d} loss {loss.item():.4f}", flush=True)
    return model.eval()


def calib_set(task: str, count: int) -> dict[str, np.ndarray]:
    """Held-out instances (own seed) with the answers the evaluators need."""
    rng = np.random.default_rng(CALIB_SEED + (task == "hull"))
    points = rng.random((count, N, 2)).astype(np.float32)
    if task == "tsp":
        lengths, tours = solved_tsp(points.astype(np.float64))
        return {"points": points, "optimal_length": lengths, "optimal_tour": tours}
    targets = hull_targets(points.astype(np.float64), N + 1)
    sizes = ((targets[:, 1:] == targets[:, :1]).argmax(axis=1) + 1).astype(np.int64)
    return {"points": points, "hull": targets, "hull_size": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["tsp", "hull"], choices=["tsp", "hull"])
    parser.add_argument("--tsp-steps", type=int, default=2500)
    parser.add_argument("--hull-steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tsp-train-size", type=int, default=60000)
    parser.add_argument("--calib-size", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    evaluators = {"tsp": evaluate_tsp, "hull": evaluate_convex_hull}
    for task in args.tasks:
        started = time.time()
        steps = args.tsp_steps if task == "tsp" else args.hull_steps
        model = train(task, steps, args.batch, args.tsp_train_size)
        calib = calib_set(task, args.calib_size)
        np.savez_compressed(ROOT / "calib" / f"pointer_{task}.npz", **calib)
        torch.save(model.state_dict(), HERE / f"{task}.pt")
        example = {"points": torch.from_numpy(calib["points"][:64])}
        errors = export_onnx(model, example, ["tour", "logits"], HERE / f"{task}.onnx")
        runner = OrtRunner(HERE / f"{task}.onnx", threads=1)
        result = evaluators[task](runner, runner, calib)
        print(f"{task}: {time.time() - started:.0f}s, onnx parity {errors}")
        print(json.dumps({m.name: round(m.fp32, 4) for m in result.metrics} | result.details))


if __name__ == "__main__":
    main()
