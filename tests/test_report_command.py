"""`edgeq report`: the compile's gates recomputed, gates asked for on the command line, bad reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeq.report.command import report_command
from edgeq.report.read import load_report
from tests.typed_reports import full_report

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
MRL = FIXTURES / "v1_mrl_cpu.json"
GATED = FIXTURES / "v1_binary_ae_gates.json"
TENSORRT = FIXTURES / "v1_mrl_tensorrt.json"


def run(*args: object):
    return CliRunner(env={"COLUMNS": "200"}).invoke(report_command, [str(a) for a in args])


def run_json(*args: object) -> tuple[int, dict]:
    result = run(*args, "--json")
    return result.exit_code, json.loads(result.output)


def test_table_summary_passes_and_shows_the_recomputed_gates() -> None:
    result = run(GATED)
    assert result.exit_code == 0, result.output
    assert "speedup at batch 32" in result.output and "binary_ae/model" in result.output
    assert "gates: pass" in result.output and "slowest speedup over the batch sizes" in result.output


def test_json_summary_for_ci() -> None:
    report = load_report(MRL)
    code, summary = run_json(MRL, "--min-speedup", "1.5", "--min-cosine", "0.999")
    assert code == 0 and summary["passed"] is True
    assert summary["speedup"] == {"1": report.latency[0].speedup, "32": report.latency[1].speedup}
    assert summary["slowest_speedup"] == min(e.speedup for e in report.latency)
    assert summary["task_drop"] == report.task.worst_primary_drop
    assert [(g["name"], g["source"]) for g in summary["gates"]] == [
        ("min_speedup", "command line"),
        ("min_cosine", "command line"),
    ]


def test_min_speedup_gates_the_slowest_batch_as_compile_does() -> None:
    report = load_report(MRL)
    fast, slow = report.speedup(1), report.speedup(32)
    assert fast > slow
    code, summary = run_json(MRL, "--min-speedup", (fast + slow) / 2)
    assert code == 3 and summary["passed"] is False
    assert summary["gates"][0]["value"] == slow


def test_the_compiles_gates_are_recomputed_from_their_limits(tmp_path: Path) -> None:
    data = json.loads(GATED.read_text())
    slowest = min(e["speedup"] for e in data["latency"])
    data["gates"][1] |= {"limit": slowest + 0.5, "value": slowest + 1, "passed": True}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    code, summary = run_json(path)
    assert code == 3 and summary["passed"] is False
    gate = summary["gates"][1]
    assert (gate["name"], gate["value"], gate["passed"], gate["source"]) == (
        "min_speedup",
        slowest,
        False,
        "compile",
    )


@pytest.mark.parametrize(
    "args",
    [
        [MRL, "--max-drop", "-100"],
        [MRL, "--min-cosine", "0.99999999"],
        [TENSORRT, "--min-speedup", "1"],
    ],
)
def test_failed_or_unmeasured_gate_exits_3(args: list) -> None:
    code, summary = run_json(*args)
    assert code == 3 and summary["passed"] is False


def test_max_drop_without_a_task_fails(tmp_path: Path) -> None:
    report = full_report()
    report.accuracy.task = None
    code, summary = run_json(report.write(tmp_path / "report.json"), "--max-drop", "100")
    assert code == 3 and summary["gates"][-1]["value"] is None


def test_latency_status_is_shown_when_latency_was_not_measured() -> None:
    result = run(TENSORRT)
    assert result.exit_code == 0, result.output
    assert "not measured here: the engine is pending" in result.output
    assert run_json(TENSORRT)[1]["latency_status"].startswith("not measured here")


def _tampered(tmp_path: Path, change) -> Path:
    data = json.loads(GATED.read_text())
    change(data)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read report"),
        ("{not json", "is not valid JSON"),
        ('{"schema": "other/9"}', "not an edgeq.report/2 report (schema: 'other/9')"),
        ("[1]", "schema: 'list'"),
        (lambda d: d["gates"][0].update(passed="false"), "report.gates[0].passed must be a bool"),
        (lambda d: d["gates"][0].update(passed=[0]), "report.gates[0].passed must be a bool"),
        (lambda d: d["artifact"].update(bytes=-3), "report.artifact.bytes must be >= 0"),
        (lambda d: d["latency"][1]["compiled"].update(p50_ms="inf"), "report.latency[1].compiled.p50_ms"),
        (lambda d: d.update(size_ratio=10**4000), "report.size_ratio: integer of 4001 digits"),
        (
            '{"schema": "edgeq.report/2", "size_ratio": ' + "7" * 5000 + "}",
            "is not valid JSON: Exceeds the limit",
        ),
        ('{"schema": "edgeq.report/1", "recipe": ' + "[" * 50_000 + "]" * 50_000 + "}", "is not valid JSON"),
    ],
)
def test_bad_report_is_one_line_and_exit_2(
    tmp_path: Path, content: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeq.cli import main

    path = tmp_path / "report.json"
    if callable(content):
        path = _tampered(tmp_path, content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("edgeq: error: ")
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_non_finite_limit_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeq.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(MRL), "--min-cosine", "nan"])
    assert exit_info.value.code == 2
    assert "gate min_cosine must be a finite number" in capsys.readouterr().err


def test_report_accepts_the_output_directory(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(MRL.read_text())
    assert run(tmp_path).exit_code == 0


def test_the_edgeq_command_exits_3_on_a_failed_gate() -> None:
    from edgeq.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(MRL), "--min-speedup", "100"])
    assert exit_info.value.code == 3
