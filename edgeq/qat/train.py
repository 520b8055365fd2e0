"""Calibrate Brevitas activation quantizers, then fine-tune the fake-quant model with a progress bar."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from edgeq.progress import Progress
from edgeq.qat.deps import require_brevitas

TrainStep = Callable[[nn.Module, int], torch.Tensor]
LossFn = Callable[[nn.Module, Any], torch.Tensor]


def as_args(inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """One model input or a sequence of them, as the positional arguments of a call."""
    return (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)


def loader_step(loader: Iterable[Any], loss_fn: LossFn) -> TrainStep:
    """A train step that draws the next batch (cycling the loader) and returns its loss."""
    batches = itertools.cycle(loader)
    return lambda model, _step: loss_fn(model, next(batches))


def calibrate_activations(model: nn.Module, batches: Iterable[Any]) -> int:
    """Set every activation quantizer's range from a few batches (Brevitas calibration mode).

    Starting QAT from calibrated ranges rather than defaults is what makes a few hundred steps enough.
    """
    require_brevitas()
    from brevitas.graph.calibrate import calibration_mode

    model.eval()
    count = 0
    with torch.no_grad(), calibration_mode(model):
        for inputs in batches:
            model(*as_args(inputs))
            count += 1
    return count


def fine_tune(
    model: nn.Module, train_step: TrainStep, steps: int, lr: float, reporter: Progress
) -> list[float]:
    """Adam with cosine decay over weights and learned activation scales; returns per-step losses."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    losses: list[float] = []
    model.train()
    with reporter.bar("quantization-aware training", steps) as advance:
        for step in range(steps):
            loss = train_step(model, step)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            advance()
    model.eval()
    if losses:
        reporter.note(f"QAT loss {losses[0]:.4f} -> {losses[-1]:.4f} over {steps} steps")
    return losses
