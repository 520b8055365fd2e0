"""Static INT8: AdaRound and bias correction when asked, calibration, then the QDQ rewrite."""

from __future__ import annotations

import onnx

from edgeq.data import Arrays
from edgeq.progress import Progress
from edgeq.quant.bias_correction import apply_biases, corrected_biases
from edgeq.quant.calibrate import calibrate_ranges
from edgeq.quant.observers import calibration_passes
from edgeq.quant.plan import QuantPlan, plan_int8
from edgeq.quant.qdq import activation_format, rewrite_qdq, weight_format
from edgeq.recipe import Recipe
from edgeq.targets import TargetSpec


def quantize_static(
    prepared: onnx.ModelProto,
    plan: QuantPlan,
    recipe: Recipe,
    target: TargetSpec,
    calib: Arrays,
    progress: Progress,
) -> tuple[onnx.ModelProto, QuantPlan]:
    """The static QDQ model and its plan.

    Bias correction can give a bias to a layer that had none, so the plan is made again after it.
    """
    scheme, methods = target.quantization.int8, recipe.methods
    fmt = weight_format(scheme)
    model, learned = prepared, None
    if methods.adaround:
        from edgeq.quant.adaround import adaround_weights  # torch: imported only when asked for

        with progress.bar("adaround layers", len({w.node for w in plan.weights})) as tick:
            learned = adaround_weights(
                model,
                plan,
                calib,
                fmt,
                iterations=methods.adaround_iterations,
                samples=recipe.calibration.samples,
                progress=lambda *_: tick(),
            )
    if methods.bias_correction:
        biases = corrected_biases(
            model, plan, calib, fmt, samples=recipe.calibration.samples, quantized_weights=learned
        )
        model = apply_biases(model, biases)
        plan = plan_int8(
            model, scheme, recipe.exclude, mode="static", per_tensor_matmul=plan.per_tensor_matmul
        )
    ranges = calibrate(model, plan, recipe, target, calib, progress)
    return rewrite_qdq(model, plan, ranges, scheme, weight_overrides=learned), plan


def calibrate(
    prepared: onnx.ModelProto,
    plan: QuantPlan,
    recipe: Recipe,
    target: TargetSpec,
    calib: Arrays,
    progress: Progress,
    every: bool = False,
) -> dict[str, tuple[float, float]]:
    """Activation ranges of the plan's tensors (`every`: of every quantizable tensor) on calibration data."""
    samples = min(recipe.calibration.samples, len(next(iter(calib.values()))))
    batches = -(-samples // 32) * calibration_passes(recipe.calibration.method)
    with progress.bar(f"calibrate ({recipe.calibration.method})", batches) as tick:
        return calibrate_ranges(
            prepared,
            plan.calibration_tensors(every),
            calib,
            recipe.calibration,
            activation_format(target.quantization.int8),
            progress=lambda *_: tick(),
        )
