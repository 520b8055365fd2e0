"""Sweep IFM's threshold β: parameters kept vs the task metric, before any quantization.

    python examples/ifm_sweep.py                     # the reference models, when trained
    python examples/ifm_sweep.py --case MODEL.onnx EVALUATOR DATA.npz [--case ...]
        [--thresholds 0,0.05,0.1] [--max-ratio 0.5] [--approximate] [--protect NAME ...]

EVALUATOR is a built-in name (mrl-retrieval, binary-code, ...) or `module:function`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx

from edgeq.measure.runner import OrtRunner
from edgeq.measure.tasks import TaskResult, resolve_evaluator
from edgeq.passes.ifm import PruningSummary, merge_features

REFERENCE_CASES = [
    ("examples/mrl_encoder/model.onnx", "mrl-retrieval", "calib/mrl_digits.npz"),
    ("examples/binary_ae/model.onnx", "binary-code", "calib/binary_ae.npz"),
]
DEFAULT_THRESHOLDS = "0,0.01,0.02,0.05,0.1,0.15,0.2,0.3,0.5"


def prepared(path: str) -> onnx.ModelProto:
    """The model as the compiler's passes see it: prepared (BN folded) when prepare exists."""
    model = onnx.load(path)
    try:
        from edgeq.passes.prepare import prepare_model
    except ImportError:
        return onnx.shape_inference.infer_shapes(model)
    return prepare_model(model)


def evaluate(fp32: OrtRunner, pruned: onnx.ModelProto, evaluator, data) -> TaskResult:
    return evaluator(fp32, OrtRunner(pruned.SerializeToString()), data)


def sweep_row(threshold: float, summary: PruningSummary, result: TaskResult) -> str:
    first = result.metric(result.primary[0])
    worst = max(result.primary, key=lambda name: result.metric(name).drop)
    return (f"{threshold:>7.3f} {100 * summary.parameters_kept:>8.1f}% "
            f"{100 * summary.to_dict()['flops_kept']:>8.1f}% {summary.channels_merged:>7d} "
            f"{first.compiled:>12.2f} {result.worst_primary_drop:>+11.2f}  {worst}")


def sweep(case: tuple[str, str, str], thresholds: list[float], args: argparse.Namespace) -> None:
    model_path, evaluator_name, data_path = case
    model = prepared(model_path)
    data = dict(np.load(data_path))
    evaluator = resolve_evaluator(evaluator_name)
    fp32 = OrtRunner(model.SerializeToString())
    print(f"\n{model_path} ({evaluator_name} on {data_path}), max_ratio={args.max_ratio}, "
          f"approximate={args.approximate}")
    baseline = evaluate(fp32, model, evaluator, data)
    print(f"{'beta':>7} {'params':>9} {'FLOPs':>9} {'merged':>7} {baseline.primary[0][:12]:>12} "
          f"{'worst drop':>11}  worst metric")
    for threshold in thresholds:
        pruned, summary = merge_features(model, threshold=threshold, max_ratio=args.max_ratio,
                                         protected=args.protect, approximate=args.approximate)
        print(sweep_row(threshold, summary, evaluate(fp32, pruned, evaluator, data)))
    print(f"fp32 {baseline.primary[0]} = {baseline.metric(baseline.primary[0]).fp32:.2f}; "
          "worst drop is over all primary metrics (points)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs=3, action="append", metavar=("MODEL", "EVALUATOR", "DATA"))
    parser.add_argument("--thresholds", default=DEFAULT_THRESHOLDS)
    parser.add_argument("--max-ratio", type=float, default=0.5)
    parser.add_argument("--approximate", action="store_true")
    parser.add_argument("--protect", nargs="*", default=[])
    args = parser.parse_args()
    cases = args.case or [case for case in REFERENCE_CASES if Path(case[0]).exists()]
    if not cases:
        parser.error("no --case given and the reference models are not trained yet")
    thresholds = [float(value) for value in args.thresholds.split(",")]
    for case in cases:
        sweep(tuple(case), thresholds, args)


if __name__ == "__main__":
    main()
