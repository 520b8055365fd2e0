"""`edgeq report` gates and errors, the dashboard command, and the MLflow hook."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeq.dashboard.commands import dashboard_command, log_to_mlflow, report_command
from edgeq.dashboard.server import DashboardServer
from edgeq.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
GOOD = FIXTURES / "mrl_cpu_run1.json"
REGRESSED = FIXTURES / "mrl_cpu_run2_regressed.json"


def run(*args: str):
    return CliRunner().invoke(report_command, [str(a) for a in args])


def test_table_summary_passes() -> None:
    result = run(GOOD)
    assert result.exit_code == 0, result.output
    assert "speedup at batch 1" in result.output and "mrl_encoder" in result.output


def test_json_summary_for_ci() -> None:
    result = run(GOOD, "--json", "--min-speedup", "1.5", "--min-cosine", "0.999")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["passed"] is True and summary["task_drop"] == 0.4
    assert [g["name"] for g in summary["gates"]] == ["max_drop", "min_speedup", "min_cosine"]


@pytest.mark.parametrize(
    "args",
    [
        [GOOD, "--max-drop", "0.1"],
        [GOOD, "--min-speedup", "5"],
        [GOOD, "--min-cosine", "0.99999"],
        [FIXTURES / "binary_ae_cpu_no_task.json", "--max-drop", "1"],
        [REGRESSED],
    ],
)
def test_failed_or_unmeasured_gate_exits_3(args: list) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 3, result.output
    assert json.loads(result.output)["passed"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no report at"),
        ("{not json", "not a readable JSON report"),
        ('{"schema": "other/9"}', "is not an edgeq.report/1 report"),
        ("[1]", "schema: 'list'"),
    ],
)
def test_bad_report_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeq.cli import main

    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("edgeq: error: ")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_report_accepts_the_output_directory(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(GOOD.read_text())
    assert run(tmp_path).exit_code == 0


def test_dashboard_command_serves_the_given_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = {}

    def fake_serve_forever(self) -> None:
        served["address"] = self.server_address
        raise KeyboardInterrupt

    monkeypatch.setattr(DashboardServer, "serve_forever", fake_serve_forever)
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
        log_to_mlflow(json.loads(GOOD.read_text()))


def test_mlflow_gets_metrics_params_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    logged: dict = {}

    class FakeRun:
        info = types.SimpleNamespace(run_id="mlflow-123")

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    fake = types.ModuleType("mlflow")
    fake.start_run = lambda run_name=None: logged.setdefault("run", run_name) and FakeRun()
    fake.log_params = lambda params: logged.setdefault("params", params)
    fake.log_metrics = lambda metrics: logged.setdefault("metrics", metrics)
    fake.log_dict = lambda data, path: logged.setdefault("artifact", path)
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    assert log_to_mlflow(json.loads(GOOD.read_text())) == "mlflow-123"
    assert logged["run"] == "20261126T093015-3fa9c1"
    assert logged["params"]["target"] == "cpu-x86-avx2"
    assert logged["metrics"]["task.1nn_acc_at_8.compiled"] == 62.0
    assert logged["metrics"]["speedup_batch_32"] > 1
    assert logged["artifact"] == "edgeq/report.json"


def test_the_edgeq_command_exits_3_on_a_failed_gate() -> None:
    from edgeq.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(GOOD), "--min-speedup", "100"])
    assert exit_info.value.code == 3
