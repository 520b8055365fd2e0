"""Compile every reference model with its recipe and print the fp32 → compiled table for the README.

Run from the repository root: `python examples/reference_results.py [--out out/reference]`.
Each row is one `edgeq compile --recipe ...` run; every number comes from its report.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import edgeq
from edgeq.runtime.machine import describe_machine

RECIPES = {
    "MRL encoder (digits)": "examples/mrl_encoder/recipe.yaml",
    "binary AE (full)": "examples/binary_ae/recipe.yaml",
    "binary AE (encoder)": "examples/binary_ae/recipe_encoder.yaml",
    "pointer net, TSP n=10": "examples/pointer_net/recipe.yaml",
    "pointer net, convex hull n=10": "examples/pointer_net/recipe_hull.yaml",
}


def _metrics(report: edgeq.Report) -> str:
    """The task's primary metrics as 'name fp32 → compiled' (worst dims only for MRL)."""
    if report.task is None:
        return f"cosine {report.worst_cosine:.4f}"
    primary = [m for m in report.task.metrics if m.name in report.task.primary]
    shown = sorted(primary, key=lambda m: m.drop, reverse=True)[:3]
    return "; ".join(f"{m.name} {m.fp32:.2f} → {m.compiled:.2f}" for m in shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/reference"))
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4], choices=[8, 4])
    args = parser.parse_args()
    machine = describe_machine()
    print(
        f"machine: {machine.cpu}, {machine.cores} cores, flags {' '.join(machine.flags)}, "
        f"onnxruntime {machine.versions.get('onnxruntime')}\n"
    )
    print("| model | bits | chosen | speedup b1 / b32 | size | primary metrics (fp32 → compiled, worst 3) |")
    print("|---|---|---|---|---|---|")
    plans = {}
    for name, recipe_path in RECIPES.items():
        for bits in args.bits:
            recipe, model = edgeq.load_recipe(recipe_path)
            out = args.out / Path(recipe_path).parent.name / f"{Path(recipe_path).stem}-{bits}bit"
            report = edgeq.compile(model, out=out, recipe=recipe, bits=bits, force=True, runs=False).report
            speed = " / ".join(f"{e.speedup:.2f}×" for e in report.latency)
            print(
                f"| {name} | {bits} | {report.decision.chosen} | {speed} | {report.size_ratio:.2f}× | "
                f"{_metrics(report)} |",
                flush=True,
            )
            if report.precision_plan:
                plans[name] = report.precision_plan.comparison
    print("\n4-bit compiles: the precision plans compared, each measured as an artifact\n")
    print("| model | plan | size | slowest speedup | worst primary drop | within budget |")
    print("|---|---|---|---|---|---|")
    for name, rows in plans.items():
        for row in rows:
            drop = "—" if row.task_drop is None else f"{row.task_drop:.2f}"
            within = "yes" if row.within_budget else "no"
            print(f"| {name} | {row.plan} | {row.size_ratio:.2f}× | {row.speedup:.2f}× | {drop} | {within} |")


if __name__ == "__main__":
    main()
