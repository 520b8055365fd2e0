"""`edgeq build-engine`'s report rewrite on a real TensorRT compile's output directory.

Building and timing an engine needs TensorRT and a GPU (those tests are marked `tensorrt`). The
rewrite itself is tested here with stand-in *numbers* measured for real on this CPU: the QDQ graph
and the fp32 reference timed and compared in ONNX Runtime, handed over as the engine's measurements.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeq.backends.artifact import Artifact
from edgeq.backends.tensorrt import tensorrt_available
from edgeq.measure.fidelity import compare_outputs
from edgeq.report.read import load_report, read_report
from edgeq.runtime.session import OrtRunner
from edgeq.stages.engine_finish import EngineMeasurements, finish_engine, rewrite_report
from tests.typed_reports import TRT_MLP, measured_latency

TRT_READY, TRT_WHY = tensorrt_available()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A copy of the compile's OUT/ (model.onnx, reference.fp32.onnx, a /1 report), its data local."""
    out = tmp_path / "out"
    shutil.copytree(TRT_MLP, out)
    data = json.loads((out / "report.json").read_text())
    data["recipe"]["calib"] = str(out / "eval.npz")
    (out / "report.json").write_text(json.dumps(data))
    return out


def stand_in_measurements(out: Path) -> EngineMeasurements:
    """Real measurements of the QDQ graph in ONNX Runtime CPU, in the engine's place."""
    data = dict(np.load(out / "eval.npz"))
    reference = OrtRunner(out / "reference.fp32.onnx").predict(data)
    outputs = compare_outputs(reference, OrtRunner(out / "model.onnx").predict(data))
    artifact = Artifact(out / "model.onnx", "onnx-qdq", [out / "model.onnx", out / "reference.fp32.onnx"])
    latency = measured_latency(out / "reference.fp32.onnx", out / "model.onnx")
    details = {"device": "ONNX Runtime CPU, standing in for the engine", "build_seconds": 0.0}
    return EngineMeasurements(artifact, outputs, None, latency, details)


def test_rewrite_replaces_the_cpu_numbers_and_writes_the_report_once(out_dir: Path) -> None:
    before = load_report(out_dir)
    assert before.latency == [] and before.decision.engine_pending and before.latency_status
    measured = stand_in_measurements(out_dir)
    after = rewrite_report(out_dir, before, measured)
    assert load_report(out_dir / "report.json") == after
    assert after.latency == measured.latency and after.latency_status is None
    assert after.outputs == measured.outputs and after.task is None
    assert not after.decision.engine_pending and after.decision.engine == "built: model.onnx"
    assert after.artifact.files == ["model.onnx", "reference.fp32.onnx"]
    assert after.size_ratio == after.artifact.bytes / before.model.bytes
    assert after.machine.gpu == measured.details["device"]
    assert after.engine["onnx_cpu_outputs"] == [
        {field: getattr(o, field) for field in vars(o)} for o in before.outputs
    ]
    assert (after.run_id, after.model, after.quantization) == (
        before.run_id,
        before.model,
        before.quantization,
    )
    page = (out_dir / "report.html").read_text()
    assert 'id="latency"' in page and "ONNX Runtime CPU, standing in for the engine" in page
    assert "engine: pending" not in page


def test_gates_are_evaluated_again_on_the_engines_numbers(out_dir: Path) -> None:
    data = json.loads((out_dir / "report.json").read_text())
    data["gates"].append({"name": "min_speedup", "limit": 1000.0, "value": None, "passed": False})
    before = read_report(data)
    assert [(g.name, g.value) for g in before.gates] == [
        ("min_speedup", None),
        ("min_cosine", before.worst_cosine),
    ]
    after = rewrite_report(out_dir, before, stand_in_measurements(out_dir))
    (speedup, cosine) = after.gates  # in the one evaluator's order
    assert cosine.value == after.worst_cosine and cosine.passed
    assert speedup.value == min(e.speedup for e in after.latency) and not speedup.passed
    assert not load_report(out_dir).passed


@pytest.mark.skipif(TRT_READY, reason="TensorRT is here: the command would build an engine")
def test_build_engine_without_tensorrt_is_bad_input(
    out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeq.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["build-engine", str(out_dir)])
    assert exit_info.value.code == 2
    assert "needs TensorRT" in capsys.readouterr().err
    assert load_report(out_dir).decision.engine_pending  # the report is left as the compile wrote it


@pytest.mark.tensorrt
@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT unavailable: {TRT_WHY}")
def test_build_engine_measures_the_engine_and_rewrites_the_report(out_dir: Path) -> None:
    report = finish_engine(out_dir, str(out_dir / "eval.npz"))
    assert (out_dir / "model.plan").is_file() and report.artifact.path == "model.plan"
    assert report.latency and all(e.speedup > 0 for e in report.latency)
    assert report.machine.gpu and report.engine["tensorrt_version"]
    assert load_report(out_dir) == report
