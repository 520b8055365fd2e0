"""The graph-editing layer: edits keep graphs valid, ordered and wired (checked by ORT, not by mocks)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeq.graph.edit import GraphEditor, with_initializers

FLOAT = TensorProto.FLOAT


def _model(nodes, outputs=("z",), initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", FLOAT, [2, 3])],
        [helper.make_tensor_value_info(name, FLOAT, [None, None]) for name in outputs],
        list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


X = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]], np.float32)


def test_insert_after_keeps_topological_order_and_rewires_only_the_others():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu"), helper.make_node("Neg", ["y"], ["z"])]
    )
    editor = GraphEditor(model)
    y = editor.value("y")
    scale = editor.initializer("two", np.float32(2.0))
    double = editor.node("Mul", [y, scale], ["y_doubled"], name="double")
    editor.insert_after(y, [double])
    editor.reroute(y, double.outputs[0], keep=[double])
    edited = editor.finish()
    assert [n.name for n in edited.graph.node][:2] == ["relu", "double"]
    assert list(edited.graph.node[2].input) == ["y_doubled"]
    np.testing.assert_array_equal(_run(edited, X)[0], -2 * np.maximum(X, 0))


def test_replace_rewires_every_reader_graph_outputs_and_subgraph_captures():
    branch = helper.make_graph(
        [helper.make_node("Identity", ["y"], ["branch_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", FLOAT, [None, None])],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["cond"], ["z"], name="if", then_branch=branch, else_branch=branch),
    ]
    model = _model(nodes, outputs=("y", "z"))
    editor = GraphEditor(model)
    relu = editor.nodes["relu"]
    new = editor.node("Abs", relu.inputs, ["y"], name="abs")
    editor.replace(relu, [new])
    edited = editor.finish()
    assert [o.name for o in edited.graph.output] == ["y", "z"]
    assert [n.op_type for n in edited.graph.node] == ["Abs", "Constant", "If"]
    inner = edited.graph.node[2].attribute[0].g.node[0]
    assert list(inner.input) == ["y"]
    y, z = _run(edited, X)
    np.testing.assert_array_equal(y, np.abs(X))
    np.testing.assert_array_equal(z, np.abs(X))
    assert editor.value("y") is new.outputs[0]


def test_interpose_hands_the_name_and_readers_to_the_new_node():
    weight = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), helper.make_node("Relu", ["y"], ["z"])]
    editor = GraphEditor(_model(nodes, outputs=("y", "z"), initializers=[weight]))
    y = editor.value("y")
    add = editor.node("Add", [y, editor.initializer("b", np.full(4, 1.0, np.float32))], name="mm_bias")
    editor.interpose(y, add, "y_before_bias")
    edited = editor.finish()
    assert [(n.name, list(n.output)) for n in edited.graph.node][:2] == [
        ("mm", ["y_before_bias"]),
        ("mm_bias", ["y"]),
    ]
    y_out, z = _run(edited, X)
    np.testing.assert_array_equal(y_out, X @ np.ones((3, 4), np.float32) + 1)
    np.testing.assert_array_equal(z, np.maximum(y_out, 0))


def test_insert_first_keeps_the_order_of_earlier_calls():
    editor = GraphEditor(_model([helper.make_node("Relu", ["x"], ["z"], name="relu")]))
    first = editor.node("Identity", [editor.value("x")], ["a"], name="first")
    second = editor.node("Identity", [editor.value("x")], ["b"], name="second")
    editor.insert_first([first])
    editor.insert_first([second])
    assert [n.name for n in editor.graph] == ["first", "second", "relu"]


def test_finish_drops_only_initializers_nothing_reads():
    branch = helper.make_graph(
        [helper.make_node("Add", ["x", "captured"], ["branch_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", FLOAT, [None, None])],
    )
    constants = [
        numpy_helper.from_array(np.full(3, v, np.float32), n) for n, v in [("captured", 1), ("dead", 2)]
    ]
    cond = numpy_helper.from_array(np.array(False), "cond")
    nodes = [helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch)]
    edited = GraphEditor(_model(nodes, initializers=[*constants, cond])).finish()
    assert {t.name for t in edited.graph.initializer} == {"captured", "cond"}
    np.testing.assert_array_equal(_run(edited, X)[0], X + 1)


def test_bypass_removes_a_node_and_its_readers_read_the_replacement():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu"), helper.make_node("Neg", ["y"], ["z"])]
    editor = GraphEditor(_model(nodes))
    editor.bypass(editor.nodes["relu"], editor.value("x"))
    edited = editor.finish()
    assert [n.op_type for n in edited.graph.node] == ["Neg"]
    np.testing.assert_array_equal(_run(edited, X)[0], -X)


def test_with_initializers_overwrites_and_adds_on_a_copy():
    weight = numpy_helper.from_array(np.ones(3, np.float32), "w")
    model = _model([helper.make_node("Mul", ["x", "w"], ["z"])], initializers=[weight])
    updated = with_initializers(model, {"w": np.full(3, 2.0, np.float32)})
    np.testing.assert_array_equal(_run(updated, X)[0], 2 * X)
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), np.ones(3))
    assert not updated.graph.value_info  # no value_info per initializer
