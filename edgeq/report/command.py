"""`edgeq report OUT`: a compile's report checked in CI, its gates recomputed and more asked for."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeq.errors import InputError
from edgeq.recipe import Gates
from edgeq.report.gates import MEANING, Gate, evaluate_gates, verdict
from edgeq.report.markup import fmt_times
from edgeq.report.read import load_report
from edgeq.report.schema import Report, json_safe

_GATE_HELP = "Exit 3 when the {} (as in `edgeq compile`)."


def report_summary(report: Report) -> dict[str, Any]:
    """The headline numbers a CI job reads, in one flat dict."""
    headline = report.headline_latency
    return {
        "run_id": report.run_id,
        "model": report.model.name,
        "target": report.target.name,
        "decision": report.decision.chosen,
        "speedup": {str(e.batch): e.speedup for e in sorted(report.latency, key=lambda e: e.batch)},
        "speedup_b1": headline.speedup if headline else None,
        "slowest_speedup": report.slowest_speedup,
        "latency_status": report.latency_status,
        "size_ratio": report.size_ratio,
        "worst_cosine": report.worst_cosine,
        "task_drop": report.task_drop,
    }


def checked_gates(report: Report, asked: Gates) -> list[tuple[str, Gate]]:
    """The compile's gates (already recomputed when the report was read) and the ones asked for now."""
    return [("compile", gate) for gate in report.gates] + [
        ("command line", gate) for gate in evaluate_gates(report, asked)
    ]


@click.command("report")
@click.argument("report_path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for CI.")
@click.option("--max-drop", type=float, help=_GATE_HELP.format("worst primary task drop is above this"))
@click.option(
    "--min-speedup",
    type=float,
    help=_GATE_HELP.format("slowest speedup over the measured batch sizes is below this"),
)
@click.option("--min-cosine", type=float, help=_GATE_HELP.format("worst output cosine vs fp32 is below this"))
@click.pass_context
def report_command(
    ctx: click.Context,
    report_path: Path,
    as_json: bool,
    max_drop: float | None,
    min_speedup: float | None,
    min_cosine: float | None,
) -> None:
    """Summarise a compile's report.json and check gates: exit 3 when one fails, 2 on a bad report.

    The compile's own gates are evaluated again from the report's values and their limits (a
    verdict stored in the file is never trusted); gates given here are added. An unmeasured value
    (no task, latency not measured on the target) fails its gate.
    """
    report = load_report(report_path)  # a bad report raises InputError: one line, exit 2
    try:
        asked = Gates(max_drop, min_speedup, min_cosine)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    gates = checked_gates(report, asked)
    passed = all(gate.passed for _, gate in gates)
    if as_json:
        rows = [dataclasses.asdict(gate) | {"source": source} for source, gate in gates]
        summary = report_summary(report) | {"gates": rows, "passed": passed}
        click.echo(json.dumps(json_safe(summary), indent=2, allow_nan=False))
    else:
        _print_summary(report, gates)
    ctx.exit(0 if passed else 3)


def _print_summary(report: Report, gates: list[tuple[str, Gate]]) -> None:
    console = Console()
    summary = report_summary(report)
    title = f"{summary['model']} → {summary['target']}  (run {summary['run_id']})"
    table = Table(title=escape(title))
    table.add_column("measure")
    table.add_column("value", justify="right")
    for batch, speedup in summary["speedup"].items():
        table.add_row(f"speedup at batch {batch}", fmt_times(speedup))
    if report.latency_status:
        table.add_row("latency", escape(report.latency_status))
    table.add_row("size ratio", fmt_times(summary["size_ratio"]))
    table.add_row("worst output cosine", _number(summary["worst_cosine"], 4))
    table.add_row("worst primary task drop", _number(summary["task_drop"], 2))
    table.add_row("decision", escape(summary["decision"]))
    console.print(table)
    if gates:
        gate_table = Table(title=f"gates: {verdict([gate for _, gate in gates])}")
        for column in ("gate", "means", "limit", "value", "result", "from"):
            gate_table.add_column(column)
        for source, gate in gates:
            result = "[green]pass[/green]" if gate.passed else "[bold red]FAIL[/bold red]"
            gate_table.add_row(
                gate.name, MEANING[gate.name], _number(gate.limit, 4), _number(gate.value, 4), result, source
            )
        console.print(gate_table)


def _number(value: float | None, digits: int) -> str:
    return "not measured" if value is None else f"{value:.{digits}f}"
