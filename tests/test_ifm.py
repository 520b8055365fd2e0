"""IFM on real exported models: planted duplicates merge exactly, everything else stays put."""

from __future__ import annotations

import io
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import numpy_helper
from rich.console import Console
from torch import nn

from edgeq.passes.ifm import merge_features
from edgeq.progress import Progress


def export(module: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """fp32 ONNX with a dynamic batch axis, the way the frontend hands models to the passes."""
    buffer = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        example,
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )
    return onnx.load_from_string(buffer.getvalue())


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def assert_same_outputs(original: onnx.ModelProto, pruned: onnx.ModelProto, x: np.ndarray):
    expected, actual = run(original, x), run(pruned, x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def assert_valid(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)


def plant(
    producers: list[tuple[torch.Tensor, torch.Tensor | None]], copies: dict[int, tuple[int, float]]
) -> None:
    """Make channel j a copy of channel i scaled by c>0, in every producer's rows and bias."""
    with torch.no_grad():
        for weight, bias in producers:
            for target, (source, factor) in copies.items():
                weight[target] = factor * weight[source]
                if bias is not None:
                    bias[target] = factor * bias[source]


def width(summary, node_name: str) -> int:
    return next(layer.channels_after for layer in summary.layers if layer.node == node_name)


def gemm_names(model: onnx.ModelProto) -> list[str]:
    return [node.name for node in model.graph.node if node.op_type in ("Gemm", "MatMul", "Conv")]


def mlp(activation: nn.Module, hidden: int = 32, inputs: int = 12) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), activation, nn.Linear(hidden, 5))


X_MLP = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
# Wider than the hidden layers, so that near-duplicates may merge (narrower groups are overcomplete).
X_WIDE = np.random.default_rng(12).standard_normal((64, 48)).astype(np.float32)
PLANTED = {5: (1, 1.0), 9: (1, 1.0), 20: (3, 1.0), 30: (7, 2.5), 31: (8, 0.3)}


def test_mlp_exact_and_scaled_duplicates_merge_exactly():
    torch.manual_seed(0)
    model = mlp(nn.ReLU())
    plant([(model[0].weight, model[0].bias)], PLANTED)
    original = export(model, torch.randn(2, 12))
    pruned, summary = merge_features(original, threshold=0.0)
    assert_valid(pruned)
    assert_same_outputs(original, pruned, X_MLP)
    first = gemm_names(original)[0]
    assert width(summary, first) == 32 - len(PLANTED)
    assert summary.parameters_after == summary.parameters_before - len(PLANTED) * (12 + 1 + 5)
    assert summary.flops_after < summary.flops_before
    assert summary.to_dict()["channels_merged"] == len(PLANTED)


def test_leaky_relu_with_matmul_bias_and_3d_input():
    torch.manual_seed(1)
    model = mlp(nn.LeakyReLU(0.1))
    plant([(model[0].weight, model[0].bias)], {4: (0, 3.0), 6: (2, 1.0)})
    original = export(model, torch.randn(2, 3, 12))
    assert {node.op_type for node in original.graph.node} >= {"MatMul", "Add"}
    pruned, summary = merge_features(original, threshold=0.0)
    assert_valid(pruned)
    assert summary.channels_merged == 2
    x = np.random.default_rng(1).standard_normal((4, 3, 12)).astype(np.float32)
    expected, actual = run(original, x), run(pruned, x)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


class ResidualMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(10, 24)
        self.inner = nn.Linear(24, 40)
        self.back = nn.Linear(40, 24)
        self.head = nn.Linear(24, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.back(torch.relu(self.inner(h))))
        return self.head(h)


def test_residual_add_joins_producers_into_one_group():
    torch.manual_seed(2)
    model = ResidualMLP()
    stream_copies = {11: (2, 1.0), 17: (4, 1.7)}
    plant([(model.stem.weight, model.stem.bias), (model.back.weight, model.back.bias)], stream_copies)
    plant([(model.inner.weight, model.inner.bias)], {33: (0, 0.5)})
    original = export(model, torch.randn(2, 10))
    pruned, summary = merge_features(original, threshold=0.0)
    assert_valid(pruned)
    x = np.random.default_rng(2).standard_normal((32, 10)).astype(np.float32)
    assert_same_outputs(original, pruned, x)
    stem, inner, back, _ = gemm_names(original)
    assert (width(summary, stem), width(summary, back), width(summary, inner)) == (22, 22, 39)
    residual = next(group for group in summary.groups if group.channels_before == 24)
    assert set(residual.weights) >= {"stem.weight", "stem.bias", "back.weight", "inner.weight"}


