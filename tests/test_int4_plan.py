"""The 4-bit precision plan is judged on the artifact it ships: the plan it stops at measures, as a
candidate, exactly what the planner measured, and embedding tables are planned like layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgeq
from tests.conftest import FAST_TARGET


class TokenEncoder(nn.Module):
    """An embedding table (most of the bytes), two Linear layers and mean pooling: a tiny text encoder."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(2048, 64)
        self.up, self.down = nn.Linear(64, 256), nn.Linear(256, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(self.table(ids)))).mean(dim=1)


def export_id_encoder(module: nn.Module, folder: Path, vocab: int) -> tuple[Path, Path]:
    """`module` (token ids [B, 16] -> embedding) exported with a dynamic batch, and 128 random
    id rows as its calibration file."""
    ids = torch.randint(0, vocab, (128, 16), generator=torch.Generator().manual_seed(1))
    path = folder / "model.onnx"
    torch.onnx.export(
        module.eval(),
        (ids[:1],),
        path,
        input_names=["ids"],
        output_names=["embedding"],
        dynamic_axes={"ids": {0: "batch"}, "embedding": {0: "batch"}},
        dynamo=False,
    )
    np.savez(folder / "calib.npz", ids=ids.numpy())
    return path, folder / "calib.npz"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return export_id_encoder(TokenEncoder(), tmp_path_factory.mktemp("encoder"), vocab=2048)


def test_the_plan_stops_where_its_artifact_measures_within_budget(encoder, tmp_path):
    model, calib = encoder
    budget = 0.999  # tighter than uniform 4 bits holds, so the plan must promote something
    report = edgeq.compile(
        model,
        out=tmp_path / "out",
        calib=calib,
        target=FAST_TARGET,
        bits=4,
        budget={"min_cosine": budget},
        kinds={"embedding": "dense"},  # judged by cosine: this test is about the planner, not recall
        runs=False,
    ).report
    candidates = {c.name: c for c in report.decision.candidates}
    assert not candidates["int4-uniform"].within_budget, "uniform 4 bits must miss this budget"
    plan = report.precision_plan
    assert "Gather" in {layer.op_type for layer in plan.layers}, "the embedding table is planned"
    final = [s for s in plan.steps if s.assignment == plan.precisions and s.problem is None]
    assert final, "the plan ends at an assignment it measured within budget"
    planned = candidates["int4-planned"]
    assert planned.within_budget, "the artifact agrees with the plan: within budget"
    assert 100 * (1 - planned.worst_cosine) == pytest.approx(final[-1].damage, abs=1e-6)
    assert planned.size_ratio < candidates["int8-static"].size_ratio


def test_a_four_bit_embedding_table_takes_the_encoder_below_a_fifth_of_its_bytes(encoder, tmp_path):
    model, calib = encoder
    report = edgeq.compile(
        model,
        out=tmp_path / "out",
        calib=calib,
        target=FAST_TARGET,
        bits=4,
        budget={"min_cosine": 0.95},
        kinds={"embedding": "dense"},
        runs=False,
    ).report
    assert report.precision_plan.precisions["/table/Gather"] == "int4"
    uniform = {c.name: c for c in report.decision.candidates}["int4-uniform"]
    assert uniform.within_budget
    assert uniform.size_ratio < 0.2, "4-bit table and 4-bit layers: about a seventh of fp32 bytes"
