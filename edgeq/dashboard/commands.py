"""`edgeq dashboard` and `edgeq report`, plus the hooks the compile pipeline calls after a run."""

from __future__ import annotations

import ipaddress
import json
import re
import webbrowser
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgeq.dashboard.server import DEFAULT_HOST, DEFAULT_PORT, create_server
from edgeq.errors import InputError
from edgeq.report import headline as hl
from edgeq.report.schema import READABLE_SCHEMAS, SCHEMA, Report
from edgeq.store.runs import RunStore, StoreError

_MLFLOW_NAME = re.compile(r"[^\w\-./ ]")


def read_report(path: Path) -> dict:
    """report.json (or the output dir holding one) as a dict; InputError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise InputError(f"no report at {path}: pass the report.json a compile wrote")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a readable JSON report ({exc})") from None
    if not isinstance(report, dict) or report.get("schema") not in READABLE_SCHEMAS:
        found = report.get("schema") if isinstance(report, dict) else type(report).__name__
        raise InputError(f"{path} is not an {SCHEMA} report (schema: {found!r})")
    return report


def evaluate_gates(
    report: dict,
    max_drop: float | None = None,
    min_speedup: float | None = None,
    min_cosine: float | None = None,
) -> list[dict]:
    """The gates recorded by the compile plus the ones asked for now; unmeasured values fail."""
    gates = [
        {**gate, "source": "compile"} for gate in hl.as_list(report.get("gates")) if isinstance(gate, dict)
    ]
    asked = (
        ("max_drop", max_drop, hl.task_drop(report), lambda v, limit: v <= limit),
        (
            "min_speedup",
            min_speedup,
            hl.headline_speedup(report),
            lambda value, limit: value >= limit,
        ),
        ("min_cosine", min_cosine, hl.worst_cosine(report), lambda value, limit: value >= limit),
    )
    for name, limit, value, holds in asked:
        if limit is not None:
            passed = value is not None and holds(value, limit)
            gates.append(
                {
                    "name": name,
                    "limit": limit,
                    "value": value,
                    "passed": passed,
                    "source": "command line",
                }
            )
    return gates


def report_summary(report: dict) -> dict:
    """The headline numbers a CI job reads, in one flat dict."""
    decision = hl.as_dict(report.get("decision"))
    return {
        "run_id": report.get("run_id"),
        "model": hl.model_name(report),
        "target": hl.target_name(report),
        "decision": decision.get("chosen"),
        "speedup": {str(row.get("batch")): row.get("speedup") for row in hl.latency_rows(report)},
        "speedup_b1": hl.headline_speedup(report),
        "size_ratio": hl.size_ratio(report),
        "worst_cosine": hl.worst_cosine(report),
        "task_drop": hl.task_drop(report),
    }


@click.command("report")
@click.argument("report_path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for CI.")
@click.option("--max-drop", type=float, help="Exit 3 when the worst primary task drop exceeds this.")
@click.option("--min-speedup", type=float, help="Exit 3 when the batch-1 speedup is below this.")
@click.option("--min-cosine", type=float, help="Exit 3 when the worst output cosine is below this.")
@click.pass_context
def report_command(
    ctx: click.Context,
    report_path: Path,
    as_json: bool,
    max_drop: float | None,
    min_speedup: float | None,
    min_cosine: float | None,
) -> None:
    """Summarise a compile's report.json and check gates; exit 3 when one fails."""
    report = read_report(report_path)  # an unreadable report raises InputError: one line, exit 2
    summary = report_summary(report)
    gates = evaluate_gates(report, max_drop, min_speedup, min_cosine)
    passed = all(gate.get("passed") for gate in gates)
    if as_json:
        click.echo(json.dumps({**summary, "gates": gates, "passed": passed}, indent=2, default=str))
    else:
        _print_summary(summary, gates)
    ctx.exit(0 if passed else 3)


def _print_summary(summary: dict, gates: list[dict]) -> None:
    console = Console()
    table = Table(title=f"{summary['model']} → {summary['target']}  (run {summary['run_id']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for batch, speedup in summary["speedup"].items():
        table.add_row(f"speedup at batch {batch}", _times(speedup))
    table.add_row("size ratio", _times(summary["size_ratio"]))
    table.add_row("worst output cosine", _number(summary["worst_cosine"], 4))
    table.add_row("worst primary task drop", _number(summary["task_drop"], 2))
    table.add_row("decision", str(summary["decision"] or "—"))
    console.print(table)
    if gates:
        gate_table = Table(title="gates")
        for column in ("gate", "limit", "value", "result", "from"):
            gate_table.add_column(column)
        for gate in gates:
            result = "[green]pass[/green]" if gate.get("passed") else "[bold red]FAIL[/bold red]"
            gate_table.add_row(
                str(gate.get("name")),
                _number(gate.get("limit"), 4),
                _number(gate.get("value"), 4),
                result,
                str(gate.get("source")),
            )
        console.print(gate_table)


def _times(value: object) -> str:
    number = hl.as_number(value)
    return "—" if number is None else f"{number:.2f}×"


def _number(value: object, digits: int) -> str:
    number = hl.as_number(value)
    return "not measured" if number is None else f"{number:.{digits}f}"


@click.command("dashboard")
@click.option(
    "--runs",
    "runs_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Runs store (default: $EDGEQ_RUNS or ~/.local/share/edgeq/runs.sqlite).",
)
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on; anything but loopback shows your runs to the network.",
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--open/--no-open", "open_browser", default=True, help="Open it in a browser.")
def dashboard_command(runs_path: Path | None, host: str, port: int, open_browser: bool) -> None:
    """Serve the runs dashboard (runs table, latency history, speed vs quality) until Ctrl-C."""
    try:
        server = create_server(RunStore(runs_path), host, port)
    except (StoreError, OSError) as error:
        raise InputError(f"cannot start the dashboard on {host}:{port}: {error}") from None
    url = f"http://{host}:{server.server_address[1]}/"
    click.echo(f"edgeq dashboard at {url}  (runs: {server.store.path}; Ctrl-C stops it)")
    if not _is_loopback(host):
        click.echo(
            "warning: listening beyond this machine; anyone who can reach it sees your runs",
            err=True,
        )
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("dashboard stopped")
    finally:
        server.server_close()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def log_to_mlflow(typed: Report) -> str:
    """Log headline metrics, params and the full report to the active MLflow tracking URI."""
    report = typed.to_dict()
    try:
        import mlflow
    except ImportError:
        raise InputError("--mlflow needs the mlflow package: pip install mlflow") from None
    summary = report_summary(report)
    metrics = {
        key: summary[key]
        for key in ("speedup_b1", "size_ratio", "worst_cosine", "task_drop")
        if summary[key] is not None
    }
    metrics.update(
        {
            f"speedup_batch_{batch}": value
            for batch, value in summary["speedup"].items()
            if hl.as_number(value) is not None
        }
    )
    for metric in hl.as_list(hl.task_metrics(report).get("metrics")):
        name = _MLFLOW_NAME.sub("_", hl.text(hl.as_dict(metric).get("name")).replace("@", "_at_"))
        for side in ("fp32", "compiled"):
            if name and hl.as_number(metric.get(side)) is not None:
                metrics[f"task.{name}.{side}"] = metric[side]
    with mlflow.start_run(run_name=hl.text(report.get("run_id")) or None) as run:
        mlflow.log_params(
            {
                "model": summary["model"],
                "target": summary["target"],
                "decision": summary["decision"],
                "edgeq_run_id": summary["run_id"],
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "edgeq/report.json")
        return run.info.run_id
