"""Input roles through the CLI and the API: a scalar constant, a batch axis other than 0, a state
carried on axis 1 — declared in the recipe, inferred from the graph, refused in one line when wrong.

`vad_shape` is silero-vad's interface in miniature (an `If` on the scalar sample rate, state
[2, batch, 16] carried to `stateN`), so CI covers it without the wild-model corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

import edgeq
from edgeq.frontend.input_roles import resolve_roles
from edgeq.recipe import InputSpec
from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET
from tests.stream_models import export_sequence_first

WIDTH = 16


def vad_shape(path: Path) -> Path:
    """x [B, 64], state [2, B, 16], sr int64 [] -> output [B, 1] (a probability), stateN [2, B, 16];
    `If(sr == 16000)` picks the projection, as silero-vad picks its 16 kHz or 8 kHz network."""
    rng = np.random.default_rng(0)

    def branch(name: str, seed: int) -> onnx.GraphProto:
        weight = numpy_helper.from_array(
            np.random.default_rng(seed).standard_normal((64, WIDTH)).astype(np.float32) / 8, f"w_{name}"
        )
        out = helper.make_tensor_value_info(f"h_{name}", TensorProto.FLOAT, None)
        return helper.make_graph(
            [helper.make_node("MatMul", ["x", f"w_{name}"], [f"h_{name}"])], name, [], [out], [weight]
        )

    nodes = [
        helper.make_node("Constant", [], ["rate"], value=numpy_helper.from_array(np.array(16000, np.int64))),
        helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
        helper.make_node("If", ["is16k"], ["h"], then_branch=branch("k16", 1), else_branch=branch("k8", 2)),
        helper.make_node("Unsqueeze", ["h", "zero"], ["h0"]),
        helper.make_node("MatMul", ["state", "recurrent"], ["r"]),
        helper.make_node("Add", ["r", "h0"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["stateN"]),
        helper.make_node("ReduceMean", ["stateN", "zero"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "head"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["output"]),
    ]
    weights = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) / 4).astype(np.float32), "recurrent"),
        numpy_helper.from_array(rng.standard_normal((WIDTH, 1)).astype(np.float32), "head"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", WIDTH]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, []),
    ]
    outputs = [
        helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1]),
        helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", WIDTH]),
    ]
    graph = helper.make_graph(nodes, "vad_shape", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def frames(count: int, seed: int = 0) -> np.ndarray:
    """`count` consecutive 64-sample frames of a tone that comes and goes (one stream)."""
    t = np.arange(count * 64) / 16000
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 0.05, t.shape)
    return (envelope * np.sin(2 * np.pi * 440 * t) + noise).astype(np.float32).reshape(count, 64)


def compile_cli(tmp_path: Path, model: Path, calib: dict, inputs: dict | None = None, *extra: str):
    np.savez(tmp_path / "calib.npz", **calib)
    recipe = {"target": FAST_TARGET, "calib": "calib.npz", **({"inputs": inputs} if inputs else {})}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--recipe", tmp_path / "recipe.yaml", "-o", out, "-q", *extra, cwd=tmp_path
    )
    return result, out


def test_roles_are_inferred_from_the_vad_shaped_graph_and_the_data(tmp_path: Path) -> None:
    model = onnx.load(str(vad_shape(tmp_path / "vad.onnx")))
    roles = resolve_roles(model, {}, {"x": frames(4), "sr": np.array(16000)})
    assert (roles.inputs["x"].batch_axis, roles.inputs["x"].state_from) == (0, None)
    assert (roles.inputs["state"].batch_axis, roles.inputs["state"].state_from) == (1, "stateN")
    assert roles.inputs["sr"].constant.tolist() == 16000 and roles.inputs["sr"].how == "inferred"
    assert roles.output_axes == {"output": 0, "stateN": 1}
    varying = resolve_roles(model, {}, {"sr": np.array([8000, 16000])}).inputs["sr"]
    assert (varying.constant, varying.batch_axis) == (None, None)  # fed one sample per call
    declared = resolve_roles(model, {"x": InputSpec(batch_axis="none"), "state": InputSpec(batch_axis=1)})
    assert declared.inputs["x"].batch_axis is None and declared.inputs["x"].how == "declared"
    assert not declared.streaming, "a role declared without state_from carries no state"


def test_the_vad_shape_compiles_from_its_npz_alone_with_the_if_folded(tmp_path: Path) -> None:
    """No roles declared: a silero-style npz (frames on axis 0, zero state, scalar sr) is one stream."""
    model = vad_shape(tmp_path / "vad.onnx")
    calib = {"x": frames(48), "state": np.zeros((2, 48, WIDTH), np.float32), "sr": np.array(16000)}
    result, out = compile_cli(tmp_path, model, calib)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert {i["name"]: i["source"] for i in report["feeding"]["inputs"]} == {
        "x": "default",
        "state": "inferred",
        "sr": "inferred",
    }
    assert report["accuracy"]["task"]["task"] == "streams"
    assert report["accuracy"]["task"]["details"]["frames"] == 24  # one stream of 48, halves: 24 each
    quantized = sum(n for kind, n in report["quantization"]["counts"].items() if kind != "fp32")
    assert quantized == 3, "If(sr == 16000) folded: its MatMul is quantized with the other two"
    session = onnx.load(str(out / "model.onnx"))
    assert [i.name for i in session.graph.input] == ["x", "state", "sr"], "the artifact's interface is kept"


def test_the_vad_shape_takes_a_flat_list_of_feed_dicts_from_the_api(tmp_path: Path) -> None:
    """One feed dict per frame, as a user calls the model: a flat list is one stream."""
    model = vad_shape(tmp_path / "vad.onnx")
    zeros = np.zeros((2, 1, WIDTH), np.float32)
    feeds = [{"x": frame[None], "state": zeros, "sr": np.array(16000)} for frame in frames(40)]
    result = edgeq.compile(
        model,
        out=tmp_path / "out",
        target=FAST_TARGET,
        calib=feeds,
        inputs={"state": {"state_from": "stateN"}, "sr": {"constant": np.array(16000)}},
    )
    written = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert (
        written["inputs"]["sr"]["constant"] == 16000 and written["inputs"]["state"]["state_from"] == "stateN"
    )
    how = {i.name: i.how for i in result.report.feeding.inputs}
    assert how["sr"].startswith("constant 16000") and "batch axis 1" in how["state"]
    assert result.report.task.details["streams"] == 1 and result.report.task.details["frames"] == 20


def test_a_batch_axis_of_1_is_declared_and_fed_from_the_cli_and_the_api(tmp_path: Path) -> None:
    """x [T, batch, 8]: samples lie on axis 1 in the file, as the model takes them."""
    model = export_sequence_first(tmp_path / "seq.onnx")
    x = np.random.default_rng(0).standard_normal((6, 40, 8)).astype(np.float32)
    result, out = compile_cli(tmp_path / "", model, {"x": x}, {"x": {"batch_axis": 1}})
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["feeding"]["inputs"] == [{"name": "x", "how": "batch axis 1", "source": "declared"}]
    assert report["accuracy"]["samples"] == 20 and report["accuracy"]["outputs"][0]["cosine"] > 0.99
    feeds = [{"x": x[:, i : i + 4]} for i in range(0, 40, 4)]  # batches of 4 along axis 1
    api = edgeq.compile(model, out=tmp_path / "api", target=FAST_TARGET, calib=feeds)
    assert api.report.feeding.inputs[0].how == "batch axis 1"  # inferred: axis 0 fixed, axis 1 "batch"
    assert api.report.accuracy.samples == 20


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ({"rate": {"constant": 1}}, ["no input 'rate'", "x, state, sr"]),
        ({"state": {"state_from": "hidden"}}, ["state_from names no output 'hidden'", "output, stateN"]),
        ({"state": {"state_from": "output"}}, ["cannot take output 'output'", "same dtype and shape"]),
        ({"sr": {"constant": [16000, 8000]}}, ["sr.constant has shape [2]", "int64 []"]),
        ({"state": {"batch_axis": 0}}, ["state.batch_axis 0", "fixed at 2"]),
        ({"x": {"batch_axis": 3}}, ["x.batch_axis 3 is outside its 2 axes"]),
    ],
)
def test_wrong_roles_are_refused_in_one_line(tmp_path: Path, inputs: dict, words: list[str]) -> None:
    model = vad_shape(tmp_path / "vad.onnx")
    result, out = compile_cli(tmp_path, model, {"x": frames(8), "sr": np.array(16000)}, inputs)
    assert_refused(result, out, *words)


def test_inspect_shows_the_inferred_roles(tmp_path: Path) -> None:
    model = vad_shape(tmp_path / "vad.onnx")
    result = run_edgeq("inspect", model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "state carried from output 'stateN', starting at zeros; batch axis 1" in result.stdout
    assert "sr      scalar: a constant if the data holds one value" in result.stdout
    as_json = json.loads(run_edgeq("inspect", model, "--json", cwd=tmp_path).stdout)
    assert as_json["roles"]["x"] == "batch axis 0"


def test_a_scalar_that_varies_per_sample_is_fed_one_sample_per_call(tmp_path: Path) -> None:
    """silero's `sr` given per sample with different values: no constant, no batch axis."""
    from tests.wild import models

    model, _ = models.scalar_input(tmp_path)
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    rate = np.tile(np.array([1.0, 2.0], np.float32), 8)
    result, out = compile_cli(tmp_path, model, {"x": x, "rate": rate})
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert {i["name"]: i["how"] for i in report["feeding"]["inputs"]}["rate"] == "no batch axis"
    assert report["feeding"]["latency"] == "one call per sample (an input has no batch axis)"
    assert [entry["batch"] for entry in report["latency"]] == [1]
    assert any("latency measured per call" in w["message"] for w in report["warnings"])
    assert report["accuracy"]["samples"] == 8 and report["accuracy"]["outputs"][0]["cosine"] > 0.99
