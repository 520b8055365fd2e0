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
from edgeq.cache import Cache
from edgeq.config import from_dict
from edgeq.errors import InputError
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
    cache: bool | str | Path = True,
    **overrides: Any,
) -> CompileResult:
    """Compile a model (ONNX path, ModelProto, or torch.nn.Module + example_inputs) for a target.

    `overrides` are recipe fields (target=, calib=, calibration={...}, task={...}, gates={...},
    allow_unmeasured=True, inputs={name: {batch_axis/constant/state_from}}...). `calib=` and `eval=`
    also take data in memory: an array (one-input models), a dict {input name: array}, an iterable of
    batches (feed dicts, arrays or tensors, a torch DataLoader; joined along each input's batch axis),
    or, for a model with a carried state, a list of streams (each a list of per-frame feed dicts; a flat
    list of feeds is one stream); `progress=True` shows the stages and bars on stderr as the CLI does. Every
    compile is recorded in the runs store (`runs`: a path, None for $EDGEQ_RUNS or the user data dir,
    False to skip). `cache`: reuse and store stage results in $EDGEQ_CACHE (or this folder; False:
    compute everything, docs/cache.md).
    """
    out, runs = _output_and_store(out, runs)
    in_memory = {key: overrides.pop(key) for key in ("calib", "eval") if not is_file_data(overrides.get(key))}
    paths = {key: os.fspath(value) for key, value in overrides.items() if isinstance(value, os.PathLike)}
    recipe = build_recipe(_base_recipe(recipe), **{**overrides, **paths})
    recipe = dataclasses.replace(recipe, **dict.fromkeys(in_memory))
    inputs = [p for p in (model, recipe.calib, recipe.eval, recipe.reference) if isinstance(p, str | Path)]
    check_output_path(out, force, inputs)
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
        state = pipeline.run(state, force, inputs, _cache(cache))
    if os.environ.get("EDGEQ_DEBUG"):
        for caught_warning in caught:
            warnings.showwarning(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    return CompileResult(state.report, out / state.report.artifact.path, out)


def _cache(cache: Any) -> Cache | None:
    if cache is False:
        return None
    return Cache(None if cache is True else cache)


def _output_and_store(out: Any, runs: Any) -> tuple[Path, Path | None | bool]:
    """`out` as a path and `runs` as a store path, None (the default store) or False (none)."""
    if not isinstance(out, str | os.PathLike) or not str(out):
        raise InputError(f"out= must be an output directory path, got {type(out).__name__} {out!r:.40}")
    if runs is True or runs is None or runs is False:
        return Path(out), None if runs is True else runs
    if not isinstance(runs, str | os.PathLike) or not str(runs):
        raise InputError(f"runs= must be a runs-store file path, None or False, got {type(runs).__name__}")
    return Path(out), Path(runs)


def _base_recipe(recipe: Any) -> Recipe | None:
    """A Recipe, None, or a mapping of recipe fields (checked like a recipe file)."""
    if recipe is None or isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return from_dict(Recipe, recipe, "recipe=")
    raise InputError(
        f"recipe= must be an edgeq.Recipe, a dict of recipe fields or None, got {type(recipe).__name__}; "
        "read a file with edgeq.load_recipe(path)"
    )
