"""Sub-pixel lowering of ConvTranspose: exact against ORT's ConvTranspose, kept only when timed faster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from edgeq.graph import GraphIndex
from edgeq.passes.subpixel import REQUIRED_SPEEDUP, ineligible_reason, lower_conv_transposes, subpixel_rewrite

ROOT = Path(__file__).resolve().parent.parent


def conv_transpose_model(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int],
    stride: int,
    pads: tuple[int, int, int, int],
    *,
    output_padding: tuple[int, int] | None = None,
    bias: bool = True,
    group: int = 1,
    weight_input: bool = False,
    **attributes,
) -> onnx.ModelProto:
    """One ConvTranspose named "ct" on input "x" [batch, c_in, h, w] (symbolic spatial dims)."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((c_in, c_out // group, *kernel)).astype(np.float32)
    initializers = [] if weight_input else [numpy_helper.from_array(weight, "w")]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", c_in, "h", "w"])]
    if weight_input:
        inputs.append(helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, list(weight.shape)))
    if bias:
        initializers.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b"))
    if output_padding:
        attributes["output_padding"] = list(output_padding)
    node = helper.make_node(
        "ConvTranspose",
        ["x", "w", "b"] if bias else ["x", "w"],
        ["y"],
        name="ct",
        kernel_shape=list(kernel),
        strides=[stride, stride],
        pads=list(pads),
        group=group,
        **attributes,
    )
    output = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "ct", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "pads", "output_padding", "bias", "size"),
    [
        (8, 8, (4, 4), 2, (1, 1, 1, 1), None, True, (4, 4)),  # the binary AE's decoder layers
        (3, 5, (4, 4), 2, (1, 1, 1, 1), None, False, (5, 7)),
        (4, 6, (3, 3), 2, (1, 1, 1, 1), (1, 1), True, (5, 3)),  # output_padding: same size as k=4
        (4, 6, (3, 3), 2, (1, 1, 1, 1), None, True, (5, 3)),  # odd output: cropped by a Slice
        (2, 5, (2, 2), 2, (0, 0, 0, 0), None, True, (3, 6)),
        (6, 3, (5, 5), 3, (2, 2, 2, 2), None, True, (4, 5)),
        (6, 3, (5, 3), 3, (0, 1, 2, 0), (2, 1), False, (3, 4)),  # non-square kernel, asymmetric pads
        (2, 3, (2, 2), 3, (0, 0, 0, 0), None, True, (3, 3)),  # kernel < stride: some phases are bias only
        (2, 3, (3, 3), 2, (3, 2, 2, 2), None, True, (5, 6)),  # pad beyond the kernel
        (3, 2, (3, 2), 1, (0, 1, 2, 0), None, True, (4, 6)),  # stride 1: a Conv with the kernel flipped
    ],
)
def test_rewrite_equals_onnxruntime_conv_transpose(
    c_in, c_out, kernel, stride, pads, output_padding, bias, size
):
    model = conv_transpose_model(c_in, c_out, kernel, stride, pads, output_padding=output_padding, bias=bias)
    rewritten = subpixel_rewrite(model, ["ct"])
    x = np.random.default_rng(2).standard_normal((2, c_in, *size)).astype(np.float32)
    (want,), (have,) = run(model, {"x": x}), run(rewritten, {"x": x})
    assert [n.op_type for n in rewritten.graph.node][0] == "Conv"
    assert "ConvTranspose" not in [n.op_type for n in rewritten.graph.node]
    assert have.shape == want.shape
    np.testing.assert_allclose(have, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"group": 2}, "grouped (group != 1)"),
        ({"output_shape": [8, 8]}, "output_shape attribute (pads implied by shape)"),
        ({"weight_input": True}, "weight is not a constant"),
    ],
)
def test_ineligible_conv_transposes_are_left_alone_with_a_reason(change, reason):
    model = conv_transpose_model(4, 4, (4, 4), 2, (1, 1, 1, 1), **change)
    node = model.graph.node[0]
    assert ineligible_reason(model, node, GraphIndex(model.graph)) == reason
    lowered, decisions = lower_conv_transposes(model, [1], threads=1)
    assert decisions == [{"node": "ct", "kept": False, "reason": reason, "speedups": {}}]
    assert lowered.graph.node[0] == node


def test_model_without_conv_transpose_is_returned_as_is():
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "relu",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        )
    )
    assert lower_conv_transposes(model, [1, 32], threads=1) == (model, [])


@pytest.fixture(scope="module")
def binary_ae() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    model = onnx.shape_inference.infer_shapes(onnx.load(ROOT / "examples" / "binary_ae" / "model.onnx"))
    image = np.load(ROOT / "calib" / "binary_ae.npz")["image"][:256].astype(np.float32)
    return model, {"image": image}


def test_binary_ae_rewritten_computes_the_same_codes_and_reconstructions(binary_ae):
    model, feeds = binary_ae
    names = [n.name for n in model.graph.node if n.op_type == "ConvTranspose"]
    rewritten = subpixel_rewrite(model, names)
    assert [o.name for o in rewritten.graph.output] == [o.name for o in model.graph.output]
    assert {f"{name}_subpixel" for name in names} <= {n.name for n in rewritten.graph.node}
    want = dict(zip([o.name for o in model.graph.output], run(model, feeds), strict=True))
    have = dict(zip([o.name for o in rewritten.graph.output], run(rewritten, feeds), strict=True))
    np.testing.assert_array_equal(have["bits"], want["bits"])
    np.testing.assert_allclose(have["recon"], want["recon"], rtol=0, atol=1e-5)


def test_binary_ae_keeps_exactly_the_rewrites_it_timed_faster(binary_ae):
    model, _ = binary_ae
    lowered, decisions = lower_conv_transposes(model, [1, 4], threads=1)
    assert [d["node"] for d in decisions] == [
        n.name for n in model.graph.node if n.op_type == "ConvTranspose"
    ]
    names = {n.name for n in lowered.graph.node}
    for decision in decisions:
        assert set(decision["speedups"]) == {1, 4}
        assert decision["kept"] == all(s > REQUIRED_SPEEDUP for s in decision["speedups"].values())
        assert (f"{decision['node']}_subpixel" in names) == decision["kept"]
        assert (decision["node"] in names) != decision["kept"]
