"""Models as users bring them from outside the project, through the real `edgeq compile`.

Each compiles with the default recipe (exit 0, an artifact within the default budget), or is refused
in one line that names what edgeq does not support (exit 2); never an internal error. The models are
small stand-ins for the examples/wild corpus, generated in seconds (tests/wild/models.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET
from tests.wild import models


def compile_ok(model: Path, calib: Path, tmp_path: Path) -> dict:
    """`edgeq compile` with the default recipe: exit 0 and no error line; returns report.json."""
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", FAST_TARGET, "-o", out, "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert onnx.load(str(out / "model.onnx")).graph.node
    return report


def candidates(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["decision"]["candidates"]}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_residual_mlp_without_bias_lowers_every_int8_mode(tmp_path, dynamo):
    """ORT fuses torchscript's `x + x @ W` into a Gemm whose C input is the activation x; dynamic INT8
    used to read that C as a constant bias and crash (dynamo's export keeps the Add apart)."""
    report = compile_ok(*models.residual_mlp(tmp_path, dynamo=dynamo), tmp_path)
    found = candidates(report)
    for name in ("int8-static", "int8-dynamic", "int8-dynamic-per-tensor"):
        assert found[name]["within_budget"], found[name]


def test_fixed_batch_of_one_is_calibrated_evaluated_and_timed_at_that_batch(tmp_path):
    """No dynamic axes (most ONNX files in the wild): every session call runs batch 1, and the report
    says latency was measured at batch 1 instead of the target's 1 and 8."""
    report = compile_ok(*models.residual_mlp(tmp_path, dynamic_batch=False), tmp_path)
    for candidate in report["decision"]["candidates"]:
        assert set(candidate["speedups"]) == {"1"}, candidate
    assert candidates(report)["int8-static"]["within_budget"]
    messages = [w["message"] for w in report["warnings"] if w["source"] == "FixedBatchWarning"]
    assert messages and "fix the batch at 1" in messages[0] and "1, 8" in messages[0]


def test_fixed_batch_cnn_matches_the_dynamic_export(tmp_path):
    """The same CNN with and without a batch axis: identical static-INT8 fidelity (same calibration)."""
    fixed_dir, free_dir = tmp_path / "fixed", tmp_path / "free"
    fixed_dir.mkdir(), free_dir.mkdir()
    fixed = compile_ok(*models.cnn(fixed_dir, 17, dynamic_batch=False), fixed_dir)
    free = compile_ok(*models.cnn(free_dir, 17), free_dir)
    assert candidates(fixed)["int8-static"]["worst_cosine"] == pytest.approx(
        candidates(free)["int8-static"]["worst_cosine"], abs=1e-6
    )


@pytest.mark.parametrize("opset", [11, 12])
def test_old_opset_cnn_gets_per_channel_int8_after_an_opset_upgrade(tmp_path, opset):
    """Per-channel DequantizeLinear needs opset 13: edgeq upgrades the model instead of writing Q/DQ
    that ONNX Runtime refuses to load (and blaming the user's model for it)."""
    report = compile_ok(*models.cnn(tmp_path, opset), tmp_path)
    found = candidates(report)
    assert found["int8-static"]["within_budget"], found["int8-static"]
    assert found["int8-static-per-tensor"]["within_budget"]
    messages = [w["message"] for w in report["warnings"] if w["source"] == "OpsetWarning"]
    assert messages == [f"opset {opset} upgraded to 13 for per-channel Q/DQ"]


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrent_tagger_on_integer_ids_compiles(tmp_path, cell):
    report = compile_ok(*models.tagger(tmp_path, cell), tmp_path)
    assert candidates(report)["fp32"]["within_budget"]


def test_scripted_loop_and_if_compile(tmp_path):
    report = compile_ok(*models.control_flow(tmp_path), tmp_path)
    assert any(c["within_budget"] for c in report["decision"]["candidates"] if c["name"] != "fp32")


def test_string_input_passes_through_unquantized(tmp_path):
    """ai.onnx.ml LabelEncoder on a string tensor: the strings are fed as strings, the float layers
    after the lookup are quantized."""
    report = compile_ok(*models.string_input(tmp_path), tmp_path)
    assert any(c["within_budget"] for c in report["decision"]["candidates"] if c["name"] != "fp32")


def test_model_without_inputs_is_refused_in_one_line(tmp_path):
    model, calib = models.no_inputs(tmp_path)
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", FAST_TARGET, "-o", out, "-q", cwd=tmp_path
    )
    assert_refused(result, out, "no inputs")


def test_scalar_input_with_one_value_in_the_data_compiles_as_a_constant(tmp_path):
    """silero-vad's `sr`: a scalar input the data holds one value for is fed as that constant."""
    report = compile_ok(*models.scalar_input(tmp_path), tmp_path)
    feeding = {i["name"]: (i["how"], i["source"]) for i in report["feeding"]["inputs"]}
    assert feeding["rate"] == ("constant 2.0, computed into the artifact", "inferred")


def test_out_of_range_gather_ids_are_the_data_s_problem_in_one_line(tmp_path):
    model, calib = models.gather_out_of_range(tmp_path)
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", FAST_TARGET, "-o", out, "-q", cwd=tmp_path
    )
    assert_refused(result, out, "cannot run the model on calibration samples", "Gather", "out of data bounds")
