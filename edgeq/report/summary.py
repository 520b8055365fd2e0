"""The terminal view of a report: a few rich tables a person reads at a glance."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeq.report.gates import MEANING, verdict
from edgeq.report.schema import Report


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def print_summary(report: Report, console: Console | None = None) -> None:
    """Headline, latency per batch size, fidelity per output, task metrics, worst layers, gates."""
    console = console or Console()
    decision = report.decision.chosen
    console.print(
        f"[bold]{escape(report.model.name)}[/bold] → {escape(report.target.name)}  "
        f"artifact [cyan]{escape(report.artifact.path)}[/cyan] ({escape(decision)}), "
        f"size {report.artifact.bytes / 1024:.1f} KiB = {report.size_ratio:.2f}× fp32"
    )
    if decision != "int8-qdq":
        console.print(f"[yellow]{escape(report.decision.reason)}[/yellow]")

    if not report.latency:
        console.print(f"latency: {escape(report.latency_status or 'not measured here')}")
    latency = Table(title="latency (ms, median of interleaved rounds)")
    for column in ("batch", "fp32 p50", "compiled p50", "compiled p90", "speedup"):
        latency.add_column(column, justify="right")
    for e in report.latency:
        latency.add_row(
            str(e.batch),
            _fmt(e.fp32.p50_ms, ".3f"),
            _fmt(e.compiled.p50_ms, ".3f"),
            _fmt(e.compiled.p90_ms, ".3f"),
            f"{e.speedup:.2f}×",
        )
    if report.latency:
        console.print(latency)

    unit = "streams, state carried" if report.feeding and report.feeding.streams else "samples"
    fidelity = Table(title=f"fidelity vs fp32 ({report.accuracy.samples} held-out {unit})")
    for column in ("output", "cosine", "centered cos", "SQNR dB", "rel L2", "max abs", "agreement"):
        fidelity.add_column(column, justify="right")
    for o in report.outputs:
        fidelity.add_row(
            escape(o.name),
            _fmt(o.cosine, ".5f"),
            _fmt(o.centered_cosine, ".4f"),
            _fmt(o.sqnr_db, ".1f"),
            _fmt(o.rel_l2),
            _fmt(o.max_abs),
            _fmt(o.agreement),
        )
    console.print(fidelity)
    _print_kinds(report, console)

    if report.task is not None:
        task = Table(title=f"task: {escape(report.task.task)}")
        for column in ("metric", "fp32", "compiled", "drop"):
            task.add_column(column, justify="right")
        for m in report.task.metrics:
            mark = " *" if m.name in report.task.primary else ""
            task.add_row(
                escape(m.name) + mark, _fmt(m.fp32, ".3f"), _fmt(m.compiled, ".3f"), _fmt(m.drop, "+.3f")
            )
        console.print(task)

    layers = report.quantization.layers[:5]
    if layers:
        culprits = Table(title="layers adding the most noise (culprits first)")
        for column in ("node", "op", "SQNR in dB", "SQNR out dB", "own SQNR dB"):
            culprits.add_column(column, justify="right")
        for layer in layers:
            culprits.add_row(
                escape(layer.name),
                escape(layer.op_type),
                _fmt(layer.sqnr_in_db, ".1f"),
                _fmt(layer.sqnr_db, ".1f"),
                _fmt(layer.own_sqnr_db, ".1f"),
            )
        console.print(culprits)

    if report.sensitivity:
        ranking = Table(
            title="per-layer sensitivity (one layer quantized at a time; damage = task drop "
            "or 100·(1−cosine))"
        )
        for column in ("layer", "op", "params", "int4 damage", "int8 damage"):
            ranking.add_column(column, justify="right")
        for row in report.sensitivity[:10]:
            ranking.add_row(
                escape(row.name),
                escape(row.op_type),
                str(row.params),
                _fmt(row.sensitivity.get("int4"), ".3f"),
                _fmt(row.sensitivity.get("int8"), ".3f"),
            )
        console.print(ranking)

    if report.precision_plan:
        plan = Table(title="precision plans compared (measured)")
        for column in ("plan", "size", "slowest speedup", "task drop", "worst cosine", "in budget"):
            plan.add_column(column, justify="right")
        for row in report.precision_plan.comparison:
            plan.add_row(
                escape(row.plan),
                _fmt(row.size_ratio, ".3f"),
                _fmt(row.speedup, ".2f"),
                _fmt(row.task_drop, ".3f"),
                _fmt(row.worst_cosine, ".4f"),
                str(row.within_budget),
            )
        console.print(plan)

    if report.gates:
        colour = "green" if report.passed else "red"
        console.print(f"gates: [{colour}]{escape(verdict(report.gates))}[/{colour}]")
    for gate in report.gates:
        status = "[green]pass[/green]" if gate.passed else "[red]FAIL[/red]"
        value = "not measured" if gate.value is None else _fmt(gate.value)
        detail = f": {escape(gate.detail)}" if gate.detail else ""
        console.print(
            f"  {gate.name} ({MEANING[gate.name]}): {value} vs limit {gate.limit} → {status}{detail}"
        )


def _print_kinds(report: Report, console: Console) -> None:
    """Each output's recognised kind and why, then every candidate's kind metrics and verdict."""
    if not report.accuracy.kinds:
        return
    kinds = Table(title="output kinds (each judged by its own metric)")
    for column in ("output", "kind", "why"):
        kinds.add_column(column)
    for kind in report.accuracy.kinds:
        kinds.add_row(escape(kind.name), kind.kind, escape(kind.reason))
    console.print(kinds)
    candidates = [c for c in report.decision.candidates if c.metrics]
    if not candidates:
        return
    columns = list(dict.fromkeys(report.metric_label(m) for m in candidates[0].metrics))
    table = Table(title="candidates by kind metric (vs fp32)")
    for column in ("candidate", *columns, "in budget"):
        table.add_column(escape(column), justify="right")
    for c in candidates:
        values = {report.metric_label(m): m.value for m in c.metrics}
        chosen = " (chosen)" if c.name == report.decision.chosen else ""
        cells = [_fmt(values.get(column)) for column in columns]
        table.add_row(escape(c.name + chosen), *cells, "yes" if c.within_budget else "no")
    console.print(table)
