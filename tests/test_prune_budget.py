"""Pruning under the compile's budget: identical channels always merge (lossless, verified), the
amount beyond them is measured, and a compile never returns a pruned model that misses the budget
or grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgeq
from edgeq.passes.ifm import merge_features
from edgeq.recipe import Budget
from edgeq.report.read import load_report
from edgeq.stages.prune_search import headroom_budget
from tests.bad_inputs.cli import run_edgeq
from tests.conftest import FAST_TARGET
from tests.test_ifm import export, run

ROOT = Path(__file__).resolve().parents[1]
BINARY_AE = ROOT / "examples" / "binary_ae" / "recipe.yaml"


class DuplicatedConv(nn.Module):
    """A conv layer whose channels 16..31 repeat channels 0..15 (every other one scaled by 2.5)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 32, 3, padding=1)
        self.mix = nn.Conv2d(32, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            for copy in range(16, 32):
                factor = 2.5 if copy % 2 else 1.0  # ReLU: a positive multiple is the same feature
                self.conv.weight[copy] = factor * self.conv.weight[copy - 16]
                self.conv.bias[copy] = factor * self.conv.bias[copy - 16]

    def forward(self, x):
        x = torch.relu(self.mix(torch.relu(self.conv(x))))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def duplicated_conv(folder: Path) -> tuple[Path, Path, np.ndarray]:
    torch.manual_seed(0)
    model, calib = folder / "dup.onnx", folder / "dup.npz"
    onnx.save(export(DuplicatedConv(), torch.randn(2, 4, 8, 8)), model)
    x = np.random.default_rng(0).standard_normal((96, 4, 8, 8)).astype(np.float32)
    np.savez(calib, x=x)
    return model, calib, x


def conv_layer(summary):
    return next(layer for layer in summary.layers if layer.channels_before == 32)


def test_identical_channels_are_never_capped(tmp_path):
    path, _, x = duplicated_conv(tmp_path)
    original = onnx.load(path)
    pruned, summary = merge_features(original, max_ratio=0.01)  # caps similarity merges at 0 channels
    layer = conv_layer(summary)
    assert (layer.channels_after, layer.lossless_merged, layer.similar_merged) == (16, 16, 0)
    expected = run(original, x)
    np.testing.assert_allclose(run(pruned, x), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())

    _, default = merge_features(original)  # max_ratio 0.2 once capped all merges at 6 channels
    assert conv_layer(default).lossless_merged == 16 and conv_layer(default).channels_after <= 16


def test_compile_merges_every_duplicate_and_verifies_it(tmp_path):
    model, calib, _ = duplicated_conv(tmp_path)
    out = tmp_path / "out"
    result = run_edgeq(
        "compile", model, "--calib", calib, "--target", FAST_TARGET, "--prune", "ifm", "-o", out, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("IFM:") == 1, "one summary line for the whole search"
    pruning = load_report(out / "report.json").pruning
    search, layer = pruning.search, conv_layer(pruning.summary)
    assert layer.lossless_merged == 16 and layer.channels_after <= 16
    assert search.lossless_verified and search.lossless_max_abs < 1e-4
    lossless = search.trials[0]
    assert lossless.max_ratio == 0.0 and lossless.worst_cosine > 1 - 1e-9 and lossless.problem is None
    assert search.chosen_max_ratio is not None and search.bytes_after < search.bytes_before
    chosen = next(t for t in search.trials if t.max_ratio == search.chosen_max_ratio)
    assert chosen.worst_cosine >= 1 - (1 - 0.99) * search.budget_share  # half the cosine budget at most
    page = (out / "report.html").read_text()
    assert "max ratio tried" in page and "identical merged" in page and f"<td>{layer.node}</td>" in page


def test_binary_ae_pruned_compile_is_within_budget_and_smaller(tmp_path):
    out = tmp_path / "ae"
    args = ["compile", "--recipe", BINARY_AE, "--target", FAST_TARGET, "--prune", "ifm", "-q", "-o", out]
    result = run_edgeq(*args, cwd=tmp_path)
    report = load_report(out / "report.json")
    chosen = next(c for c in report.decision.candidates if c.name == report.decision.chosen)
    assert not (result.returncode == 0 and not chosen.within_budget), "exit 0 with an out-of-budget artifact"
    assert result.returncode in (0, 3), result.stderr
    search, budget = report.pruning.search, report.recipe["budget"]["max_drop"]
    assert search.bytes_after <= search.bytes_before, "pruning never grows the graph"
    for trial in search.trials:  # every trial measured, and judged on half the budget
        assert (trial.problem is None) == (trial.task_drop <= budget * search.budget_share)
    if search.chosen_max_ratio is not None:
        fp32 = next(c for c in report.decision.candidates if c.name == "fp32")
        assert fp32.task_drop <= budget * search.budget_share and search.bytes_after < search.bytes_before
        assert report.pruning.summary.parameters_after < report.pruning.summary.parameters_before


def test_no_fitting_amount_keeps_the_unpruned_model(tmp_path):
    result = edgeq.compile(
        str(ROOT / "examples" / "binary_ae" / "model.onnx"),
        out=tmp_path / "tight",
        target=FAST_TARGET,
        calib=str(ROOT / "calib" / "binary_ae.npz"),
        task={"name": "binary-code", "options": {"bits": "bits", "recon": "recon"}},
        budget={"max_drop": 0.01},  # pruning may spend 0.005 points: no merge at β 0.25 fits
        prune={"max_ratio": 0.3, "threshold": 0.25},
        runs=False,
    )
    pruning = result.report.pruning
    assert pruning.search.chosen_max_ratio is None and "0.5 of the accuracy budget" in (
        pruning.search.kept_unpruned_because
    )
    assert pruning.search.ratio_cap == 0.3 and pruning.search.cap_from_recipe
    assert max(trial.max_ratio for trial in pruning.search.trials) == 0.3, "the recipe's max_ratio bounds it"
    assert {trial.threshold for trial in pruning.search.trials} == {None, 0.25}, "and its β is the only one"
    assert pruning.summary.channels_merged == 0
    assert pruning.summary.parameters_after == pruning.summary.parameters_before
    assert pruning.search.bytes_after <= pruning.search.bytes_before


@pytest.mark.parametrize(
    ("budget", "share", "expected"),
    [
        (Budget(max_drop=1.0, min_cosine=0.99), 0.5, Budget(max_drop=0.5, min_cosine=0.995)),
        (Budget(max_drop=2.0, min_cosine=0.9), 0.25, Budget(max_drop=0.5, min_cosine=0.975)),
    ],
)
def test_headroom_budget_spends_a_share_of_each_allowance(budget, share, expected):
    got = headroom_budget(budget, share)
    assert got.max_drop == pytest.approx(expected.max_drop)
    assert got.min_cosine == pytest.approx(expected.min_cosine)
