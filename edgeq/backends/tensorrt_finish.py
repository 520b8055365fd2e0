"""`edgeq build-engine OUT/`: finish a TensorRT compile on a GPU machine and measure it there.

A compile on a machine without TensorRT leaves OUT/model.onnx (the TensorRT-ready QDQ graph), the
fp32 reference and a report measured in ONNX Runtime CPU; this command builds the engine and
replaces the report's fidelity and latency with numbers measured on the engine itself.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import click
import onnx

from edgeq.backends.tensorrt import NEEDS_TENSORRT, REFERENCE_NAME, build_engine, tensorrt_available
from edgeq.backends.tensorrt_config import settings_of
from edgeq.config import from_dict
from edgeq.errors import GateError, InputError
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.machine import describe_machine
from edgeq.measure.tasks import evaluate_task
from edgeq.pipeline import evaluate_gates
from edgeq.recipe import Recipe, build_recipe
from edgeq.report.html import write_html
from edgeq.report.schema import Report
from edgeq.runtime.session import OrtRunner
from edgeq.source import load_data
from edgeq.targets import TargetSpec, load_target


@click.command("build-engine")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--eval",
    "eval_path",
    type=click.Path(dir_okay=False),
    help="Held-out .npz (default: the compile's evaluation data).",
)
def build_engine_command(out_dir: Path, eval_path: str | None) -> None:
    """Build OUT/model.plan with TensorRT, measure it on this GPU and update OUT/report.json."""
    ready, why = tensorrt_available()
    if not ready:
        raise InputError(f"{NEEDS_TENSORRT}: {why}")
    report = finish_engine(out_dir, eval_path)
    failed = [g for g in report.gates if not g.passed]
    click.echo(f"wrote {out_dir / 'model.plan'} and updated {out_dir / 'report.json'}", err=True)
    if failed:
        names = ", ".join(f"{g.name} ({g.value:.4g} vs {g.limit})" for g in failed)
        raise GateError(f"gate failed on the engine: {names}; report updated in {out_dir}")


def finish_engine(out_dir: Path, eval_path: str | None = None) -> Report:
    """Build the engine and an fp32 baseline engine, measure both here, rewrite the report."""
    from edgeq.backends.tensorrt_runner import TensorRTRunner, measure_engines

    data = _read_report(out_dir)
    recipe = from_dict(Recipe, data["recipe"], "report recipe")
    target = load_target(recipe.target)
    qdq_path, reference_path = out_dir / "model.onnx", _reference(out_dir)
    reference_model = onnx.load(str(reference_path), load_external_data=False)
    evaluation = load_data(build_recipe(recipe, eval=eval_path), reference_model)[1]
    artifact = build_engine(qdq_path, target, out_dir)
    engine = TensorRTRunner(artifact.path)
    fp32 = OrtRunner(reference_path)
    reference = fp32.predict(evaluation)
    predicted = engine.predict(evaluation)
    with tempfile.TemporaryDirectory() as scratch:
        baseline = TensorRTRunner(
            build_engine(reference_path, _fp32_target(target), Path(scratch), stem="reference.fp32").path
        )
    settings = target.latency
    latency = [
        measure_engines(
            baseline,
            engine,
            evaluation,
            batch=batch,
            warmup=settings.warmup,
            rounds=settings.rounds,
            seconds_per_round=settings.seconds_per_round,
        )
        for batch in _batches(engine, settings.batch_sizes)
    ]
    details = json.loads((out_dir / "model.plan.json").read_text())
    details["engine_vs_onnx_cpu"] = [
        vars(o) for o in compare_outputs(OrtRunner(qdq_path).predict(evaluation), predicted)
    ]
    details["onnx_cpu_outputs"] = data["accuracy"]["outputs"]
    data["artifact"] = artifact.to_dict(out_dir)
    data["size_ratio"] = artifact.bytes / data["model"]["bytes"]
    data["accuracy"]["outputs"] = [vars(o) for o in compare_outputs(reference, predicted)]
    task = evaluate_task(recipe, fp32, engine, evaluation)
    data["accuracy"]["task"] = task.to_dict() if task else None
    data["latency"] = [dataclasses.asdict(e) | {"speedup": e.speedup} for e in latency]
    data["machine"] = describe_machine() | {"gpu": details["device"]}
    data["tensorrt"] = details
    report = Report.from_dict(data)
    report.gates = evaluate_gates(report, recipe)
    data["gates"] = [dataclasses.asdict(g) for g in report.gates]
    (out_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    write_html(data, out_dir / "report.html")
    return report


def _read_report(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "report.json"
    if not (out_dir / "model.onnx").is_file() or not path.is_file():
        raise InputError(f"{out_dir} has no model.onnx/report.json: compile for a TensorRT target first")
    return json.loads(path.read_text())


def _reference(out_dir: Path) -> Path:
    """The fp32 model the compile measured against: the baseline engine and fidelity need it."""
    path = out_dir / REFERENCE_NAME
    if not path.is_file():
        raise InputError(f"{path} is missing: recompile with a TensorRT target to keep it")
    return path


def _fp32_target(target: TargetSpec) -> TargetSpec:
    """The baseline engine: same profile and workspace, no reduced precision, on the GPU."""
    settings = dataclasses.replace(settings_of(target), fp16=False, dla_core=None)
    return dataclasses.replace(target, precision="int8", tensorrt=settings)


def _batches(engine: Any, wanted: list[int]) -> list[int]:
    fixed = next(iter(engine.inputs.values())).shape[0]
    return [fixed] if fixed > 0 else [b for b in wanted if b <= engine.batch_size] or [engine.batch_size]
