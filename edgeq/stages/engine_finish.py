"""Finish a TensorRT compile on a GPU machine (`edgeq build-engine OUT/`) and measure it there.

A compile on a machine without TensorRT leaves OUT/model.onnx (the TensorRT-ready QDQ graph), the
fp32 reference and a report measured in ONNX Runtime CPU; this command builds the engine and
replaces the report's artifact, fidelity, latency and machine with what the engine measured, then
evaluates the gates again (the same gates as `edgeq compile`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.backends.tensorrt import REFERENCE_NAME, build_engine
from edgeq.backends.tensorrt_config import settings_of
from edgeq.config import from_dict
from edgeq.errors import InputError
from edgeq.feeds import EXTRA
from edgeq.measure.fidelity import OutputFidelity, compare_outputs
from edgeq.measure.kinds import KindMetric, kind_metrics
from edgeq.measure.tasks import TaskResult, evaluate_task
from edgeq.recipe import Recipe, build_recipe
from edgeq.report.gates import recheck_gates
from edgeq.report.html import write_html
from edgeq.report.read import load_report
from edgeq.report.schema import Accuracy, ArtifactInfo, Report
from edgeq.runtime.machine import describe_machine
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry
from edgeq.source import load_data
from edgeq.targets import TargetSpec, load_target


@dataclass
class EngineMeasurements:
    """What the engine measured on this GPU: it replaces the report's ONNX Runtime CPU numbers.

    `details` is the engine build's record (model.plan.json: TensorRT version, device, flags, ...)
    with the engine's outputs compared against the QDQ graph in ONNX Runtime CPU."""

    artifact: Artifact
    outputs: list[OutputFidelity]
    task: TaskResult | None
    latency: list[LatencyEntry]
    details: dict[str, Any]
    metrics: list[KindMetric] = field(default_factory=list)
    """The engine's outputs by their kind's metric (what the budget gate reads)."""


def finish_engine(out_dir: Path, eval_path: str | None = None) -> Report:
    """Build the engine and an fp32 baseline engine, measure both here, rewrite the report."""
    from edgeq.backends.tensorrt_runner import TensorRTRunner, measure_engines

    report = _read_report(out_dir)
    recipe = from_dict(Recipe, report.recipe, "report recipe")
    target = load_target(recipe.target)
    qdq_path, reference_path = out_dir / "model.onnx", _reference(out_dir)
    reference_model = onnx.load(str(reference_path), load_external_data=False)
    evaluation = load_data(build_recipe(recipe, eval=eval_path), reference_model)[1]
    artifact = build_engine(qdq_path, target, out_dir)
    engine = TensorRTRunner(artifact.path)
    fp32 = OrtRunner(reference_path)
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
        dataclasses.asdict(o) for o in compare_outputs(OrtRunner(qdq_path).predict(evaluation), predicted)
    ]
    reference = fp32.predict(evaluation)
    measured = EngineMeasurements(
        artifact,
        compare_outputs(reference, predicted),
        evaluate_task(recipe, fp32, engine, evaluation),
        latency,
        details,
        kind_metrics(report.accuracy.kinds, reference, predicted, evaluation.get(EXTRA)),
    )
    return rewrite_report(out_dir, report, measured)


def rewrite_report(out_dir: Path, report: Report, measured: EngineMeasurements) -> Report:
    """`report` with the engine's artifact, fidelity, latency, machine and build details; gates
    recomputed; written once as OUT/report.json and OUT/report.html."""
    engine = measured.details | {"onnx_cpu_outputs": [dataclasses.asdict(o) for o in report.outputs]}
    info = ArtifactInfo(**measured.artifact.to_dict(out_dir))
    finished = dataclasses.replace(
        report,
        artifact=info,
        size_ratio=info.bytes / report.model.bytes,
        decision=dataclasses.replace(report.decision, engine=f"built: {info.path}", finish_later=None),
        accuracy=Accuracy(
            report.accuracy.samples, measured.outputs, measured.task, report.accuracy.kinds, measured.metrics
        ),
        latency=measured.latency,
        latency_status=None,
        machine=dataclasses.replace(describe_machine(), gpu=measured.details.get("device")),
        engine=engine,
    )
    finished.gates = recheck_gates(finished)
    finished.write(out_dir / "report.json")
    write_html(finished, out_dir / "report.html")
    return finished


def _read_report(out_dir: Path) -> Report:
    """The compile's report, read and checked like any other (a bad one: one line, exit 2)."""
    if not (out_dir / "model.onnx").is_file() or not (out_dir / "report.json").is_file():
        raise InputError(f"{out_dir} has no model.onnx/report.json: compile for a TensorRT target first")
    return load_report(out_dir / "report.json")


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
