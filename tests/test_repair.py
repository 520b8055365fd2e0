"""Repair: an INT8 candidate that misses the budget keeps its most damaging layers fp32, measured on
the artifact; real exported torch models with one layer made sensitive by an outlier channel."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgeq
from edgeq.cli import main
from edgeq.runtime.timing import LatencyEntry, LatencyStats
from edgeq.stages.candidate import Candidate
from edgeq.stages.repair import layer_work, speedup_ceiling

TARGET = str(Path(__file__).parent / "data" / "cpu-repair.yaml")
OUTLIER = 300.0


class OutlierMLP(nn.Module):
    """A token-wise MLP whose second layer writes one channel 300x larger and whose third layer
    reads it 300x smaller: the same function, but per-tensor INT8 of the third layer's input
    rounds every other channel to a few levels. Only the third layer (`/c/MatMul`) is hurt."""

    def __init__(self, width: int, wide: int, out: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(64, width), nn.Linear(width, width)
        self.c, self.d = nn.Linear(width, wide), nn.Linear(wide, out)
        with torch.no_grad():
            self.b.weight[7] *= OUTLIER
            self.b.bias[7] *= OUTLIER
            self.c.weight[:, 7] /= OUTLIER

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.b(torch.relu(self.a(x))))
        return self.d(torch.relu(self.c(hidden)))


def _export(module: nn.Module, folder: Path, shape: tuple[int, ...] = (16, 64)) -> tuple[Path, Path]:
    """The model as ONNX (3-D input: MatMul + Add layers; 2-D: Gemm) and 192 calibration samples."""
    x = torch.randn(192, *shape, generator=torch.Generator().manual_seed(1))
    path = folder / "model.onnx"
    torch.onnx.export(
        module.eval(),
        (x[:1],),
        path,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        dynamo=False,
    )
    calib = folder / "calib.npz"
    np.savez(calib, x=x.numpy())
    return path, calib


def test_plain_int8_misses_and_the_repair_keeps_exactly_the_hurt_layer(tmp_path):
    model, calib = _export(OutlierMLP(width=1024, wide=1024, out=64), tmp_path)
    out = tmp_path / "out"
    try:
        main(
            [
                "compile",
                str(model),
                "--calib",
                str(calib),
                "--target",
                TARGET,
                "--mode",
                "static",
                "-q",
                "-o",
                str(out),
            ]
        )
    except SystemExit as exit_info:
        assert not exit_info.code
    report = edgeq.load_report(out / "report.json")
    candidates = {c.name: c for c in report.decision.candidates}
    plain = candidates["int8-static"]
    assert not plain.within_budget and plain.worst_cosine < 0.99, "the outlier must break plain INT8"
    repaired = candidates["int8-static-keep1"]
    assert repaired.within_budget and repaired.repair.kept_layers == ["/c/MatMul"]
    assert repaired.repair.base == "int8-static" and repaired.repair.base_problem
    assert [s.kept for s in repaired.repair.steps] == [1] and repaired.repair.steps[0].problem is None
    assert repaired.size_ratio < 0.8, "three of four layers still int8"
    assert report.decision.chosen == "int8-static-keep1", report.decision.reason
    assert report.worst_cosine >= 0.99 and min(e.speedup for e in report.latency) > 1.0


def test_the_repair_stops_once_keeping_a_layer_is_no_faster_than_fp32(tmp_path):
    """On 2-D inputs the layers are Gemm + ReLU: with the hurt Gemm kept fp32, ONNX Runtime no longer
    fuses its INT8 neighbour (Gemm + ReLU without an output Q stays unfused and dequantizes its
    weights every call), so the mixed artifact runs slower than fp32 and no repair is kept."""
    model, calib = _export(OutlierMLP(width=1024, wide=1024, out=64), tmp_path, shape=(64,))
    result = edgeq.compile(model, out=tmp_path / "out", calib=calib, target=TARGET, mode="static", runs=False)
    report = result.report
    candidates = {c.name: c for c in report.decision.candidates}
    plain = candidates["int8-static"]
    assert not plain.within_budget, "the outlier must break plain INT8"
    stages = {s.name for s in report.stages}
    assert {"quantize-static-keep1", "repair-latency-int8-static-keep1"} <= stages, "it was tried"
    assert not any("-keep" in name for name in candidates), "a repair no faster than fp32 is not kept"
    assert report.decision.chosen == "fp32"


def test_a_warm_recompile_repairs_the_cached_candidates_again(tmp_path, monkeypatch):
    """Repair reads the budget, so it is not cached: on a warm recompile (only a gate changed) it
    runs again over the candidates restored from the cache and reaches the same repaired artifact."""
    monkeypatch.setenv("EDGEQ_CACHE", str(tmp_path / "cache"))
    model, calib = _export(OutlierMLP(width=1024, wide=1024, out=16), tmp_path)
    chosen = []
    for number, gate in enumerate(("0.5", "0.6")):
        out = tmp_path / f"out{number}"
        args = ["compile", str(model), "--calib", str(calib), "--target", TARGET, "--mode", "static"]
        try:
            main([*args, "--min-cosine", gate, "-q", "-o", str(out)])
        except SystemExit as exit_info:
            assert not exit_info.code
        report = edgeq.load_report(out / "report.json")
        chosen.append({c.name: c.within_budget for c in report.decision.candidates})
    assert report.cache is not None, "the second compile reused the measured candidates"
    assert chosen[0] == chosen[1]
    assert any("-keep" in name for name in chosen[1]), "the repair ran on the restored candidates"


def test_the_speedup_ceiling_counts_multiply_accumulates_and_falls_from_the_base_to_fp32(tmp_path):
    """A repair's estimate keeps the base's speedup with nothing kept and fp32's with everything, in
    between in proportion to the multiply-accumulates kept (16 tokens x each layer's weight)."""
    model, _ = _export(OutlierMLP(width=256, wide=1024, out=64), tmp_path)
    onnx_model = onnx.load(model)
    layers = [n.name for n in onnx_model.graph.node if n.op_type == "MatMul"]
    work = layer_work(onnx_model, layers)
    assert work == [16 * 64 * 256, 16 * 256 * 256, 16 * 256 * 1024, 16 * 1024 * 64]
    base = Candidate("int8-static", model=None)  # type: ignore[arg-type]  # only its latency is read
    fp32, int8 = LatencyStats.of([[2.0]] * 6), LatencyStats.of([[1.0]] * 6)
    base.latency = [LatencyEntry(1, 1, 6, fp32, int8)]
    ceiling = speedup_ceiling(base, work)
    assert ceiling[0] == pytest.approx(2.0) and ceiling[-1] == pytest.approx(1.0)
    assert ceiling[3] == pytest.approx(1 / (0.5 + 0.5 * sum(work[:3]) / sum(work)))
    assert all(a > b for a, b in itertools.pairwise(ceiling))
