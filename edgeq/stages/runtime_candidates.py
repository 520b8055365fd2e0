"""Candidates per runtime: what a runtime cannot run is left out (a warning says why), the precisions
only OpenVINO offers (bf16/f16 runs of the fp32 graph) are added, and a target with several runtimes
gets each runtime's candidates, all measured against the first runtime's fp32."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from edgeq.backends.openvino import convert, unconvertible, with_precision
from edgeq.backends.openvino_runner import cpu_precisions
from edgeq.backends.registry import for_runtime as tag_runtime
from edgeq.errors import InputError
from edgeq.graph import save_model
from edgeq.stages.base import Stage
from edgeq.stages.candidate import Candidate
from edgeq.stages.state import CompileState
from edgeq.targets import TargetSpec

OPENVINO = "openvino-"  # the name prefix of OpenVINO's candidates beside another runtime's


class CandidateLeftOut(UserWarning):
    """A candidate was not built: the target's runtime cannot run it, or the CPU lacks its precision."""


def for_runtime(state: CompileState, candidates: list[Candidate]) -> list[Candidate]:
    """`candidates` as the target's runtime(s) take them (unchanged for ONNX Runtime alone)."""
    target = state.target
    if len(target.runtimes) > 1:
        extra = _openvino(target, candidates, required=False)
        tagged = [Candidate(OPENVINO + c.name, tag_runtime(c.model, "openvino"), c.plan) for c in extra]
        return candidates + tagged
    if target.runtime == "openvino":
        return _openvino(target, candidates, required=True)
    return candidates


def _openvino(target: TargetSpec, candidates: list[Candidate], required: bool) -> list[Candidate]:
    """The candidates OpenVINO can run, plus its reduced precisions the CPU has. `required`: the
    target runs nothing else, so an fp32 model it cannot convert is refused (else left out)."""
    fp32, *others = candidates
    if why := unconvertible(fp32.model) or (None if required else _conversion_error(fp32)):
        if required:
            raise InputError(f"target {target.name}: {why}")
        _left_out(f"OpenVINO candidates left out: {why}")
        return []
    kept = [fp32]
    for candidate in others:
        if why := unconvertible(candidate.model):
            _left_out(f"{candidate.name} left out on OpenVINO: {why}")
        else:
            kept.append(candidate)
    have = cpu_precisions()
    for precision in target.openvino.precisions:
        if precision in have:
            kept.append(Candidate(precision, with_precision(fp32.model, precision)))
        else:
            _left_out(f"{precision} left out: this CPU has no {precision} kernels")
    return kept


def _conversion_error(fp32: Candidate) -> str | None:
    """Why OpenVINO cannot convert the fp32 model (tried once), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            convert(save_model(fp32.model, Path(tmp) / "model.onnx"))
        except InputError as exc:
            return str(exc)
    return None


def _left_out(message: str) -> None:
    warnings.warn(message, CandidateLeftOut, stacklevel=3)


class BestPerRuntime(Stage):
    """With several runtimes, the reason also names each runtime's fastest candidate within budget."""

    name = "best-per-runtime"

    def run(self, state: CompileState) -> CompileState:
        if len(state.target.runtimes) < 2 or not state.measures_latency:
            return state
        best = []
        for runtime in state.target.runtimes:
            own = [c for c in state.candidates if c.name.startswith(OPENVINO) == (runtime == "openvino")]
            within = [c for c in own if c.budget_problem(state.recipe) is None] or own
            if within:
                top = max(within, key=lambda c: c.mean_speedup)
                best.append(f"{runtime} {top.name} {top.mean_speedup:.2f}x")
        fp32 = f"{state.target.runtime} fp32"
        state.reason += f"; fastest within budget per runtime, vs {fp32}: {', '.join(best)}"
        return state
