"""`edgeq sweep`: the same sweep on the local pool and on a real local Ray cluster gives the same
table; a failed run is reported with its reason; a killed sweep resumes without redoing done runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.sweep.command import write_sweep_json
from edgeq.sweep.run import run_sweep
from edgeq.sweep.spec import load_sweep
from tests.tiny_models import brief_target, tiny_calib, tiny_mlp

ROOT = Path(__file__).parents[1]


def _sweep_file(folder: Path, broken: bool = False) -> Path:
    tiny_mlp(folder / "a.onnx")
    tiny_mlp(folder / "b.onnx", seed=3, hidden=64)
    tiny_calib(folder / "calib.npz")
    brief_target(folder / "brief.yaml")
    models = "  a: {model: a.onnx, calib: calib.npz}\n  b: {model: b.onnx, calib: calib.npz}\n"
    if broken:
        (folder / "broken.onnx").write_text("not a model")
        models += "  broken: {model: broken.onnx, calib: calib.npz}\n"
    path = folder / "sweep.yaml"
    path.write_text(
        f"models:\n{models}targets: [brief.yaml]\nrecipes:\n  auto: {{}}\n  static: {{mode: static}}\n"
    )
    return path


def _edgeq(*args: str, wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-P", "-m", "edgeq", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not wait:
        return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def _recorded(store: Path) -> int:
    with sqlite3.connect(store) as connection:
        return connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_local_pool_and_ray_cluster_give_the_same_table(tmp_path: Path, isolated_runs_store: Path) -> None:
    ray = pytest.importorskip("ray")
    sweep = _sweep_file(tmp_path, broken=True)
    local = _edgeq("sweep", str(sweep), "-o", str(tmp_path / "local"), "--jobs", "2")
    assert local.returncode == 2, (
        local.stderr
    )  # the broken model's runs failed: said after the summary was written
    assert "2 of 6 runs failed" in local.stderr
    rows = json.loads((tmp_path / "local" / "sweep.json").read_text())["runs"]
    failed = [r for r in rows if r["chosen"] == "failed"]
    assert [r["model"] for r in failed] == ["broken", "broken"] and "broken.onnx" in failed[0]["note"]
    assert "broken.onnx" in (tmp_path / "local" / "sweep.html").read_text()
    assert sum(r["note"] == "recommended" for r in rows) == 2  # one per model that compiled
    assert _recorded(isolated_runs_store) == 4

    ray.init(num_cpus=2, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}}, log_to_driver=False)
    try:
        runs = [run for run in load_sweep(sweep) if run.model_name != "broken"]
        results = run_sweep(runs, tmp_path / "ray", ray="auto")
    finally:
        ray.shutdown()
    assert all(r.error is None and (tmp_path / "ray" / r.folder / "model.onnx").is_file() for r in results)
    write_sweep_json(results, tmp_path / "ray")
    on_ray = json.loads((tmp_path / "ray" / "sweep.json").read_text())["runs"]
    # the cache makes the cluster's runs reuse the pool's measurements: the same numbers, the same table
    assert on_ray == [r for r in rows if r["model"] != "broken"]
    assert _recorded(isolated_runs_store) == 8


def _complete(out: Path) -> list[Path]:
    """The runs' reports put in place; a killed compile's hidden staging folder (pathlib's glob
    matches dot-names) may hold a report too, but it is not a complete run."""
    reports = out.glob("*/*/*/report.json")
    return [p for p in reports if not any(part.startswith(".") for part in p.relative_to(out).parts)]


def test_a_killed_sweep_resumes_without_redoing_done_runs(tmp_path: Path, isolated_runs_store: Path) -> None:
    sweep = _sweep_file(tmp_path)
    out = tmp_path / "out"
    first = _edgeq("sweep", str(sweep), "-o", str(out), wait=False)
    deadline = time.monotonic() + 180
    while not _complete(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    done = {p: p.stat().st_mtime_ns for p in _complete(out)}
    assert 1 <= len(done) < 4
    again = _edgeq("sweep", str(sweep), "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} of 4 runs already complete" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in done} == done  # not compiled again
    assert len(_complete(out)) == 4
    assert _recorded(isolated_runs_store) == 4  # each run recorded once


def test_a_bad_sweep_file_is_refused_in_one_line_before_any_run(tmp_path: Path) -> None:
    sweep = _sweep_file(tmp_path)
    sweep.write_text(sweep.read_text() + "grid:\n  calibration.methd: [mse]\n")
    refused = _edgeq("sweep", str(sweep), "-o", str(tmp_path / "out"))
    assert refused.returncode == 2
    assert "unknown key 'methd'" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "out").exists()