def test_residual_duplicate_in_one_producer_only_is_not_merged():
    torch.manual_seed(3)
    model = ResidualMLP()
    plant([(model.stem.weight, model.stem.bias)], {11: (2, 1.0)})
    original = export(model, torch.randn(2, 10))
    _, summary = merge_features(original, threshold=0.0)
    assert summary.channels_merged == 0


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@pytest.mark.parametrize("dynamic_spatial", [False, True])
def test_cnn_filters_merge_through_pooling_and_flatten(dynamic_spatial: bool):
    torch.manual_seed(4)
    model = SmallCNN()
    plant([(model.conv1.weight, model.conv1.bias)], {3: (0, 1.0), 12: (5, 2.0)})
    plant([(model.conv2.weight, model.conv2.bias)], {20: (1, 0.7)})
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "h", 3: "w"} if dynamic_spatial else {0: "batch"}
    torch.onnx.export(
        model.eval(),
        torch.randn(2, 1, 8, 8),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": axes, "y": {0: "batch"}},
    )
    original = onnx.load_from_string(buffer.getvalue())
    pruned, summary = merge_features(original, threshold=0.0)
    assert_valid(pruned)
    x = np.random.default_rng(4).standard_normal((8, 1, 8, 8)).astype(np.float32)
    assert_same_outputs(original, pruned, x)
    conv1, conv2, _ = gemm_names(original)
    assert (width(summary, conv1), width(summary, conv2)) == (14, 23)
    conv_layers = [layer for layer in summary.layers if layer.op_type == "Conv"]
    if dynamic_spatial:
        assert all(layer.flops_before is None for layer in conv_layers)
        assert conv1 in summary.flops_unknown_layers
    else:
        assert conv_layers[0].flops_before == 2 * 64 * 16 * 9
        assert conv_layers[0].flops_after == 2 * 64 * 14 * 9


def test_gelu_merges_exact_duplicates_only():
    torch.manual_seed(5)
    model = mlp(nn.GELU(), inputs=48)
    plant([(model[0].weight, model[0].bias)], {5: (1, 1.0), 9: (2, 1.0), 30: (7, 2.0)})
    with torch.no_grad():
        model[0].weight[20] = model[0].weight[3] + 1e-3
        model[0].bias[20] = model[0].bias[3]
    original = export(model, torch.randn(2, 48))
    pruned, summary = merge_features(original, threshold=0.5)
    assert_valid(pruned)
    assert_same_outputs(original, pruned, X_WIDE)
    assert summary.channels_merged == 2  # the scaled copy is a different feature under GELU
    assert summary.groups[0].exact_only
    assert "approximate" in summary.groups[0].exact_only_because

    _, loose = merge_features(original, threshold=0.5, approximate=True)
    assert loose.channels_merged > 2


def test_silu_is_treated_like_gelu():
    torch.manual_seed(6)
    model = mlp(nn.SiLU())
    plant([(model[0].weight, model[0].bias)], {5: (1, 1.0), 30: (7, 2.0)})
    original = export(model, torch.randn(2, 12))
    pruned, summary = merge_features(original, threshold=0.5)
    assert_same_outputs(original, pruned, X_MLP)
    assert summary.channels_merged == 1


def test_graph_output_and_protected_channels_are_untouched():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8))
    plant([(model[0].weight, model[0].bias)], {5: (1, 1.0)})
    plant([(model[2].weight, model[2].bias)], {6: (0, 1.0)})
    original = export(model, torch.randn(2, 12))
    _, summary = merge_features(original, threshold=0.0)
    assert summary.channels_merged == 1  # the output layer's duplicate stays: it is a graph output
    assert any("graph output" in (g.left_alone_because or "") for g in summary.groups)

    hidden = next(node.output[0] for node in original.graph.node if node.op_type == "Relu")
    _, protected = merge_features(original, threshold=0.0, protected=[hidden])
    assert protected.channels_merged == 0


class ConcatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Linear(12, 8), nn.Linear(12, 8)
        self.mixed = nn.Linear(12, 8)
        self.head = nn.Linear(16, 3)
        self.tail = nn.Linear(8, 3)

    def forward(self, x):
        joined = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        mixed = torch.softmax(self.mixed(x), dim=1)
        return self.head(joined) + self.tail(mixed)


def test_concat_and_unknown_ops_leave_groups_alone():
    torch.manual_seed(8)
    model = ConcatNet()
    for layer in (model.left, model.right, model.mixed):
        plant([(layer.weight, layer.bias)], {5: (1, 1.0)})
    original = export(model, torch.randn(2, 12))
    pruned, summary = merge_features(original, threshold=0.0)
    assert summary.channels_merged == 0
    reasons = " ".join(group.left_alone_because or "" for group in summary.groups)
    assert "Concat" in reasons and "Softmax" in reasons
    assert_same_outputs(original, pruned, X_MLP)


