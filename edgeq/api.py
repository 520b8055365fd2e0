"""`edgeq.compile`: the one code path behind the CLI and the Python API."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from edgeq import pipeline
from edgeq.feeds import is_file_data
from edgeq.outdir import check_output_path
from edgeq.progress import Progress
from edgeq.recipe import Recipe, build_recipe
from edgeq.report.schema import Report
from edgeq.stages.intake import intake


@dataclass
class CompileResult:
    """What a compile hands back: the typed report, the artifact and the output directory."""

    report: Report
    artifact: Path
    out_dir: Path

    @property
    def passed(self) -> bool:
        return self.report.passed


def compile(  # noqa: A001 - the verb users expect: edgeq.compile(...)
    model: str | Path | onnx.ModelProto | Any,
    *,
    out: str | Path,
    example_inputs: Any = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    recipe: Recipe | None = None,
    force: bool = False,
    progress: bool = False,
    runs: str | Path | None | bool = None,
    **overrides: Any,
) -> CompileResult:
    """Compile a model (ONNX path, ModelProto, or torch.nn.Module + example_inputs) for a target.

    `overrides` are recipe fields (target=, calib=, calibration={...}, task={...}, gates={...},
    allow_unmeasured=True...). `calib=` and `eval=` also take data in memory: an array (one-input
    models), a dict {input name: array}, or an iterable of batches (feed dicts, arrays or tensors, a
    torch DataLoader); `progress=True` shows the stages and bars on stderr as the CLI does. Every
    compile is recorded in the runs store (`runs`: a path, None for $EDGEQ_RUNS or the user data dir,
    False to skip).
    """
    in_memory = {key: overrides.pop(key) for key in ("calib", "eval") if not is_file_data(overrides.get(key))}
    paths = {key: os.fspath(value) for key, value in overrides.items() if isinstance(value, os.PathLike)}
    recipe = dataclasses.replace(build_recipe(recipe, **{**overrides, **paths}), **dict.fromkeys(in_memory))
    out = Path(out)
    check_output_path(out, force)
    shown = Progress(enabled=progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = intake(
            model,
            recipe,
            out,
            shown,
            example_inputs=example_inputs,
            input_names=input_names,
            output_names=output_names,
            runs=runs,
            calib_data=in_memory.get("calib"),
            eval_data=in_memory.get("eval"),
            caught=caught,
        )
        state = pipeline.run(state, force)
    if os.environ.get("EDGEQ_DEBUG"):
        for caught_warning in caught:
            warnings.showwarning(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    return CompileResult(state.report, out / state.report.artifact.path, out)
