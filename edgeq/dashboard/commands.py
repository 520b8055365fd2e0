"""`edgeq dashboard`, and the MLflow hook the compile calls after a run."""

from __future__ import annotations

import re
import secrets
import sqlite3
import webbrowser
from pathlib import Path

import click

from edgeq.dashboard.server import DEFAULT_HOST, DEFAULT_PORT, create_server, is_loopback
from edgeq.errors import InputError
from edgeq.report.command import report_summary
from edgeq.report.schema import Report
from edgeq.store.runs import RunStore, RunSummary, StoreError

_MLFLOW_NAME = re.compile(r"[^\w\-./ ]")
MLFLOW_MISSING = "--mlflow needs mlflow: pip install 'edgeq[mlflow]' (or pip install mlflow)"


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
@click.option(
    "--token",
    help="Secret every request must carry (header, cookie or ?token=); generated and printed when "
    "--host is not loopback.",
)
@click.option("--open/--no-open", "open_browser", default=True, help="Open it in a browser.")
def dashboard_command(
    runs_path: Path | None, host: str, port: int, token: str | None, open_browser: bool
) -> None:
    """Serve the runs dashboard (runs table, latency history, speed vs quality) until Ctrl-C."""
    if token is not None and len(token) < 16:
        raise InputError("--token must be at least 16 characters")
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    try:
        server = create_server(RunStore(runs_path), host, port, token)
    except (StoreError, sqlite3.Error, OSError) as error:  # sqlite3: a file that is not a database
        raise InputError(f"cannot start the dashboard on {host}:{port}: {error}") from None
    url = f"http://{host}:{server.server_address[1]}/" + (f"?token={token}" if token else "")
    click.echo(f"edgeq dashboard at {url}  (runs: {server.store.path}; Ctrl-C stops it)")
    if not is_loopback(host):
        click.echo(
            "warning: listening beyond this machine; only requests carrying the token are answered",
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


def mlflow_metrics(report: Report) -> dict[str, float]:
    """The report's headline and task numbers under MLflow-safe names (unmeasured ones left out)."""
    summary = report_summary(report)
    metrics = {
        key: summary[key]
        for key in ("speedup_b1", "slowest_speedup", "size_ratio", "worst_cosine", "task_drop")
        if summary[key] is not None
    }
    metrics |= {f"speedup_batch_{batch}": value for batch, value in summary["speedup"].items()}
    for metric in report.task.metrics if report.task else []:
        name = _MLFLOW_NAME.sub("_", metric.name.replace("@", "_at_"))
        metrics |= {f"task.{name}.fp32": metric.fp32, f"task.{name}.compiled": metric.compiled}
    return metrics


def log_to_mlflow(report: Report) -> str:
    """Log headline metrics, params and the full report to the active MLflow tracking URI.

    The params carry what makes runs comparable (model content hash, recipe hash, bits, mode,
    pruning), so MLflow's own run comparison can group like with like."""
    try:
        import mlflow
    except ImportError:
        raise InputError(MLFLOW_MISSING) from None
    summary = RunSummary.of(report, None)
    params = {
        "model": report.model.name,
        "model_sha256": report.model.sha256,
        "target": report.target.name,
        "recipe_hash": summary.recipe_hash,
        "bits": summary.bits,
        "mode": summary.mode,
        "prune": summary.prune or "no",
        "decision": report.decision.chosen,
        "gates": summary.gates_verdict or "no gates",
        "edgeq_run_id": report.run_id,
    }
    try:
        with mlflow.start_run(run_name=report.run_id) as run:
            mlflow.log_params({key: value for key, value in params.items() if value is not None})
            mlflow.log_metrics(mlflow_metrics(report))
            mlflow.log_dict(report.to_dict(), "edgeq/report.json")
            return run.info.run_id
    except Exception as exc:  # noqa: BLE001 - MLflow's store and URI errors are many types; the user needs its words
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        where = mlflow.get_tracking_uri()
        raise InputError(
            f"MLflow logging to {where} failed: {first} (the compile's outputs are written)"
        ) from None
