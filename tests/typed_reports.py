"""An edgeq.report/2 report built from its typed sections, with every optional section present.

Its latency comes from a real interleaved ONNX Runtime timing of two small models, so the numbers
are measured ones; the rest are the values a pipeline would fill in.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.layers import LayerDamage
from edgeq.measure.tasks import TaskMetric, TaskResult
from edgeq.passes.ifm.summary import GroupSummary, LayerSummary, PruningSummary
from edgeq.quant.mixed import LayerGroup
from edgeq.quant.plan import NodeDecision
from edgeq.report.gates import recheck_gates
from edgeq.report.schema import (
    Accuracy,
    ArtifactInfo,
    Calibration,
    CandidateSummary,
    Decision,
    Gate,
    Machine,
    ModelInfo,
    PlanComparison,
    PlanStep,
    PrecisionPlanReport,
    Pruning,
    QatCheck,
    Quantization,
    Report,
    ReportWarning,
    StageTime,
    TargetInfo,
)
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry, LatencyStats, measure_interleaved

TRT_MLP = Path(__file__).parent / "fixtures" / "trt_mlp"


def measured_latency(fp32: Path, compiled: Path, batches: tuple[int, ...] = (1, 8)) -> list[LatencyEntry]:
    """Two ONNX files timed interleaved in ONNX Runtime on this CPU, one entry per batch size."""
    runners = {"fp32": OrtRunner(fp32, threads=1), "compiled": OrtRunner(compiled, threads=1)}
    data = dict(np.load(TRT_MLP / "eval.npz"))
    entries = []
    for batch in batches:
        stats = measure_interleaved(runners, data, batch=batch, warmup=2, rounds=3, seconds_per_round=0.03)
        entries.append(LatencyEntry(batch, 1, 3, stats["fp32"], stats["compiled"]))
    return entries


def full_report(latency: list[LatencyEntry] | None = None) -> Report:
    """A CPU report with pruning, sensitivity, a precision plan, QAT check, gates and warnings."""
    if latency is None:
        latency = measured_latency(TRT_MLP / "reference.fp32.onnx", TRT_MLP / "model.onnx")
    task = TaskResult(
        "mrl-retrieval",
        [TaskMetric("1nn_acc@8", 62.5, 61.9, unit="%"), TaskMetric("1nn_acc@16", 78.0, 77.9, unit="%")],
        ["1nn_acc@8", "1nn_acc@16"],
        {"samples": 256},
    )
    outputs = [OutputFidelity("embedding", 0.9991, 0.042, 27.9, 0.12, None, 0.998)]
    groups = [
        LayerGroup(
            "fc1", "Gemm", "fc1.weight", ["fc1"], 4096, ["int4", "int8", "fp32"], {"int4": 0.6, "int8": 0.0}
        ),
        LayerGroup(
            "fc2", "Gemm", "fc2.weight", ["fc2"], 640, ["int4", "int8", "fp32"], {"int4": 0.1, "int8": 0.0}
        ),
    ]
    report = Report(
        run_id="20261201T101500-abc123",
        created="2026-12-01T10:15:00+00:00",
        edgeq_version="0.2.0",
        model=ModelInfo("mlp", "d747984b" * 8, 88756, "/models/mlp.onnx"),
        target=TargetInfo("cpu-x86-avx2", "onnxruntime", ["CPUExecutionProvider"]),
        recipe={"target": "cpu-x86-avx2", "bits": 4, "gates": {"max_drop": 1.0, "min_speedup": 1.0}},
        artifact=ArtifactInfo("model.onnx", 26891, "onnx", ["model.onnx", "model.ort"]),
        size_ratio=26891 / 88756,
        decision=Decision(
            "int4-planned",
            "smallest candidate within the accuracy budget",
            [
                CandidateSummary("int8-static", {1: 1.9, 8: 2.4}, 0.9999, 0.0, 0.25, True),
                CandidateSummary("int4-planned", {1: 1.2, 8: 1.5}, 0.9991, 0.6, 0.16, True),
                CandidateSummary("fp32", {1: 1.0, 8: 1.0}, 1.0, 0.0, 1.0, True, "kept for reference"),
            ],
            {1: 0.03, 8: 0.02},
        ),
        accuracy=Accuracy(128, outputs, task),
        latency=latency,
        quantization=Quantization(
            "int4-planned",
            [NodeDecision("fc1", "Gemm", "int4"), NodeDecision("fc2", "Gemm", "int8", "kept at 8 bits")],
            [LayerDamage("fc1", "Gemm", "fc1_out", "int4", 41.0, 30.5)],
            Calibration("mse", 64),
            {"int4": 1, "int8": 1},
            qat=QatCheck("1nn_acc@8", 62.0, 61.9, -0.1, 0.5, False),
        ),
        stages=[StageTime("load", 0.02), StageTime("measure", 3.1)],
        machine=Machine(
            "AMD EPYC", "x86_64", ["avx2"], 2, "Linux", "3.11.9", {"onnxruntime": "1.20.1", "torch": None}
        ),
        pruning=Pruning(
            "ifm",
            PruningSummary(
                0.25,
                0.2,
                False,
                3,
                [LayerSummary("fc1", "Gemm", 128, 96, 32, 32, 4224, 3168, 4096, 3072)],
                [GroupSummary(128, 96, 32, False, ["fc1_out"], ["fc1.weight", "fc2.weight"])],
                4864,
                3808,
                4736,
                3712,
            ),
            Accuracy(128, [OutputFidelity("embedding", 0.9995, 0.03, 30.1, 0.08, None, 0.999)], task),
        ),
        sensitivity=groups,
        precision_plan=PrecisionPlanReport(
            groups,
            {"fc1": "int4", "fc2": "int8"},
            2688.0,
            [PlanStep({"fc1": "int4", "fc2": "int8"}, 0.6, None)],
            [
                PlanComparison("uniform-int8", 0.25, 0.0, 0.9999, 2.4, True),
                PlanComparison("planned", 0.16, 0.6, 0.9991, 1.5, True),
            ],
        ),
        gates=[Gate("max_drop", 1.0, None, False), Gate("min_speedup", 1.0, None, False)],
        warnings=[ReportWarning("UserWarning", "<b>not markup</b>", 3)],
    )
    report.gates = recheck_gates(report)
    return report


def _scaled(stats: LatencyStats, factor: float) -> LatencyStats:
    return dataclasses.replace(
        stats,
        p50_ms=stats.p50_ms * factor,
        samples_ms=[v * factor for v in stats.samples_ms],
        round_p50_ms=[v * factor for v in stats.round_p50_ms],
    )


def rerun(report: Report, run_id: str, slower: float, cosine_lost: float, points_lost: float) -> Report:
    """`report` as if compiled again a day later: the compiled model `slower` times its latency,
    `cosine_lost` off every output's cosine, `points_lost` off every task metric."""
    latency = [dataclasses.replace(e, compiled=_scaled(e.compiled, slower)) for e in report.latency]
    outputs = [
        dataclasses.replace(o, cosine=o.cosine - cosine_lost) if o.cosine is not None else o
        for o in report.outputs
    ]
    task = report.task and dataclasses.replace(
        report.task,
        metrics=[dataclasses.replace(m, compiled=m.compiled - points_lost) for m in report.task.metrics],
    )
    accuracy = dataclasses.replace(report.accuracy, outputs=outputs, task=task)
    later = report.created.replace("2026-12-01", "2026-12-02")
    return dataclasses.replace(report, run_id=run_id, created=later, latency=latency, accuracy=accuracy)
