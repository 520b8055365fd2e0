"""Output kinds and their metrics: pure-function properties, recognition from real graphs, and the
budget each kind is judged by, through the real CLI and API on small exported models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from torch import nn

import edgeq
from edgeq.cli import main
from edgeq.frontend.torch_export import export_torch
from edgeq.measure.budget import budget_problem, coarse_budgets
from edgeq.measure.kinds import (
    OutputKind,
    bit_agreement,
    class_rows,
    iou,
    kind_metrics,
    neighbour_recall,
    recognise,
    top_k_agreement,
)
from edgeq.recipe import Budget
from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET

# --- metric properties ---------------------------------------------------------------------

embeddings = st.integers(12, 40).flatmap(
    lambda n: st.integers(0, 2**31 - 1).map(lambda seed: np.random.default_rng(seed).standard_normal((n, 16)))
)


@settings(max_examples=30, deadline=None)
@given(embeddings, st.floats(0.1, 10.0))
def test_recall_is_one_for_identical_and_positively_scaled_embeddings(e: np.ndarray, scale: float) -> None:
    assert neighbour_recall(e, e, 10) == 1.0
    scaled = e * np.linspace(scale, 2 * scale, len(e))[:, None]  # cosine neighbours ignore row norms
    assert neighbour_recall(e, scaled, 10) == 1.0


@settings(max_examples=30, deadline=None)
@given(embeddings)
def test_recall_drops_when_the_neighbours_are_shuffled(e: np.ndarray) -> None:
    shuffled = e[np.roll(np.arange(len(e)), 1)]  # every sample gets another sample's embedding
    assert neighbour_recall(e, shuffled, 10) < 1.0
    assert 0.0 <= neighbour_recall(e, shuffled, 10) <= 1.0


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 50), st.integers(3, 20), st.integers(0, 2**31 - 1))
def test_top1_agreement_is_computed_per_sample(n: int, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, classes))
    assert top_k_agreement(scores, scores, 1) == 1.0
    flipped = scores.copy()
    flipped[0, np.argmax(scores[0])] = scores[0].min() - 1.0  # one sample's label changes
    assert top_k_agreement(scores, flipped, 1) == pytest.approx(1 - 1 / n)
    assert top_k_agreement(scores, flipped, classes) == 1.0  # still among all classes


def test_a_classifier_that_gives_every_sample_one_class_is_judged_by_its_scores_too() -> None:
    """Top-1 agreement of a model that always answers class 0 passes any artifact: the cosine must hold."""
    rng = np.random.default_rng(0)
    fp32 = rng.standard_normal((16, 5)) * 1e-3
    fp32[:, 0] += 1.0
    broken = np.abs(rng.standard_normal((16, 5))) * 1e-3
    broken[:, 0] += 10.0 * rng.standard_normal(16) ** 2 + 1.0  # same argmax, scores unrelated
    kind = OutputKind("y", "class-scores", "Softmax", -1)
    metrics = kind_metrics([kind], {"y": fp32}, {"y": broken})
    assert {m.metric for m in metrics} >= {"top-1 agreement", "cosine"}
    assert "cosine" in budget_problem(Budget(), metrics, None, None)
    assert budget_problem(Budget(), kind_metrics([kind], {"y": fp32}, {"y": fp32}), None, None) is None
    varied = rng.standard_normal((16, 5))
    assert "cosine" not in {m.metric for m in kind_metrics([kind], {"y": varied}, {"y": varied})}


def test_class_maps_count_every_pixel_and_bits_count_every_position() -> None:
    maps = np.random.default_rng(0).standard_normal((2, 5, 3, 4))  # [N, C, H, W]
    assert class_rows(maps, 1).shape == (24, 5)
    changed = maps.copy()
    changed[0, :, 0, 0] = changed[0, ::-1, 0, 0] + 10 * np.eye(5)[0]  # one pixel's class moves
    assert top_k_agreement(class_rows(maps, 1), class_rows(changed, 1), 1) >= 1 - 1 / 24
    bits = np.array([1, 1, 0, 0], dtype=bool)
    assert bit_agreement(bits, bits) == 1.0 and iou(bits, bits) == 1.0
    assert bit_agreement(bits, ~bits) == 0.0 and iou(bits, np.array([1, 0, 0, 0], dtype=bool)) == 0.5
    assert iou(np.zeros(4, bool), np.zeros(4, bool)) == 1.0


# --- recognition on real graphs ---------------------------------------------------------------


def _graph(
    op_nodes: list[onnx.NodeProto], shape: list[int], dtype: int = TensorProto.FLOAT
) -> onnx.ModelProto:
    graph = helper.make_graph(
        op_nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", dtype, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("nodes", "shape", "kind", "axis"),
    [
        ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [2, 5, 3, 4], "class-scores", 1),
        ([helper.make_node("Identity", ["x"], ["y"])], [2, 7, 16], "dense", -1),  # token states
        ([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0)], [4, 7, 16], "embedding", -1),
        ([helper.make_node("Sigmoid", ["x"], ["y"])], [4, 360], "class-scores", -1),
        (
            [helper.make_node("Greater", ["x", "z"], ["b"]), helper.make_node("Cast", ["b"], ["y"], to=1)],
            [4, 6],
            "binary",
            -1,
        ),
    ],
)
def test_recognised_from_the_graph(nodes: list, shape: list[int], kind: str, axis: int) -> None:
    model = _graph(nodes, shape)
    if any("z" in n.input for n in nodes):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(1, np.float32), "z"))
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    (found,) = recognise(model, {"y": y})
    assert (found.kind, found.axis) == (kind, axis), found.reason


def test_values_decide_what_the_graph_does_not_show_and_the_recipe_overrides() -> None:
    model = _graph([helper.make_node("Identity", ["x"], ["y"])], [6, 12])
    unit = np.random.default_rng(0).standard_normal((6, 12))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert recognise(model, {"y": unit})[0].kind == "embedding"
    assert recognise(model, {"y": np.sign(unit)})[0].kind == "binary"
    assert recognise(model, {"y": unit * 3})[0].kind == "dense"
    (forced,) = recognise(model, {"y": unit * 3}, {"y": "class-scores"})
    assert forced.kind == "class-scores" and "recipe" in forced.reason
    (metrics,) = [
        m for m in kind_metrics([forced], {"y": unit}, {"y": unit}) if m.metric == "top-1 agreement"
    ]
    assert metrics.value == 1.0


# --- through the compile -----------------------------------------------------------------------


class Encoder(nn.Module):
    """A small sentence-encoder-like head: MLP, then L2-normalised rows."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(16, 64), nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.b(torch.relu(self.a(x))), dim=1)


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(32, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.b(torch.relu(self.a(x))), dim=1)


