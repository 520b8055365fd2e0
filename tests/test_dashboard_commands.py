"""The dashboard command, and the MLflow hook the compile calls with its typed report."""

from __future__ import annotations

import sys
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
    with pytest.raises(InputError, match=r"pip install 'edgeq\[mlflow\]'"):
        log_to_mlflow(load_report(MRL))


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
