"""`quantize_aware_train`: plan -> fake-quant layers -> calibrate -> fine-tune, and what it returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgeq.data import Arrays
from edgeq.errors import InputError
from edgeq.progress import Progress
from edgeq.qat.compare import Metric
from edgeq.qat.export import export_qdq
from edgeq.qat.format import QatFormat
from edgeq.qat.plan import Precision, PrecisionPlan, float_layers
from edgeq.qat.predictor import TorchPredictor
from edgeq.qat.train import LossFn, TrainStep, as_args, calibrate_activations, fine_tune, loader_step
from edgeq.qat.wrap import quantize_layers
from edgeq.targets import TargetSpec


@dataclass
class QatResult:
    """The trained fake-quant model and what is needed to export and score it."""

    model: nn.Module
    plan: PrecisionPlan
    format: QatFormat
    example_inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    losses: list[float] = field(default_factory=list)
    float_layers: dict[str, str] = field(default_factory=dict)

    def export_onnx(
        self,
        path: str | Path,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> onnx.ModelProto:
        """QDQ ONNX (Brevitas QCDQ, opset 17, dynamic batch axis) that `edgeq compile` can take."""
        return export_qdq(
            self.model,
            self.example_inputs,
            path,
            input_names or self.input_names,
            output_names or self.output_names,
        )

    def predictor(self, batch_size: int = 256) -> TorchPredictor:
        """The fake-quant torch model behind the evaluators' `predict` interface."""
        return TorchPredictor(self.model, self.input_names, self.output_names, batch_size)

    def simulated_metric(self, metric: Metric, data: Arrays) -> float:
        """The metric on the torch simulation: an estimate, to be checked against the runtime."""
        return float(metric(self.predictor(), data))


def quantize_aware_train(
    model: nn.Module,
    plan: dict[str, Precision],
    *,
    calib_batches: Iterable[Any],
    steps: int,
    train_step: TrainStep | None = None,
    loader: Iterable[Any] | None = None,
    loss_fn: LossFn | None = None,
    lr: float = 1e-4,
    example_inputs: Any = None,
    target: str | Path | TargetSpec = "cpu-x86-avx2",
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] = ("output",),
    progress: bool = True,
) -> QatResult:
    """Fine-tune a copy of `model` with fake-quant Conv2d/Linear layers in the target's int format.

    Give `train_step(model, step) -> loss` or `loader` + `loss_fn(model, batch) -> loss`.
    `calib_batches` are model inputs (a tensor or tuple each); `steps=0` is Brevitas PTQ.
    """
    if (train_step is None) == (loader is None or loss_fn is None):
        raise InputError("give either train_step, or loader and loss_fn")
    step = train_step or loader_step(loader, loss_fn)
    fmt = QatFormat.from_target(target)
    reporter = Progress(enabled=progress)
    with reporter.stage("qat-wrap", "swap Conv2d/Linear for Brevitas quant layers"):
        quantized = quantize_layers(model, plan, fmt)
    calib = list(calib_batches)
    with reporter.stage("qat-calibrate", f"calibrate activation ranges on {len(calib)} batches"):
        calibrate_activations(quantized, calib)
    losses = fine_tune(quantized, step, steps, lr, reporter)
    example = as_args(example_inputs if example_inputs is not None else calib[0])
    return QatResult(
        quantized,
        dict(plan),
        fmt,
        example,
        list(input_names),
        list(output_names),
        losses,
        float_layers(model, plan),
    )
