"""`edgeq inspect` tells a user what their model's calibration data must hold, read from the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.bad_inputs.cli import assert_refused, run_edgeq

ROOT = Path(__file__).resolve().parent.parent


def _two_input_model(path: Path) -> Path:
    """token ids (int64, symbolic batch and sequence) and a float feature vector → one float output."""
    table = numpy_helper.from_array(np.ones((50, 4), np.float32), "table")
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "weight")
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
        helper.make_node("ReduceMean", ["embedded"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Add", ["pooled", "features"], ["mixed"]),
        helper.make_node("MatMul", ["mixed", "weight"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 3])],
        [table, weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_inspect_prints_inputs_outputs_ops_size_and_the_calibration_arrays(tmp_path: Path) -> None:
    model = _two_input_model(tmp_path / "m.onnx")
    result = run_edgeq("inspect", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "input_ids  int64    [batch, sequence]" in text
    assert "features   float32  [batch, 4]" in text
    assert "score      float32  [batch, 3]" in text
    assert "score      class-scores: [N, C] named 'score' (logits)" in text  # what a compile judges
    assert "opset    17" in text and "4 nodes: Gather 1, ReduceMean 1, Add 1, MatMul 1" in text
    assert "212 parameters, 848 B of weights" in text
    assert "input_ids=int64 [N, sequence], features=float32 [N, 4]" in text
    assert "edgeq calib SOURCE --model m.onnx" in text


def test_inspect_json_is_the_same_description(tmp_path: Path) -> None:
    model = _two_input_model(tmp_path / "m.onnx")
    result = run_edgeq("inspect", model, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert [(i["name"], i["dtype"], i["shape"]) for i in info["inputs"]] == [
        ("input_ids", "int64", ["batch", "sequence"]),
        ("features", "float32", ["batch", 4]),
    ]
    assert info["outputs"] == [
        {
            "name": "score",
            "dtype": "float32",
            "shape": ["batch", 3],
            "kind": "class-scores",
            "kind_reason": "[N, C] named 'score' (logits)",
        }
    ]
    assert info["ops"] == {"Gather": 1, "ReduceMean": 1, "Add": 1, "MatMul": 1}
    assert (info["parameters"], info["parameter_bytes"], info["opset"]) == (212, 848, 17)
    assert info["quantized"] is False and info["file_bytes"] == model.stat().st_size


def test_inspect_a_shipped_model() -> None:
    result = run_edgeq("inspect", "examples/mrl_encoder/model.onnx", "--json", cwd=ROOT)
    info = json.loads(result.stdout)
    assert info["inputs"][0] == {
        "name": "image",
        "dtype": "float32",
        "shape": ["batch", 1, 8, 8],
        "kind": None,
        "kind_reason": None,
    }
    assert info["parameters"] == 707_840 and info["ops"]["Conv"] == 2


def test_inspect_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.onnx").write_text("not a model")
    assert_refused(run_edgeq("inspect", tmp_path / "notes.onnx", cwd=tmp_path), None, "not an ONNX model")
    assert_refused(run_edgeq("inspect", tmp_path / "gone.onnx", cwd=tmp_path), None, "does not exist")
