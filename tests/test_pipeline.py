"""One pipeline of stages: refusals before any work, the target honoured, the report written once."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest

import edgeq
from edgeq import pipeline
from edgeq.errors import InputError
from edgeq.progress import Progress
from edgeq.recipe import build_recipe
from edgeq.report.read import load_report
from edgeq.stages.intake import intake
from edgeq.stages.state import CompileState
from tests.bad_inputs.cli import assert_refused, leftovers, run_edgeq
from tests.conftest import Corpus


def compile_args(corpus: Corpus, out: Path, *extra: str | Path) -> list[str | Path]:
    return ["compile", corpus.model, "--calib", corpus.calib, "-q", "-o", out, *extra]


def test_gpu_target_without_its_providers_is_refused_in_one_line(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_edgeq(*compile_args(corpus, out, "--target", "gpu-ort"), cwd=tmp_path)
    assert_refused(result, out, "gpu-ort", "CUDAExecutionProvider", "TensorrtExecutionProvider")
    assert "--allow-unmeasured" in result.stderr


def test_allow_unmeasured_writes_no_latency_and_the_speed_gate_fails_in_compile_and_report(
    corpus: Corpus, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = compile_args(corpus, out, "--target", "gpu-ort", "--allow-unmeasured", "--min-speedup", "1")
    compiled = run_edgeq(*args, cwd=tmp_path)
    assert compiled.returncode == 3, compiled.stderr
    assert "min_speedup (not measured vs 1.0)" in compiled.stderr
    report = load_report(out)
    assert report.latency == [] and report.target.name == "gpu-ort"
    assert report.latency_status.startswith("not measured on target: target gpu-ort needs")
    assert all(c.speedups == {} for c in report.decision.candidates), "no CPU speedup under a GPU target"
    assert "latency not measured" in report.decision.reason
    assert [(g.name, g.value, g.passed) for g in report.gates] == [
        ("min_speedup", None, False),
        ("budget", 1.0, True),
    ]
    assert (out / report.artifact.path).is_file()
    assert run_edgeq("report", out, "--min-speedup", "1", cwd=tmp_path).returncode == 3


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        (("--bits", "4"), ("bits 4", "gpu-tensorrt", "TensorRT")),
        (("--mode", "dynamic"), ("mode dynamic", "gpu-tensorrt", "TensorRT")),
        (("--analyze",), ("analyze", "gpu-tensorrt")),
    ],
)
def test_tensorrt_refuses_what_it_cannot_do_before_any_work(
    corpus: Corpus, tmp_path: Path, flag: tuple[str, ...], words: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    result = run_edgeq(*compile_args(corpus, out, "--target", "gpu-tensorrt", *flag), cwd=tmp_path)
    assert_refused(result, out, *words)


def test_tensorrt_compile_leaves_the_engine_inputs_and_one_pending_report(
    corpus: Corpus, tmp_path: Path
) -> None:
    from edgeq.backends.tensorrt import tensorrt_available

    if tensorrt_available()[0]:
        pytest.skip("TensorRT is here: the compile builds the engine")
    out = tmp_path / "out"
    result = run_edgeq(*compile_args(corpus, out, "--target", "gpu-tensorrt"), cwd=tmp_path)
    assert result.returncode == 2 and f"edgeq build-engine {out}/" in result.stderr
    report = load_report(out)
    assert report.decision.engine_pending and report.decision.chosen == "int8-qdq"
    assert report.latency == [] and report.latency_status.startswith("not measured on target")
    assert sorted(report.artifact.files) == ["model.onnx", "reference.fp32.onnx"]
    assert report.quantization.tensorrt_violations == [] and report.worst_cosine > 0.99


def _state(corpus: Corpus, out: Path, **overrides) -> CompileState:
    recipe = build_recipe(**{"calib": str(corpus.calib), "target": str(corpus.target), **overrides})
    return intake(str(corpus.model), recipe, out, Progress(enabled=False), runs=False)


def test_refusals_come_from_the_checks_not_from_a_stage_at_work(corpus: Corpus, tmp_path: Path) -> None:
    state = _state(corpus, tmp_path / "out", target="gpu-tensorrt", bits=4)
    with pytest.raises(InputError, match="bits 4: target gpu-tensorrt"):
        pipeline.check(pipeline.stages_for(state), state)
    state = _state(corpus, tmp_path / "out", gates={"max_drop": 1.0})
    with pytest.raises(InputError, match="max_drop needs a task"):
        pipeline.check(pipeline.stages_for(state), state)
    assert state.progress.stages == [{"name": "load", "seconds": state.progress.stages[0]["seconds"]}]


def test_max_drop_without_a_task_is_refused_before_any_work(corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_edgeq(*compile_args(corpus, out, "--target", corpus.target, "--max-drop", "1"), cwd=tmp_path)
    assert_refused(result, out, "max_drop", "--task")


def test_prequantized_model_refuses_pruning(corpus: Corpus, tmp_path: Path) -> None:
    from edgeq.passes.prepare import prepare_model
    from edgeq.quant.plan import ensure_node_names, plan_int8
    from edgeq.recipe import Recipe
    from edgeq.stages.quantize import quantize_static
    from edgeq.targets import load_target

    prepared = prepare_model(onnx.load(corpus.model))
    ensure_node_names(prepared)
    target = load_target(str(corpus.target))
    plan = plan_int8(prepared, target.quantization.int8)
    calib = dict(np.load(corpus.calib))
    qdq, _ = quantize_static(prepared, plan, Recipe(), target, calib, Progress(False))
    onnx.save(qdq, tmp_path / "given.onnx")
    out = tmp_path / "out"
    args = ["compile", tmp_path / "given.onnx", "--calib", corpus.calib, "--target", corpus.target]
    result = run_edgeq(*args, "--prune", "ifm", "-q", "-o", out, cwd=tmp_path)
    assert_refused(result, out, "prune", "arrived quantized")


def test_report_is_written_once_inside_staging_and_the_html_agrees(corpus: Corpus, tmp_path: Path) -> None:
    out, runs = tmp_path / "out", tmp_path / "runs.sqlite"
    result = edgeq.compile(
        corpus.model, out=out, target=str(corpus.target), calib=str(corpus.calib), runs=runs
    )
    written = [(out / name).stat().st_mtime_ns for name in ("report.json", "report.html", "recipe.yaml")]
    assert written == sorted(written), "report.json is not rewritten after report.html and recipe.yaml"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == result.report.to_dict()
    assert result.report.run_id in (out / "report.html").read_text()
    with sqlite3.connect(runs) as connection:
        (row,) = connection.execute("SELECT run_id, html_path FROM runs").fetchall()
    assert row == (result.report.run_id, str(out.resolve() / "report.html")), "recorded at its final path"
    assert not leftovers(out)[1:], "no staging directory left behind"


def test_a_broken_runs_store_is_a_warning_in_the_report(corpus: Corpus, tmp_path: Path) -> None:
    store = tmp_path / "not-a-store"
    store.mkdir()  # a directory: sqlite cannot open it
    out = tmp_path / "out"
    result = edgeq.compile(
        corpus.model, out=out, target=str(corpus.target), calib=str(corpus.calib), runs=store
    )
    (warning,) = [w for w in load_report(out).warnings if w.source == "runs store"]
    assert warning.count == 1 and result.report.warnings[-1] == warning


@dataclass
class Recording:
    """A stage that writes down when it is checked and run, refusing when told to."""

    name: str
    log: list[str]
    refusal: str | None = None
    ran: list[Path] = field(default_factory=list)

    def check(self, state: CompileState) -> str | None:
        self.log.append(f"check {self.name}")
        return self.refusal

    def run(self, state: CompileState) -> CompileState:
        self.log.append(f"run {self.name}")
        self.ran.append(state.staging)
        return state


def test_every_check_runs_before_any_stage_runs(corpus: Corpus, tmp_path: Path) -> None:
    log: list[str] = []
    stages = [Recording("a", log), Recording("b", log)]
    state = _state(corpus, tmp_path / "out")
    pipeline.check(stages, state)
    pipeline.run_stages(stages, state)
    assert log == ["check a", "check b", "run a", "run b"]
    log.clear()
    stages = [Recording("a", log), Recording("b", log, refusal="b cannot")]
    with pytest.raises(InputError, match="b cannot"):
        pipeline.check(stages, state)
    assert log == ["check a", "check b"]


def test_the_three_paths_share_the_report_and_record_stages() -> None:
    finish = [type(s).__name__ for s in pipeline.FINISH]
    for stages in (pipeline.CANDIDATES, pipeline.PREQUANTIZED, pipeline.TENSORRT):
        names = [type(s).__name__ for s in stages]
        assert (
            names[names.index("BuildReport") :][:4]
            == finish
            == ["BuildReport", "NoteReuse", "Record", "Write"]
        )
