"""AdaRound (Nagel et al. 2020): learn, per weight, whether to round down or up so that the
layer's output on calibration data moves least, instead of rounding each weight to nearest.

The reconstruction loss ‖ΔW x‖² summed over all calibration rows equals tr(ΔW E[x xᵀ] ΔWᵀ) times
the row count, so each layer optimises against its input second-moment matrix: exact over the
whole calibration set, at a cost independent of how many samples it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from edgeq.optional import require_torch
from edgeq.quant.layer_inputs import QuantizedLayer, input_second_moments, planned_layers
from edgeq.quant.plan import QuantPlan
from edgeq.quant.primitives import QuantFormat, quantize, weight_params

torch = require_torch("AdaRound (methods.adaround)")

Progress = Callable[[str, int], None]  # (phase description, layers done)

ZETA, GAMMA = 1.1, -0.1  # rectified-sigmoid stretch: h(V) reaches exactly 0 and 1
REGULARIZATION = 1.0
"""Weight of the rounding regulariser against the output error, which is normalised to about 1/12
per weight (uniform rounding noise of one step). Tuned on Gemm/MatMul/Conv layers at 300–500
iterations: 0.01 (the paper's, for unnormalised losses and 10k+ iterations) leaves h(V) undecided,
so hard rounding came out worse than nearest; 0.3–1 cut the error to 0.35–0.85× nearest."""
WARMUP = 0.2  # fraction of iterations optimised for reconstruction alone
BETA_START, BETA_END = 20.0, 2.0
LEARNING_RATE = 1e-2


@dataclass(frozen=True)
class RoundingProblem:
    """One weight matrix [out, in] in quantization-step units, and its layer's input statistics."""

    scaled: torch.Tensor  # W / scale (float32, as QuantizeLinear divides)
    scale: torch.Tensor  # per-element scale, broadcast like W
    zero_point: torch.Tensor
    moment: torch.Tensor  # E[x xᵀ], [in, in]
    qmin: int
    qmax: int

    def output_error(self, rounding: torch.Tensor) -> torch.Tensor:
        """Normalised ‖ΔW x‖² of rounding floor(W/s) + `rounding` (values in [0, 1])."""
        levels = torch.floor(self.scaled) + rounding + self.zero_point
        delta = torch.clamp(levels, self.qmin, self.qmax) - self.zero_point - self.scaled
        delta = delta * self.scale
        energy = torch.sum((delta @ self.moment) * delta)
        return energy / (torch.mean(self.scale**2) * torch.mean(torch.diagonal(self.moment)))


def adaround_weights(
    model: onnx.ModelProto,
    plan: QuantPlan,
    calib: Mapping[str, np.ndarray],
    fmt: QuantFormat,
    *,
    iterations: int = 500,
    samples: int = 256,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Learned integer weights by initializer name: same dtype, shape and scales as round-to-nearest
    with `weight_params(w, fmt, axis)` on the plan's axis, each within ±1 of it.

    Handles Gemm, 2-D MatMul and groups=1 Conv; a weight tied to several layers learns from all of
    their inputs. A layer keeps round-to-nearest if the learned rounding is not better on the data.
    """
    layers = planned_layers(model, plan)
    moments = input_second_moments(model, layers, calib, samples=samples)
    learned: dict[str, np.ndarray] = {}
    for done, group in enumerate(_tied_groups(layers).values(), start=1):
        moment = np.mean([moments[layer.node.name] for layer in group], axis=0)
        learned[group[0].weight_name] = adaround_layer(group[0], moment, fmt, iterations)
        if progress:
            progress("adaround", done)
    return learned


def adaround_layer(
    layer: QuantizedLayer, moment: np.ndarray, fmt: QuantFormat, iterations: int
) -> np.ndarray:
    """The learned integer weight of one layer given E[x xᵀ] of its input rows."""
    scale, zero = weight_params(layer.weight, fmt, layer.axis)
    nearest = quantize(layer.weight, scale, zero, fmt, axis=layer.axis)
    problem = _rounding_problem(layer, scale, zero, moment, fmt)
    rounding = _learn_rounding(problem, iterations)
    with torch.no_grad():
        if problem.output_error(rounding) >= problem.output_error(_nearest_rounding(problem)):
            return nearest
        levels = torch.floor(problem.scaled) + rounding + problem.zero_point
        levels = torch.clamp(levels, fmt.qmin, fmt.qmax).numpy()
    return layer.from_matrix(levels).astype(fmt.numpy_dtype)


def _rounding_problem(
    layer: QuantizedLayer,
    scale: np.ndarray,
    zero: np.ndarray,
    moment: np.ndarray,
    fmt: QuantFormat,
) -> RoundingProblem:
    shape = layer.weight.shape
    scale_full = _broadcast_param(scale, shape, layer.axis).astype(np.float32)
    zero_full = _broadcast_param(zero, shape, layer.axis).astype(np.float32)
    matrix = torch.from_numpy
    return RoundingProblem(
        scaled=matrix(np.ascontiguousarray(layer.as_matrix(layer.weight / scale_full))),
        scale=matrix(np.ascontiguousarray(layer.as_matrix(scale_full))),
        zero_point=matrix(np.ascontiguousarray(layer.as_matrix(zero_full))),
        moment=matrix(moment.astype(np.float32)),
        qmin=fmt.qmin,
        qmax=fmt.qmax,
    )


def _learn_rounding(problem: RoundingProblem, iterations: int) -> torch.Tensor:
    """Optimise V of the soft rounding h(V), then round it hard (h >= 0.5 rounds up)."""
    fraction = problem.scaled - torch.floor(problem.scaled)
    v = torch.nn.Parameter(_inverse_rectified_sigmoid(fraction))
    optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
    warmup = int(WARMUP * iterations)
    for step in range(iterations):
        soft = _rectified_sigmoid(v)
        loss = problem.output_error(soft)
        if step >= warmup:
            beta = _annealed_beta(step - warmup, iterations - warmup)
            loss = loss + REGULARIZATION * torch.sum(1 - torch.abs(2 * soft - 1) ** beta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (v.detach() >= 0).to(torch.float32)


def _rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _inverse_rectified_sigmoid(fraction: torch.Tensor) -> torch.Tensor:
    """V with h(V) = fraction, so optimisation starts from the exact (unrounded) weights."""
    return -torch.log((ZETA - GAMMA) / (fraction - GAMMA) - 1)


def _annealed_beta(step: int, steps: int) -> float:
    """β decays linearly from 20 (soft values move freely) to 2 (pushed to 0 or 1)."""
    return BETA_END + (BETA_START - BETA_END) * max(0.0, 1.0 - step / max(steps, 1))


def _nearest_rounding(problem: RoundingProblem) -> torch.Tensor:
    return torch.round(problem.scaled) - torch.floor(problem.scaled)


def _broadcast_param(param: np.ndarray, shape: tuple[int, ...], axis: int | None) -> np.ndarray:
    """A per-tensor or per-axis quantization parameter broadcast to the weight's full shape."""
    param = np.asarray(param)
    if axis is None:
        return np.broadcast_to(param.reshape(()), shape)
    view = [1] * len(shape)
    view[axis] = -1
    return np.broadcast_to(param.reshape(view), shape)


def _tied_groups(layers: list[QuantizedLayer]) -> dict[str, list[QuantizedLayer]]:
    """Layers by weight initializer; a tied weight only pools layers with the same matrix layout."""
    groups: dict[str, list[QuantizedLayer]] = {}
    for layer in layers:
        group = groups.setdefault(layer.weight_name, [layer])
        first = group[0]
        same_layout = (
            layer is not first
            and layer.axis == first.axis
            and layer.as_matrix(layer.weight).shape == first.as_matrix(first.weight).shape
        )
        if same_layout:
            group.append(layer)
    return groups
