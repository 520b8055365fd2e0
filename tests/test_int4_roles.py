"""A 4-bit compile plans repeated blocks by role: the same layer of every block is probed once
per precision and gets one precision, through the real compile; `--analyze` still measures each
layer alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgeq
from tests.conftest import FAST_TARGET
from tests.test_int4_plan import export_id_encoder

BLOCKS = 3


class Block(nn.Module):
    """A residual feed-forward block, repeated: its two layers are two roles."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(64, 128), nn.Linear(128, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.relu(self.up(x)))


class BlockEncoder(nn.Module):
    """An embedding table and three identical blocks, mean-pooled: a tiny encoder's shape."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(1024, 64)
        self.blocks = nn.Sequential(*(Block() for _ in range(BLOCKS)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.table(ids)).mean(dim=1)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return export_id_encoder(BlockEncoder(), tmp_path_factory.mktemp("blocks"), vocab=1024)


def _compile(encoder, out, **overrides):
    model, calib = encoder
    return edgeq.compile(
        model,
        out=out,
        calib=calib,
        target=FAST_TARGET,
        bits=4,
        kinds={"embedding": "dense"},
        runs=False,
        **overrides,
    ).report


def test_repeated_blocks_share_one_probe_and_one_precision_per_role(encoder, tmp_path):
    report = _compile(encoder, tmp_path / "out", budget={"min_cosine": 0.9995})
    plan = report.precision_plan
    roles: dict[str, list] = {}
    for layer in plan.layers:
        roles.setdefault(layer.role, []).append(layer)
    sizes = sorted(len(members) for members in roles.values())
    assert sizes == [1, BLOCKS, BLOCKS], "the table alone, and each block layer across the blocks"
    for members in roles.values():
        assert len({plan.precisions[m.name] for m in members}) == 1, "a role ships at one precision"
        assert len({tuple(sorted(m.role_sensitivity.items())) for m in members}) == 1
        for step in plan.steps:
            assert len({step.assignment[m.name] for m in members}) == 1, "and is searched as one"
        if len(members) > 1:
            assert all(not m.sensitivity for m in members), "no per-layer probe unless analyzed"
    assert [g.op_type for g in report.sensitivity] == ["Gather"], "only what was measured alone"
    promoted = [name for name, precision in plan.precisions.items() if precision != "int4"]
    assert promoted, "the budget is tighter than uniform 4 bits: some role is promoted"
    planned = {c.name: c for c in report.decision.candidates}["int4-planned"]
    final = [s for s in plan.steps if s.assignment == plan.precisions and s.problem is None]
    assert planned.within_budget and final
    assert 100 * (1 - planned.worst_cosine) == pytest.approx(final[-1].damage, abs=1e-6)


def test_analyze_still_measures_every_layer_alone(encoder, tmp_path):
    report = _compile(encoder, tmp_path / "out", budget={"min_cosine": 0.95}, analyze=True)
    assert len(report.sensitivity) == 2 * BLOCKS + 1, "every group in the ranking"
    for layer in report.sensitivity:
        assert set(layer.sensitivity) >= {"int8"} and set(layer.role_sensitivity) == set(layer.sensitivity)
    block_layers = [g for g in report.sensitivity if g.op_type != "Gather"]
    assert any(g.sensitivity != g.role_sensitivity for g in block_layers), "one layer is not its role"