def _export(module: nn.Module, features: int, output: str, path: Path) -> Path:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _ = export_torch(
            module.eval(), torch.randn(4, features), input_names=["x"], output_names=[output]
        )
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Samples packed close together: INT8 keeps cosine 0.9999 yet reorders their neighbours."""
    root = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    model = _export(Encoder(), 16, "embedding", root / "encoder.onnx")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16)) + 0.02 * rng.standard_normal((96, 16))
    np.savez(root / "calib.npz", x=x.astype(np.float32))
    return model, root / "calib.npz"


def _cli(*args: str | Path) -> int:
    """The exit code `edgeq ARGS...` gives, run in this process (the compile tests' way: no start-up)."""
    try:
        main([str(a) for a in args])
    except SystemExit as exit_info:
        return exit_info.code or 0
    return 0


def test_an_embedding_whose_int8_loses_neighbours_keeps_fp32_and_exits_3_when_int8_is_forced(
    encoder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, calib = encoder
    common = ["compile", model, "--calib", calib, "--target", FAST_TARGET, "-q", "--mode", "static"]
    assert _cli(*common, "-o", tmp_path / "kept") == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "kept" / "report.json").read_text())
    assert report["accuracy"]["kinds"][0]["kind"] == "embedding"
    assert report["decision"]["chosen"] == "fp32"
    assert "neighbour recall@10" in report["decision"]["reason"] and "< 0.97" in report["decision"]["reason"]
    static = next(c for c in report["decision"]["candidates"] if c["name"] == "int8-static")
    assert static["worst_cosine"] >= 0.99, "cosine alone would have shipped it"

    capsys.readouterr()
    assert _cli(*common, "--no-fallback", "-o", tmp_path / "forced") == 3
    stderr = capsys.readouterr().err
    assert "budget (neighbour recall@10" in stderr and "(output 'embedding')" in stderr
    written = json.loads((tmp_path / "forced" / "report.json").read_text())
    assert written["decision"]["chosen"] == "int8-static"
    assert [g["name"] for g in written["gates"] if not g["passed"]] == ["budget"]
    again = _cli("report", tmp_path / "forced" / "report.json")
    assert again == 3, "the budget gate is recomputed from the file, not trusted"


