"""`edgeq sweep SWEEP.yaml -o OUT`: every run, the summary table, sweep.html and sweep.json."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from edgeq.errors import InputError, terminal_safe
from edgeq.sweep.html import write_sweep_html
from edgeq.sweep.run import run_sweep
from edgeq.sweep.runs import RunResult
from edgeq.sweep.spec import load_sweep
from edgeq.sweep.summary import HEADERS, table_rows


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output tree OUT/model/target/recipe/.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Compiles at a time on this machine.",
)
@click.option(
    "--ray", "ray_address", metavar="auto|ADDRESS", help="Run on a Ray cluster (pip install 'edgeq[ray]')."
)
@click.option("--no-cache", is_flag=True, help="Compute every stage afresh and store nothing ($EDGEQ_CACHE).")
def sweep_command(sweep_file: str, out: str, jobs: int, ray_address: str | None, no_cache: bool) -> None:
    """Compile every model × target × recipe of SWEEP_FILE; rerun to resume (complete runs are kept).

    \b
    Writes each run to OUT/<model>/<target>/<recipe>/ (recorded in the runs store), then
    OUT/sweep.html (per model: the Pareto front of speed, fidelity and size, the recommended run
    under the budget, the failed runs) and OUT/sweep.json. Latency measurements run one at a time
    per machine. Exit 2 when a run failed (after writing the summary).

    \b
    Examples:
      edgeq sweep examples/sweep/sweep.yaml -o out/sweep --jobs 2
      edgeq sweep examples/sweep/sweep.yaml -o out/sweep --ray auto
    """
    runs = load_sweep(sweep_file)
    folder = Path(out)
    click.echo(f"{len(runs)} runs", err=True)
    results = run_sweep(
        runs,
        folder,
        jobs=jobs,
        ray=ray_address,
        cache=not no_cache,
        show=lambda line: click.echo(terminal_safe(line), err=True),
    )
    print_table(results, folder)
    write_sweep_json(results, folder)
    click.echo(f"wrote {write_sweep_html(results, folder)}", err=True)
    failed = [r for r in results if r.error is not None]
    if failed:
        raise InputError(f"{len(failed)} of {len(results)} runs failed (reasons in {folder / 'sweep.html'})")


def print_table(results: list[RunResult], out: Path) -> None:
    table = Table(title="sweep")
    for header in HEADERS:
        table.add_column(header)
    for row in table_rows(results, out):
        table.add_row(*row)
    Console().print(table)


def write_sweep_json(results: list[RunResult], out: Path) -> Path:
    """The summary table as data: one object per run, keyed by the table's headers."""
    rows = [dict(zip(HEADERS, row, strict=True)) for row in table_rows(results, out)]
    path = out / "sweep.json"
    path.write_text(json.dumps({"runs": rows}, indent=2))
    return path
