"""Candidates per runtime: what the target's runtime cannot run is left out (a warning says why), and
the precisions it alone offers (OpenVINO's bf16/f16 runs of the fp32 graph) are added."""

from __future__ import annotations

import warnings

from edgeq.backends.openvino import unconvertible, with_precision
from edgeq.backends.openvino_runner import cpu_precisions
from edgeq.errors import InputError
from edgeq.stages.candidate import Candidate
from edgeq.stages.state import CompileState


class CandidateLeftOut(UserWarning):
    """A candidate was not built: the target's runtime cannot run it, or the CPU lacks its precision."""


def for_runtime(state: CompileState, candidates: list[Candidate]) -> list[Candidate]:
    """`candidates` as the target's runtime takes them (unchanged but for OpenVINO)."""
    target = state.target
    if target.runtime != "openvino":
        return candidates
    fp32, *others = candidates
    if why := unconvertible(fp32.model):
        raise InputError(f"target {target.name}: {why}")
    kept = [fp32]
    for candidate in others:
        if why := unconvertible(candidate.model):
            message = f"{candidate.name} left out on {target.name}: {why}"
            warnings.warn(message, CandidateLeftOut, stacklevel=2)
        else:
            kept.append(candidate)
    have = cpu_precisions()
    for precision in target.openvino.precisions:
        if precision in have:
            kept.append(Candidate(precision, with_precision(fp32.model, precision)))
        else:
            why = f"{precision} left out: this CPU has no {precision} kernels"
            warnings.warn(why, CandidateLeftOut, stacklevel=2)
    return kept
