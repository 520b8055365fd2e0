"""The cache: a warm compile reuses the measurement, a change of model or setting does not, entries
are evicted least recently used, and concurrent writers leave whole entries."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgeq
from edgeq.cache import Cache, using_cache
from edgeq.cache.memo import memo
from tests.tiny_models import brief_target, tiny_calib, tiny_mlp


@pytest.fixture()
def setup(tmp_path: Path) -> dict:
    return {
        "model": tiny_mlp(tmp_path / "m.onnx"),
        "calib": tiny_calib(tmp_path / "calib.npz"),
        "target": brief_target(tmp_path / "t.yaml"),
        "cache": tmp_path / "cache",
        "root": tmp_path,
    }


def _compile(setup: dict, out: str, model: Path | None = None, **overrides) -> edgeq.Report:
    result = edgeq.compile(
        model or setup["model"],
        out=setup["root"] / out,
        target=str(setup["target"]),
        calib=str(setup["calib"]),
        cache=setup["cache"],
        runs=False,
        **overrides,
    )
    return result.report


def test_a_changed_gate_or_budget_reuses_the_measurement(setup: dict) -> None:
    cold = _compile(setup, "cold")
    assert cold.cache is None
    warm = _compile(setup, "warm", gates={"min_cosine": 0.5}, budget={"min_cosine": 0.95})
    assert warm.cache is not None and warm.cache.reused == ["lower", "compile", "measure", "repair", "layers"]
    assert warm.quantization.layers == cold.quantization.layers
    assert warm.latency == cold.latency  # the very numbers measured cold, not new ones
    assert warm.decision.chosen == cold.decision.chosen
    assert "min_cosine" in {g.name for g in warm.gates} - {g.name for g in cold.gates}
    assert any(
        "latency and fidelity reused from a run on this machine at" in w.message for w in warm.warnings
    )
    assert "measure" not in {s.name for s in warm.stages}
    assert (setup["root"] / "warm" / warm.artifact.path).is_file()
    entry_files = {f: f.read_bytes() for f in setup["cache"].rglob("work/**/*") if f.is_file()}
    again = _compile(setup, "again", gates={"min_cosine": 0.4})  # its work files are the entry's, linked
    assert again.cache is not None and again.decision.chosen == cold.decision.chosen
    assert entry_files and {f: f.read_bytes() for f in entry_files} == entry_files  # the entry is intact


def test_a_changed_model_or_setting_is_measured_afresh(setup: dict) -> None:
    _compile(setup, "first")
    other = tiny_mlp(setup["root"] / "other" / "m.onnx", seed=5)
    assert _compile(setup, "model", model=other).cache is None
    assert _compile(setup, "method", calibration={"method": "minmax"}).cache is None
    assert _compile(setup, "mode", mode="static").cache is None
    # a budget that puts other candidates within it changes the run-off's leaders: measured afresh
    assert _compile(setup, "strict", budget={"min_cosine": 0.999999999}).cache is None
    assert _compile(setup, "again").cache is not None
    assert _compile(setup, "strict-again", budget={"min_cosine": 0.999999999}).cache is not None


def test_a_4bit_budget_change_plans_afresh(setup: dict) -> None:
    _compile(setup, "four", bits=4, block_size=16)
    assert _compile(setup, "four-gate", bits=4, block_size=16, gates={"min_cosine": 0.1}).cache is not None
    assert _compile(setup, "four-budget", bits=4, block_size=16, budget={"min_cosine": 0.9}).cache is None


def test_no_cache_computes_and_stores_nothing(setup: dict, tmp_path: Path) -> None:
    env = {**os.environ, "EDGEQ_CACHE": str(setup["cache"]), "PYTHONPATH": str(Path(__file__).parents[1])}
    command = [
        sys.executable,
        "-P",
        "-m",
        "edgeq",
        "compile",
        str(setup["model"]),
        "--calib",
        str(setup["calib"]),
    ]
    command += ["--target", str(setup["target"]), "--no-cache", "-q", "-o", str(tmp_path / "out")]
    subprocess.run(command, check=True, env=env, timeout=120)
    assert not setup["cache"].exists()
    assert edgeq.load_report(tmp_path / "out" / "report.json").cache is None


def _put(cache: Cache, key: str, size: int) -> None:
    cache.put(key, lambda folder: (folder / "blob").write_bytes(b"x" * size))


def test_eviction_removes_the_least_recently_used(tmp_path: Path) -> None:
    cache = Cache(tmp_path, limit=2500)
    _put(cache, "a", 1000)
    _put(cache, "b", 1000)
    os.utime(cache.entries / "a", (1, 1))
    os.utime(cache.entries / "b", (2, 2))
    assert cache.get("a") is not None  # read: now the most recently used
    _put(cache, "c", 1000)
    assert sorted(p.name for p in cache.entries.iterdir()) == ["a", "c"]


def _write_same_key(root: str, value: int) -> None:
    cache = Cache(root)
    with using_cache(cache):
        for round_ in range(20):
            memo("race", lambda r=round_: {"round": r}, lambda v=value: [v] * 1000)


def test_concurrent_writers_leave_one_whole_entry_per_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_same_key, args=(str(tmp_path), v)) for v in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    entries = list((tmp_path / "entries").iterdir())
    assert len(entries) == 20
    assert not list((tmp_path / "tmp").iterdir())  # no half-written copy left behind
    with using_cache(Cache(tmp_path)):
        values = [
            memo("race", lambda r=r: {"round": r}, lambda: pytest.fail("recomputed")) for r in range(20)
        ]
    assert all(len(set(v)) == 1 and len(v) == 1000 for v in values)  # one writer's whole value each
