"""`edgeq.compile`: the one code path behind the CLI and the Python API."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import yaml

from edgeq.backends.tensorrt import finish_later_hint, tensorrt_available
from edgeq.errors import InputError
from edgeq.frontend.onnx_load import fits_protobuf
from edgeq.outdir import check_output_path, staged_output
from edgeq.pipeline import CompileContext, run
from edgeq.progress import Progress
from edgeq.recipe import Recipe, build_recipe
from edgeq.report.html import write_html
from edgeq.report.schema import Report, load_report
from edgeq.source import load_data, load_source
from edgeq.store.runs import StoreError, record_run
from edgeq.targets import TargetSpec, load_target


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

    `overrides` are recipe fields (target=, calib=, calibration={...}, task={...}, gates={...}...).
    Every compile is recorded in the runs store (`runs`: a path, None for $EDGEQ_RUNS or the user
    data dir, False to skip).
    """
    recipe = build_recipe(recipe, **overrides)
    out = Path(out)
    check_output_path(out, force)
    target = load_target(recipe.target)
    reporter = Progress(enabled=progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with reporter.stage("load", "load model"):
            source = load_source(model, example_inputs, input_names, output_names)
        if not fits_protobuf(source.model):
            raise InputError(
                f"{source.name} is over protobuf's 2 GB limit: edgeq loads "
                "and checks such models, but compiling them is not supported yet"
            )
        calib, evaluation = load_data(recipe, source.model)
        with staged_output(out, force) as staging:
            report = run(CompileContext(source, recipe, target, calib, evaluation, staging, reporter))
            report.warnings = _summarize_warnings(caught)
            report.write(staging / "report.json")
            write_html(report.to_dict(), staging / "report.html")
            (staging / "recipe.yaml").write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    if os.environ.get("EDGEQ_DEBUG"):
        for caught_warning in caught:
            warnings.showwarning(
                caught_warning.message,
                caught_warning.category,
                caught_warning.filename,
                caught_warning.lineno,
            )
    if target.runtime == "tensorrt":
        report = _finish_tensorrt(out, target)
    if runs is not False:
        _record(report, out, runs, reporter)
    return CompileResult(report, out / report.artifact["path"], out)


def _record(report: Report, out: Path, runs: str | Path | None, reporter: Progress) -> None:
    """Add the run to the runs store; a broken store costs the record, never the compile."""
    try:
        record_run(report, out, Path(runs) if runs else None)
    except StoreError as exc:
        report.warnings.append({"source": "runs store", "message": str(exc), "count": 1})
        report.write(out / "report.json")
        reporter.note(f"runs store not updated: {exc}")


def _finish_tensorrt(out: Path, target: TargetSpec) -> Report:
    """Build the engine now where TensorRT and a GPU exist; else leave the exact command to run."""
    from edgeq.backends.tensorrt_finish import finish_engine

    ready, why = tensorrt_available()
    if ready:
        return finish_engine(out)
    report = load_report(out / "report.json")
    report.decision["engine"] = f"pending: {why}"
    report.decision["finish_later"] = finish_later_hint(out, target=target)
    report.write(out / "report.json")
    return report


def _summarize_warnings(caught: list[warnings.WarningMessage]) -> list[dict[str, Any]]:
    """Library warnings grouped and counted for the report instead of flooding the terminal."""
    counts = Counter((w.category.__name__, str(w.message).splitlines()[0][:300]) for w in caught)
    return [
        {"source": category, "message": message, "count": n}
        for (category, message), n in counts.most_common()
    ]
