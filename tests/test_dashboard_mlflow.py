"""`edgeq compile --mlflow` against a real local MLflow tracking store: the run is read back through
MLflow's own client (skipped where mlflow is not installed: `pip install 'edgeq[mlflow]'`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bad_inputs.cli import run_edgeq
from tests.conftest import FAST_TARGET

mlflow = pytest.importorskip("mlflow")

ROOT = Path(__file__).resolve().parent.parent


def _compile(tmp_path: Path, tracking: str, *extra: str):
    return run_edgeq(
        "compile",
        ROOT / "examples" / "mrl_encoder" / "model.onnx",
        "--calib",
        ROOT / "calib" / "mrl_digits.npz",
        "--target",
        FAST_TARGET,
        "--calib-samples",
        "32",
        "--task",
        "mrl-retrieval",
        "--task-option",
        "dims=[8,16]",
        "--mlflow",
        "-o",
        "out",
        *extra,
        cwd=tmp_path,
        timeout=300,
        # MLflow 3 keeps the file store behind an opt-in; it is still the zero-setup local store
        env={
            "MLFLOW_TRACKING_URI": tracking,
            "MLFLOW_ALLOW_FILE_STORE": "true",
            "EDGEQ_RUNS": str(tmp_path / "runs.sqlite"),
        },
    )


def test_a_compile_is_logged_and_read_back_through_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for the client reading it back here
    tracking = f"file:{tmp_path / 'mlruns'}"
    result = _compile(tmp_path, tracking)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("mlflow run ")]
    run_id = line.split()[-1]
    report = json.loads((tmp_path / "out" / "report.json").read_text())

    client = mlflow.tracking.MlflowClient(tracking_uri=tracking)
    run = client.get_run(run_id)
    assert run.info.run_name == report["run_id"] and run.info.status == "FINISHED"
    params = run.data.params
    assert params["edgeq_run_id"] == report["run_id"]
    assert params["model_sha256"] == report["model"]["sha256"]
    assert (params["bits"], params["mode"], params["prune"]) == ("8", "auto", "no")
    assert params["decision"] == report["decision"]["chosen"]
    metrics = run.data.metrics
    speedups = {entry["batch"]: entry["speedup"] for entry in report["latency"]}
    assert {batch: metrics[f"speedup_batch_{batch}"] for batch in speedups} == pytest.approx(speedups)
    assert metrics["task.1nn_acc_at_8.compiled"] == pytest.approx(
        next(m["compiled"] for m in report["accuracy"]["task"]["metrics"] if m["name"] == "1nn_acc@8")
    )
    logged = json.loads(
        Path(client.download_artifacts(run_id, "edgeq/report.json", str(tmp_path))).read_text()
    )
    assert logged["run_id"] == report["run_id"] and logged["decision"] == report["decision"]


def test_a_tracking_store_that_refuses_is_one_line_after_a_complete_compile(tmp_path: Path) -> None:
    result = _compile(tmp_path, "nosuchscheme://nowhere", "-q")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("edgeq: error: MLflow logging to nosuchscheme://nowhere failed: "), line
    assert "outputs are written" in line and (tmp_path / "out" / "report.json").is_file()
