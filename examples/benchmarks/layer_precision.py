"""Per-layer precision on real models: compile, then judge the kept artifact by its outputs' own metric.

    W=~/.cache/edgeq-wild
    python examples/benchmarks/layer_precision.py $W/minilm_l6_ts --judge recall
    python examples/benchmarks/layer_precision.py $W/minilm_l6_ts --judge recall --smoothquant
    python examples/benchmarks/layer_precision.py $W/minilm_l6_ts --judge recall --bits 4
    python examples/benchmarks/layer_precision.py $W/minilm_l6_ts --judge recall --bits 4 --gptq
    python examples/benchmarks/layer_precision.py $W/crepe_tiny --judge top1

Compiles MODEL_DIR/model.onnx with MODEL_DIR/calib.npz (edgeq's default recipe, the bits given),
judged by `--judge`: output cosine (the default budget), neighbour recall@10 >= 0.97 or top-1
agreement >= 99.5% (given to edgeq as a task evaluator from this file, so the budget the compile
and its repairs meet is that metric), then runs fp32 and the kept artifact on the compile's own
held-out split and prints, per output: cosine, neighbour recall@10 (2-D embeddings: how many of
each sample's 10 nearest fp32 neighbours stay in the artifact's top 10) and top-1 agreement (argmax
over the last axis), beside the compile's interleaved speedups, the size ratio and every
candidate's line (repairs with the layers they kept). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import edgeq
from edgeq.data import load_npz, split
from edgeq.measure.tasks import TaskMetric, TaskResult
from edgeq.runtime.session import OrtRunner

NEIGHBOURS = 10
JUDGES = {"recall": ("neighbour_recall_task", 3.0), "top1": ("top1_task", 0.5)}  # max drop, percent


def neighbour_recall(reference: np.ndarray, candidate: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each row's k nearest fp32 neighbours (cosine, itself left out) kept in the top k."""

    def top(x: np.ndarray) -> np.ndarray:
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1)[:, :k]

    want, have = top(reference.astype(np.float64)), top(candidate.astype(np.float64))
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(want, have, strict=True)]))


def neighbour_recall_task(fp32, compiled, data) -> TaskResult:
    """recall@10 of the first 2-D output, in percent (fp32: 100), as an edgeq task evaluator."""
    want, have = fp32.predict(data), compiled.predict(data)
    name = next(n for n, v in want.items() if v.ndim == 2)
    recall = 100 * neighbour_recall(want[name], have[name])
    return TaskResult("neighbour-recall", [TaskMetric("recall@10", 100.0, recall, unit="%")], ["recall@10"])


def top1_task(fp32, compiled, data) -> TaskResult:
    """Top-1 agreement with fp32 over the last axis of the first output, in percent."""
    want, have = fp32.predict(data), compiled.predict(data)
    name = next(iter(want))
    agreement = 100 * float(np.mean(want[name].argmax(-1) == have[name].argmax(-1)))
    return TaskResult("top1-agreement", [TaskMetric("top1", 100.0, agreement, unit="%")], ["top1"])


def output_metrics(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Cosine; recall@10 for a 2-D embedding; top-1 agreement over the last axis when it has classes."""
    a, b = reference.astype(np.float64).ravel(), candidate.astype(np.float64).ravel()
    metrics = {"cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))}
    if reference.ndim == 2 and len(reference) > NEIGHBOURS and reference.shape[1] > 1:
        metrics["recall@10"] = neighbour_recall(reference, candidate)
    if reference.shape[-1] > 1:
        metrics["top1_agreement"] = float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--bits", type=int, choices=(8, 4), default=8)
    parser.add_argument("--judge", choices=("cosine", *JUDGES), default="cosine")
    parser.add_argument("--gptq", action="store_true", help="4-bit weights rounded by GPTQ")
    parser.add_argument("--smoothquant", action="store_true", help="INT8 also on the smoothed graph")
    parser.add_argument("--target", default=str(Path(__file__).parent / "cpu-x86-avx2-b1.yaml"))
    args = parser.parse_args()
    folder = args.model_dir.expanduser()
    methods = {"gptq": args.gptq, "smoothquant": args.smoothquant}
    name = "-".join([folder.name, str(args.bits), args.judge, *(m for m, on in methods.items() if on)])
    out = args.out or Path("/tmp/edgeq-layer-precision") / name
    judged = {}
    if args.judge in JUDGES:
        function, max_drop = JUDGES[args.judge]
        task = {"name": f"{Path(__file__).resolve()}:{function}"}
        judged = {"task": task, "budget": {"max_drop": max_drop}}
    result = edgeq.compile(
        folder / "model.onnx",
        out=out,
        calib=folder / "calib.npz",
        target=args.target,
        bits=args.bits,
        methods=methods,
        **judged,
        force=True,
        progress=True,
        runs=False,
    )
    report = result.report
    calib = load_npz(folder / "calib.npz")
    _, evaluation = split(calib, len(next(iter(calib.values()))), report.recipe["eval_fraction"])
    fp32 = OrtRunner((folder / "model.onnx").read_bytes()).predict(evaluation)
    kept = OrtRunner(result.artifact.read_bytes()).predict(evaluation)
    print(
        json.dumps(
            {
                "model": folder.name,
                "bits": args.bits,
                "judge": args.judge,
                "methods": methods,
                "chosen": report.decision.chosen,
                "reason": report.decision.reason,
                "size_ratio": round(report.size_ratio, 4),
                "speedups": {e.batch: round(e.speedup, 3) for e in report.latency},
                "outputs": {name: output_metrics(fp32[name], kept[name]) for name in fp32},
                "candidates": [
                    {
                        "name": c.name,
                        "speedups": {b: round(s, 3) for b, s in c.speedups.items()},
                        "worst_cosine": round(c.worst_cosine, 5),
                        "task_drop": c.task_drop,
                        "size_ratio": c.size_ratio and round(c.size_ratio, 4),
                        "within_budget": c.within_budget,
                        "kept_layers": c.repair.kept_layers if c.repair else None,
                        "steps": [vars(s) for s in c.repair.steps] if c.repair else None,
                    }
                    for c in report.decision.candidates
                ],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
