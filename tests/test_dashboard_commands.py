"""The dashboard command, and the MLflow hook the compile calls with its typed report."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeq.dashboard.commands import dashboard_command, log_to_mlflow
from edgeq.dashboard.server import DashboardServer
from edgeq.errors import InputError
from edgeq.report.read import load_report

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
MRL = FIXTURES / "v1_mrl_cpu.json"


def test_dashboard_command_serves_the_given_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = {}

    def stop_at_once(self) -> None:
        served["address"] = self.server_address
        raise KeyboardInterrupt

    monkeypatch.setattr(DashboardServer, "serve_forever", stop_at_once)
    result = CliRunner().invoke(
        dashboard_command, ["--runs", str(tmp_path / "r.sqlite"), "--port", "0", "--no-open"]
    )
    assert result.exit_code == 0, result.output
    assert served["address"][0] == "127.0.0.1"
    assert "edgeq dashboard at http://127.0.0.1:" in result.output
    assert (tmp_path / "r.sqlite").exists()


def test_mlflow_needs_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(InputError, match="pip install mlflow"):
        log_to_mlflow(load_report(MRL))


def test_mlflow_gets_metrics_params_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    logged: dict = {}

    class RecordingRun:
        info = types.SimpleNamespace(run_id="mlflow-123")

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    recorder = types.ModuleType("mlflow")
    recorder.start_run = lambda run_name=None: logged.setdefault("run", run_name) and RecordingRun()
    recorder.log_params = lambda params: logged.setdefault("params", params)
    recorder.log_metrics = lambda metrics: logged.setdefault("metrics", metrics)
    recorder.log_dict = lambda data, path: logged.setdefault("artifact", (path, data))
    monkeypatch.setitem(sys.modules, "mlflow", recorder)
    report = load_report(MRL)
    assert log_to_mlflow(report) == "mlflow-123"
    assert logged["run"] == report.run_id
    assert logged["params"] == {
        "model": "mrl_encoder/model",
        "target": "cpu-x86-avx2",
        "decision": report.decision.chosen,
        "edgeq_run_id": report.run_id,
    }
    metrics = logged["metrics"]
    first = report.task.metrics[0]
    name = first.name.replace("@", "_at_")
    assert metrics[f"task.{name}.compiled"] == first.compiled and metrics[f"task.{name}.fp32"] == first.fp32
    assert metrics["speedup_batch_32"] == report.speedup(32)
    assert metrics["slowest_speedup"] == report.slowest_speedup
    assert metrics["speedup_b1"] == report.speedup(1)
    assert logged["artifact"] == ("edgeq/report.json", report.to_dict())


def test_a_given_token_is_printed_in_the_url_and_a_short_one_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stop_at_once(self) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(DashboardServer, "serve_forever", stop_at_once)
    args = ["--runs", str(tmp_path / "r.sqlite"), "--port", "0", "--no-open", "--token"]
    result = CliRunner().invoke(dashboard_command, [*args, "a-long-enough-token-123"])
    assert result.exit_code == 0 and "/?token=a-long-enough-token-123" in result.output
    refused = CliRunner().invoke(dashboard_command, [*args, "short"])
    assert isinstance(refused.exception, InputError) and "16 characters" in str(refused.exception)


def test_a_runs_store_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "notes.sqlite"
    store.write_text("not a database\n" * 50)
    result = CliRunner().invoke(dashboard_command, ["--runs", str(store), "--port", "0", "--no-open"])
    assert isinstance(result.exception, InputError) and "cannot start the dashboard" in str(result.exception)
    assert store.read_text().startswith("not a database")