def test_threshold_merges_near_duplicates_and_max_ratio_caps():
    torch.manual_seed(9)
    model = mlp(nn.ReLU(), hidden=40, inputs=48)
    original = export(model, torch.randn(2, 48))
    _, none = merge_features(original, threshold=0.0)
    _, some = merge_features(original, threshold=0.3, max_ratio=0.9)
    _, capped = merge_features(original, threshold=1.0, max_ratio=0.25)
    assert none.channels_merged == 0
    assert some.channels_merged > 0
    assert capped.channels_merged == 10  # 25% of 40


def test_overcomplete_group_merges_identical_channels_only():
    torch.manual_seed(13)
    narrow = mlp(nn.ReLU(), hidden=32, inputs=12)  # 32 neurons reading 12 inputs each
    plant([(narrow[0].weight, narrow[0].bias)], PLANTED)
    original = export(narrow, torch.randn(2, 12))
    pruned, summary = merge_features(original, threshold=0.9, max_ratio=0.9)
    assert summary.channels_merged == len(PLANTED)
    assert "overcomplete" in summary.groups[0].exact_only_because
    assert_same_outputs(original, pruned, X_MLP)

    wide = mlp(nn.ReLU(), hidden=32, inputs=48)
    plant([(wide[0].weight, wide[0].bias)], PLANTED)
    _, loose = merge_features(export(wide, torch.randn(2, 48)), threshold=0.9, max_ratio=0.9)
    assert loose.channels_merged > len(PLANTED)
    assert loose.groups[0].exact_only_because is None


def first_layer_weight(model: onnx.ModelProto) -> np.ndarray:
    node = next(node for node in model.graph.node if node.op_type == "Gemm")
    tensor = next(t for t in model.graph.initializer if t.name == node.input[1])
    return numpy_helper.to_array(tensor)


def test_distance_does_not_depend_on_either_sides_overall_scale():
    torch.manual_seed(14)
    model = mlp(nn.ReLU(), hidden=32, inputs=48)
    reference, merged = merge_features(export(model, torch.randn(2, 48)), threshold=0.3)
    with torch.no_grad():
        model[2].weight *= 100.0  # the outgoing side alone would otherwise decide every merge
    scaled, scaled_merged = merge_features(export(model, torch.randn(2, 48)), threshold=0.3)
    assert 0 < scaled_merged.channels_merged == merged.channels_merged
    np.testing.assert_allclose(
        first_layer_weight(scaled), first_layer_weight(reference), rtol=1e-6
    )  # the same pairs merged


def test_progress_is_one_bar_and_a_summary_line_not_a_line_per_pass():
    torch.manual_seed(10)
    model = mlp(nn.ReLU())
    plant([(model[0].weight, model[0].bias)], PLANTED)
    shown = io.StringIO()
    progress = Progress(console=Console(file=shown, force_terminal=True, width=120))
    _, summary = merge_features(export(model, torch.randn(2, 12)), threshold=0.0, progress=progress)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", shown.getvalue())  # the terminal's colour codes
    assert summary.passes == 1 and "IFM pass" not in text  # every identical set merges in one pass
    assert "IFM: merging channel pairs" in text, "the passes advance one bar"
    (line,) = [line for line in text.splitlines() if "IFM: merged" in line]
    assert f"merged {len(PLANTED)} channels ({len(PLANTED)} identical, 0 by similarity) in 1 pass," in line


@settings(max_examples=8, deadline=None)
@given(st.dictionaries(st.integers(8, 23), st.tuples(st.integers(0, 7), st.floats(0.1, 10.0)), max_size=10))
def test_any_planted_duplicate_set_merges_exactly(copies):
    torch.manual_seed(11)
    model = mlp(nn.ReLU(), hidden=24)
    plant([(model[0].weight, model[0].bias)], copies)
    original = export(model, torch.randn(2, 12))
    pruned, summary = merge_features(original, threshold=0.0, max_ratio=1.0)
    assert summary.channels_merged == len(copies)
    assert_same_outputs(original, pruned, X_MLP)


def test_identical_sets_merge_whole_and_uncapped_even_through_gelu():
    torch.manual_seed(15)
    model = mlp(nn.GELU(), hidden=24, inputs=48)
    copies = {copy: (copy % 4, 1.0) for copy in range(4, 16)}  # four sets of four identical neurons
    plant([(model[0].weight, model[0].bias)], copies)
    original = export(model, torch.randn(2, 48))
    pruned, summary = merge_features(original, threshold=0.5, max_ratio=0.01)
    assert summary.channels_merged == summary.channels_lossless == len(copies)
    assert summary.groups[0].similar == 0 and summary.passes == 1
    assert_same_outputs(original, pruned, X_WIDE)
