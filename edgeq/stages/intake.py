"""Intake: the model (ONNX file, ModelProto or torch module), its data and the target, as a state."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from edgeq.backends.registry import backend_for
from edgeq.errors import InputError
from edgeq.frontend.hf_folder import CALIB_HINT, is_hf_folder
from edgeq.frontend.input_roles import with_roles
from edgeq.frontend.onnx_load import fits_protobuf
from edgeq.optional import require_torch
from edgeq.passes.constant_inputs import bake_constant_inputs
from edgeq.progress import Progress
from edgeq.recipe import Recipe, Task
from edgeq.runtime.machine import describe_machine, lacking_isa
from edgeq.source import load_data, load_source
from edgeq.stages.state import CompileState
from edgeq.targets import load_target


class ForeignCpu(UserWarning):
    """The CPU measuring a compile lacks instruction sets its target declares (its kernels differ)."""


def intake(
    model: Any,
    recipe: Recipe,
    out: Path,
    progress: Progress,
    *,
    example_inputs: Any = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    runs: str | Path | None | bool = None,
    calib_data: Any = None,
    eval_data: Any = None,
    caught: list[warnings.WarningMessage] | None = None,
) -> CompileState:
    """Read and check every input (bad ones are refused in one line) and what this machine lacks.

    `calib_data`/`eval_data`: the API's in-memory data (arrays, dicts, iterables), instead of files."""
    if is_hf_folder(model) and recipe.calib is None and calib_data is None:
        raise InputError(CALIB_HINT)  # before the export, which takes a while
    if recipe.methods.adaround:  # refused before any work on an install without the torch extra
        require_torch("AdaRound (methods.adaround)")
    requested = recipe
    target = load_target(recipe.target)
    backend = backend_for(target)
    if lacking := lacking_isa(target.isa):
        warnings.warn(
            f"this CPU ({describe_machine().cpu}) lacks {', '.join(lacking)}, which target {target.name} "
            "declares: the latencies measured here are this machine's, not the target's",
            ForeignCpu,
            stacklevel=2,
        )
    with progress.stage("load", "load model"):
        source = load_source(model, example_inputs, input_names, output_names, recipe.pooling)
    if not fits_protobuf(source.model):
        raise InputError(
            f"{source.name} is over protobuf's 2 GB limit: edgeq loads "
            "and checks such models, but compiling them is not supported yet"
        )
    calib, evaluation, roles = load_data(recipe, source.model, calib_data, eval_data)
    # every session on the model and its compiled forms feeds it by these roles; constants computed in
    source.model = with_roles(bake_constant_inputs(source.model, roles), roles)
    if roles.streaming and recipe.task is None:
        recipe = dataclasses.replace(recipe, task=Task("streams"))
    if not roles.plain and "tensorrt" in (target.runtime, *target.runtimes):
        raise InputError("inputs fed other than batch on axis 0 are not supported on tensorrt targets yet")
    return CompileState(
        source=source,
        recipe=recipe,
        target=target,
        backend=backend,
        calib=calib,
        evaluation=evaluation,
        out=out,
        progress=progress,
        unmeasured=backend.unavailable(target),
        runs=runs,
        caught=caught if caught is not None else [],
        requested=requested,
    )
