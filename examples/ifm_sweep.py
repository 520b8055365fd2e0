"""Sweep IFM's threshold β: parameters kept vs the task metric, before any quantization.

    python examples/ifm_sweep.py                     # the reference models -> examples/ifm_results.md
    python examples/ifm_sweep.py --case MODEL.onnx EVALUATOR DATA.npz [--case ...]
        [--thresholds 0.1,0.2] [--max-ratios 0.2,0.3] [--approximate] [--protect NAME ...]
        [--out FILE.md]

EVALUATOR is a built-in name (mrl-retrieval, binary-code, ...) or `module:function`. By default
max_ratio is `merge_features`'s default and the β list holds its default (marked in the table).
The last row of each model is what `edgeq compile --prune ifm` keeps: the β and max_ratio its
search measured (edgeq.stages.prune_search: per β the largest max_ratio whose pruned model spends at
most half the default budget, then the fewest parameters), judged here on the whole data file.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from edgeq.measure.tasks import TaskResult, resolve_evaluator
from edgeq.passes.ifm import PruningSummary, merge_features
from edgeq.recipe import build_recipe
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.stages.prune_search import PruneData, choose_pruning


@dataclass(frozen=True)
class Case:
    """A model, how to judge it, and which metric the table shows as its headline."""

    model: str
    evaluator: str
    data: str
    options: dict = field(default_factory=dict)
    headline: str | None = None  # None: the evaluator's first primary metric


REFERENCE_CASES = [
    Case(
        "examples/mrl_encoder/model.onnx",
        "mrl-retrieval",
        "calib/mrl_digits.npz",
        {"dims": [8, 16, 32, 64, 128]},
        headline="1nn_acc@128",
    ),
    Case(
        "examples/binary_ae/model.onnx",
        "binary-code",
        "calib/binary_ae.npz",
        {"bits": "bits", "recon": "recon"},
        headline="bit_agreement",
    ),
]
DEFAULTS = inspect.signature(merge_features).parameters
DEFAULT_SETTING = (DEFAULTS["threshold"].default, DEFAULTS["max_ratio"].default)
DEFAULT_THRESHOLDS = "0.1,0.15,0.2,0.25,0.3"
HEADER = (
    "| model | β | max_ratio | params kept | FLOPs kept | channels merged (identical) "
    "| worst primary drop | headline (fp32 → pruned) |\n|---|---|---|---|---|---|---|---|"
)


def prepared(path: str) -> onnx.ModelProto:
    """The model as the compiler's passes see it: prepared (BN folded) when prepare exists."""
    model = onnx.load(path)
    try:
        from edgeq.passes.prepare import prepare_model
    except ImportError:
        return onnx.shape_inference.infer_shapes(model)
    return prepare_model(model)


def table_row(
    case: Case, threshold: float, ratio: float | str, summary: PruningSummary, result: TaskResult
) -> str:
    """One Markdown row; the default setting is marked so the out-of-the-box result stands out."""
    worst = max(result.primary, key=lambda name: result.metric(name).drop)
    headline = result.metric(case.headline or result.primary[0])
    default = (threshold, ratio) == DEFAULT_SETTING
    beta = f"**{threshold:g}** (default)" if default else f"{threshold:g}"
    return (
        f"| {Path(case.model).parent.name} | {beta} | {ratio if isinstance(ratio, str) else f'{ratio:g}'} "
        f"| {100 * summary.parameters_kept:.1f}% "
        f"| {100 * summary.to_dict()['flops_kept']:.1f}% "
        f"| {summary.channels_merged} ({summary.channels_lossless}) "
        f"| {result.worst_primary_drop:+.2f} ({worst}) "
        f"| {headline.name} {headline.fp32:.2f} → {headline.compiled:.2f} |"
    )


def sweep(case: Case, settings: list[tuple[float, float]], args: argparse.Namespace) -> list[str]:
    """Prune at every β and judge each pruned model against the unpruned (prepared) one."""
    model = prepared(case.model)
    data = dict(np.load(case.data))
    evaluator = resolve_evaluator(case.evaluator)
    fp32 = OrtRunner(model.SerializeToString())
    rows = []
    for max_ratio, threshold in settings:
        pruned, summary = merge_features(
            model,
            threshold=threshold,
            max_ratio=max_ratio,
            protected=args.protect,
            approximate=args.approximate,
        )
        result = evaluator(fp32, OrtRunner(pruned.SerializeToString()), data, **case.options)
        rows.append(table_row(case, threshold, max_ratio, summary, result))
        print(rows[-1], flush=True)
    rows.append(measured_row(case, model, data, args))
    print(rows[-1], flush=True)
    return rows


def measured_row(case: Case, model: onnx.ModelProto, data: dict, args: argparse.Namespace) -> str:
    """What the compile's search keeps at the default β and budget (data: calibration and evaluation)."""
    recipe = build_recipe(
        task={"name": case.evaluator, "options": case.options},
        prune={"approximate": args.approximate, "protected": args.protect},
    )
    _, pruning = choose_pruning(PruneData(onnx.load(case.model), model, recipe, data, data))
    chosen = pruning.search.chosen_max_ratio
    label = f"**searched: {chosen:g}**" if chosen is not None else "**searched: unpruned**"
    return table_row(case, pruning.summary.threshold, label, pruning.summary, pruning.accuracy.task)


def machine_line() -> str:
    machine = describe_machine()
    return f"machine: {machine.cpu}, {machine.cores} cores, onnxruntime {machine.versions.get('onnxruntime')}"


def report(rows: list[str], args: argparse.Namespace) -> str:
    """The Markdown written to --out: how it was made, then the table."""
    command = "python " + shlex.join(["examples/ifm_sweep.py", *sys.argv[1:]])
    return "\n".join(
        [
            "# IFM sweep: parameters kept vs task metric, before quantization",
            "",
            f"`{command}`",
            "",
            machine_line(),
            "",
            f"approximate={args.approximate}, protected={args.protect or 'none'}; worst primary drop "
            "is over all the evaluator's primary metrics (points; dB for psnr), pruned vs unpruned "
            "fp32. `searched`: what `edgeq compile --prune ifm` keeps (per β in 0.1, 0.25 the largest "
            "max_ratio whose pruned model spends at most half the default budget, max_drop 1.0; then "
            "the fewest parameters).",
            "",
            HEADER,
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=3, action="append", metavar=("MODEL", "EVALUATOR", "DATA"))
    parser.add_argument("--thresholds", default=DEFAULT_THRESHOLDS)
    parser.add_argument("--max-ratios", default=str(DEFAULT_SETTING[1]))
    parser.add_argument("--approximate", action="store_true")
    parser.add_argument("--protect", nargs="*", default=[])
    parser.add_argument(
        "--out", type=Path, help="Markdown file (default for the reference models: examples/ifm_results.md)"
    )
    args = parser.parse_args()
    cases = (
        [Case(*case) for case in args.case]
        if args.case
        else [case for case in REFERENCE_CASES if Path(case.model).exists()]
    )
    if not cases:
        parser.error("no --case given and the reference models are not trained yet")
    out = args.out or (None if args.case else Path("examples/ifm_results.md"))
    settings = [
        (float(ratio), float(beta))
        for ratio in args.max_ratios.split(",")
        for beta in args.thresholds.split(",")
    ]
    print(HEADER)
    rows = [row for case in cases for row in sweep(case, settings, args)]
    if out is not None:
        out.write_text(report(rows, args))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
