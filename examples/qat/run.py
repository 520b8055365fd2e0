"""QAT recovers what low-bit post-training quantization loses, measured in ONNX Runtime.

1. MRL encoder, 2-bit (ternary) per-channel weights: Brevitas PTQ (calibration only, steps=0)
   misses a 2-point retrieval budget; QAT with the Matryoshka loss plus distillation to the fp32
   embedding recovers it. 2. Pointer net (hull), 4-bit Linear layers, LSTMs fp32: QAT end to end.
Each model is scored on the fake-quant torch simulation and on its exported QDQ ONNX in ORT.
Run from the repo root: python examples/qat/run.py   (~2 min on 1 CPU thread)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from edgeq.measure.tasks import resolve_evaluator
from edgeq.qat import QatResult, compare_simulated_measured, quantize_aware_train, task_metric, uniform_plan
from edgeq.runtime.session import OrtRunner
from edgeq.zoo import NESTED_DIMS, digits_split, load_mrl_encoder, load_pointer_net

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "pointer_net"))
from train import hull_batch, sequence_loss  # noqa: E402  (the pointer net's own training loss)

GAP_TOLERANCE = 0.5  # metric points: 3 of 600 digits, 5 of 1000 hulls


def mrl_step(teacher_model: torch.nn.Module, seed: int = 0):
    """Matryoshka loss + 10 x (1 - cosine) to the fp32 embedding at every nested prefix."""
    x_train, _, y_train, _ = digits_split()
    images, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    with torch.no_grad():
        teacher = teacher_model(images)
    rng = np.random.default_rng(seed)

    def step(model: torch.nn.Module, _step: int) -> torch.Tensor:
        rows = torch.from_numpy(rng.integers(0, len(images), 128))
        embedding = model(images[rows])
        distill = sum(
            1 - torch.nn.functional.cosine_similarity(embedding[:, :m], teacher[rows][:, :m]).mean()
            for m in NESTED_DIMS
        )
        return model.matryoshka_loss(embedding, labels[rows]) + 10 * distill

    return step, [images[i : i + 256] for i in range(0, 1024, 256)]


def hull_step(seed: int = 7):
    """Teacher-forced cross-entropy on freshly drawn hull instances (as in pointer_net/train.py)."""
    rng = np.random.default_rng(seed)

    def step(model: torch.nn.Module, _step: int) -> torch.Tensor:
        points, targets = hull_batch(128, rng)
        targets_t = torch.from_numpy(targets)
        _, logits = model(torch.from_numpy(points.astype(np.float32)), targets_t)
        return sequence_loss(logits, targets_t, "hull")

    return step, [torch.from_numpy(hull_batch(128, rng)[0].astype(np.float32)) for _ in range(4)]


def score(result: QatResult, path: Path, task: str, reference: OrtRunner, data: dict, headline: str) -> dict:
    """Worst primary drop and the headline metric, simulated vs measured on the exported ONNX."""
    result.export_onnx(path)
    measured = OrtRunner(path, threads=1)
    evaluate = resolve_evaluator(task)
    drops = {
        side: evaluate(reference, predictor, data).worst_primary_drop
        for side, predictor in (("simulated", result.predictor()), ("measured", measured))
    }
    qat = compare_simulated_measured(
        result.predictor(), measured, data, task_metric(task, headline, reference), GAP_TOLERANCE
    )
    return {"worst_drop": drops, headline: qat}


def run_model(
    name: str,
    model,
    plan,
    step_and_calib,
    steps: int,
    lr: float,
    names: tuple,
    task: str,
    reference: OrtRunner,
    data: dict,
    headline: str,
    work: Path,
) -> dict:
    step, calib = step_and_calib
    rows = {}
    for label, n in (("ptq", 0), ("qat", steps)):
        torch.manual_seed(0)
        result = quantize_aware_train(
            model,
            plan,
            calib_batches=calib,
            steps=n,
            lr=lr,
            train_step=step,
            input_names=names[0],
            output_names=names[1],
        )
        rows[label] = score(result, work / f"{name}_{label}.onnx", task, reference, data, headline)
    fp32 = resolve_evaluator(task)(reference, reference, data).metric(headline).fp32
    return {"fp32": {headline: fp32}, "float_layers": result.float_layers, **rows}


def show(console: Console, title: str, budget: float, summary: dict) -> None:
    headline = next(k for k in summary["ptq"] if k != "worst_drop")
    table = Table(title=f"{title}: {headline}; budget: worst primary drop <= {budget}")
    for column in (
        "",
        "sim",
        "ORT",
        "gap flagged",
        "worst drop sim",
        "worst drop ORT",
        "within budget (ORT)",
    ):
        table.add_column(column)
    table.add_row("fp32", f"{summary['fp32'][headline]:.2f}", "", "", "", "", "")
    for label in ("ptq", "qat"):
        row, qat = summary[label], summary[label][headline]
        table.add_row(
            label.upper(),
            f"{qat['simulated']:.2f}",
            f"{qat['measured']:.2f}",
            str(qat["flagged"]),
            f"{row['worst_drop']['simulated']:.2f}",
            f"{row['worst_drop']['measured']:.2f}",
            "yes" if row["worst_drop"]["measured"] <= budget else "no",
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mrl-bits", type=int, default=2)
    parser.add_argument("--mrl-steps", type=int, default=300)
    parser.add_argument("--mrl-budget", type=float, default=2.0)
    parser.add_argument("--hull-bits", type=int, default=4)
    parser.add_argument("--hull-steps", type=int, default=200)
    parser.add_argument("--hull-budget", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="brevitas")
    console = Console()
    summary = {}
    with tempfile.TemporaryDirectory(prefix="edgeq-qat-") as tmp:
        mrl = load_mrl_encoder(ROOT / "examples/mrl_encoder/model.pt")
        summary["mrl"] = run_model(
            "mrl",
            mrl,
            uniform_plan(mrl, args.mrl_bits, skip=("heads",)),
            mrl_step(mrl),
            args.mrl_steps,
            1e-3,
            (["image"], ["embedding"]),
            "mrl-retrieval",
            OrtRunner(ROOT / "examples/mrl_encoder/model.onnx", threads=1),
            dict(np.load(ROOT / "calib/mrl_digits.npz")),
            "1nn_acc@8",
            Path(tmp),
        )
        show(console, f"MRL encoder, {args.mrl_bits}-bit weights", args.mrl_budget, summary["mrl"])
        hull = load_pointer_net(ROOT / "examples/pointer_net/hull.pt", "hull")
        summary["hull"] = run_model(
            "hull",
            hull,
            uniform_plan(hull, args.hull_bits),
            hull_step(),
            args.hull_steps,
            1e-4,
            (["points"], ["tour", "logits"]),
            "pointer-hull",
            OrtRunner(ROOT / "examples/pointer_net/hull.onnx", threads=1),
            dict(np.load(ROOT / "calib/pointer_hull.npz")),
            "hull_exact_acc",
            Path(tmp),
        )
        show(
            console,
            f"Pointer net (hull), {args.hull_bits}-bit Linear, LSTMs fp32",
            args.hull_budget,
            summary["hull"],
        )
    console.print_json(json.dumps(summary))


if __name__ == "__main__":
    main()