def test_a_classifier_is_judged_by_top1_agreement_and_accuracy_with_labels(tmp_path: Path) -> None:
    model = _export(Classifier(), 32, "probs", tmp_path / "classifier.onnx")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 32)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x, labels=rng.integers(0, 10, 96))
    calib = str(tmp_path / "calib.npz")
    result = edgeq.compile(model, out=tmp_path / "out", target=FAST_TARGET, calib=calib, mode="static")
    (kind,) = result.report.accuracy.kinds
    assert (kind.kind, kind.reason) == ("class-scores", "Softmax over 10 classes")
    for candidate in result.report.decision.candidates:
        values = {m.metric: m.value for m in candidate.metrics}
        assert {"top-1 agreement", "top-5 agreement", "accuracy", "fp32 accuracy"} <= set(values)
        assert candidate.within_budget == (values["top-1 agreement"] >= 0.995), candidate
    assert result.passed
    coarse = [w.message for w in result.report.warnings if w.source == "CoarseBudget"]
    assert coarse == [
        "output 'probs': top-1 agreement >= 0.995 on 48 held-out samples fails on one changed label "
        "(allowing one needs 200); give more evaluation data (eval:, or a larger calibration set) or "
        "set budget.min_top1"
    ]


@pytest.mark.parametrize(
    ("samples", "min_top1", "warned"),
    [(48, 0.995, True), (199, 0.995, True), (200, 0.995, False), (48, 0.98, True), (60, 0.98, False)],
)
def test_a_top1_budget_too_fine_for_the_evaluation_set_is_said(
    samples: int, min_top1: float, warned: bool
) -> None:
    kinds = [OutputKind("p", "class-scores", "Softmax", -1), OutputKind("e", "embedding", "2-D float")]
    lines = coarse_budgets(kinds, samples, Budget(min_top1=min_top1))
    assert len(lines) == warned and all(line.startswith("output 'p'") for line in lines)


def test_a_recipe_overrides_a_kind_and_unknown_outputs_or_kinds_are_refused(
    encoder: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, calib = encoder
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {model}\ncalib: {calib}\ntarget: {FAST_TARGET}\nmode: static\nkinds: {{embedding: dense}}\n"
    )
    assert _cli("compile", "--recipe", recipe, "-q", "-o", tmp_path / "dense") == 0
    report = json.loads((tmp_path / "dense" / "report.json").read_text())
    assert report["accuracy"]["kinds"][0] == {
        "name": "embedding",
        "kind": "dense",
        "reason": "set by the recipe (kinds)",
        "axis": -1,
    }
    (static,) = [c for c in report["decision"]["candidates"] if c["name"] == "int8-static"]
    assert static["within_budget"] and static["metrics"][0]["metric"] == "cosine", "judged by cosine alone"

    recipe.write_text(f"model: {model}\ncalib: {calib}\nkinds: {{embedding: vector}}\n")
    out = tmp_path / "refused"
    assert_refused(run_edgeq("compile", "--recipe", recipe, "-q", "-o", out, cwd=tmp_path), out, "vector")
    recipe.write_text(f"model: {model}\ncalib: {calib}\nkinds: {{logits: class-scores}}\n")
    capsys.readouterr()
    assert _cli("compile", "--recipe", recipe, "-q", "-o", out) == 2 and not out.exists()
    assert "kinds: the model has no output 'logits'; its outputs: embedding" in capsys.readouterr().err


def test_aggressive_pruning_settings_never_ship_an_artifact_outside_the_budget_of_the_unpruned_model(
    tmp_path: Path,
) -> None:
    """Merging settings that would break the model only bound the measured search: every candidate,
    the pruned fp32 included, is judged against the unpruned model, and the kept one is in budget."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    _export(mlp, 16, "y", tmp_path / "mlp.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).standard_normal((96, 16)).astype(np.float32))
    recipe = tmp_path / "recipe.yaml"
    prune = "{threshold: 0.9, max_ratio: 0.9, approximate: true}"
    recipe.write_text(
        f"model: mlp.onnx\ncalib: calib.npz\ntarget: {FAST_TARGET}\nmode: static\nprune: {prune}\n"
    )
    assert _cli("compile", "--recipe", recipe, "-q", "-o", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    chosen = report["decision"]["chosen"]
    kept = next(c for c in report["decision"]["candidates"] if c["name"] == chosen)
    assert kept["within_budget"] and kept["worst_cosine"] >= 0.99
