"""The typed report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Every string taken from the report goes through `markup.el`, which escapes it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.tasks import TaskMetric, TaskResult
from edgeq.passes.ifm.summary import PruneSearch
from edgeq.report.charts import (
    COMPILED_COLOR,
    FP32_COLOR,
    Bar,
    Distribution,
    Series,
    TradeoffPoint,
    bar_chart,
    latency_distribution,
    line_chart,
    tradeoff_chart,
)
from edgeq.report.gates import MEANING, verdict
from edgeq.report.markup import Child, Safe, el, fmt, fmt_bytes, fmt_times, table
from edgeq.report.schema import Report
from edgeq.runtime.timing import LatencyStats

_STYLE = Safe((Path(__file__).with_name("report.css")).read_text(encoding="utf-8"))
_NESTED_DIM = re.compile(r"^(?P<metric>.+)@(?P<dim>\d+)$")


def html_page(title: str, *body: Child, script: Safe | None = None, wide: bool = False) -> str:
    """A complete document around `body`; shared by the report and the dashboard (`wide`: the
    whole window, for its many-column table)."""
    head = el(
        "head",
        Safe('<meta charset="utf-8">'),
        Safe('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        el("title", title),
        el("style", _STYLE),
    )
    return "<!DOCTYPE html>\n" + el(
        "html",
        head,
        el(
            "body",
            el("main", *body, class_="wide" if wide else None),
            el("script", script) if script else None,
        ),
        lang="en",
    )


def render_html(report: Report) -> str:
    """The run's report page: headline first, then each measured section that is present."""
    title = f"edgeq report · {report.model.name} on {report.target.name}"
    return html_page(title, _header(report), *(section(report) for section in _SECTIONS))


def write_html(report: Report, path: Path) -> Path:
    """Write the page next to report.json (or wherever asked) and return where it went."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path


def verdict_badge(text: str | None) -> Safe:
    """A gates verdict (`edgeq.report.gates.verdict`) as the badge the report and the dashboard show."""
    if text is None:
        return el("span", "no gates", class_="sub")
    return el("span", text, class_="badge pass" if text == "pass" else "badge fail")


def _section(anchor: str, title: str, *content: Child) -> Safe:
    return el("section", el("h2", title), *content, id=anchor)


def _key_values(pairs: list[tuple[str, object]]) -> Safe:
    """A definition list, skipping values that were not reported."""
    items = [
        (el("dt", key), el("dd", value if isinstance(value, str) else _compact(value)))
        for key, value in pairs
        if value not in (None, "", [], {})
    ]
    return el("dl", items, class_="kv")


def _compact(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return fmt(value, 4)


def _card(label: str, value: str, note: str = "") -> Safe:
    return el(
        "div",
        el("div", label, class_="label"),
        el("div", value, class_="value"),
        el("div", note, class_="note"),
        class_="card",
    )


def _header(report: Report) -> Safe:
    subtitle = " · ".join(
        (
            f"run {report.run_id}",
            report.created,
            f"runtime {report.target.runtime}",
            f"edgeq {report.edgeq_version}",
        )
    )
    return el(
        "header",
        el("h1", f"{report.model.name} → {report.target.name}"),
        el("p", subtitle, class_="sub"),
        el("p", f"{report.model.path or ''}  sha256 {report.model.sha256}", class_="sub"),
        class_="page",
    )


def _overview(report: Report) -> Safe:
    entries = sorted(report.latency, key=lambda e: e.batch)
    headline = report.headline_latency
    worst = report.worst_output
    decision = report.decision
    cards = [
        _card(
            "speedup vs fp32",
            fmt_times(headline.speedup if headline else None),
            " · ".join(f"{fmt_times(e.speedup)} at batch {e.batch}" for e in entries)
            or report.latency_status
            or "not measured",
        ),
        _card(
            "size",
            fmt_times(report.size_ratio),
            f"{(1 - report.size_ratio) * 100:.0f}% smaller · {fmt_bytes(report.model.bytes)} → "
            f"{fmt_bytes(report.artifact.bytes)}",
        ),
        _card(
            "worst fidelity",
            fmt(report.worst_cosine, 4),
            f"cosine of output {worst.name}" if worst else "not measured",
        ),
        _card(
            "task drop",
            fmt(report.task_drop, 2),
            f"worst primary metric, {report.task.task}" if report.task else "no task metric",
        ),
        _card("decision", decision.chosen, decision.reason),
    ]
    pending = (
        el("details", el("summary", f"engine: {decision.engine}"), el("pre", decision.finish_later))
        if decision.engine_pending
        else None
    )
    return _section("overview", "Overview", el("div", cards, class_="cards"), pending, _gates(report))


def _gates(report: Report) -> Safe | None:
    if not report.gates:
        return None
    rows = [
        [
            g.name,
            MEANING[g.name],
            fmt(g.limit, 4),
            fmt(g.value, 4) if g.value is not None else "not measured",
            verdict_badge("pass" if g.passed else "FAIL"),
        ]
        for g in report.gates
    ]
    return el(
        "div",
        el("h3", "Gates ", verdict_badge(verdict(report.gates))),
        table(["gate", "means", "limit", "value", "result"], rows),
    )


def _distribution(name: str, color: str, stats: LatencyStats) -> Distribution:
    return Distribution(name, color, stats.samples_ms, stats.p50_ms, stats.p90_ms, stats.p99_ms)


def _latency(report: Report) -> Safe | None:
    entries = sorted(report.latency, key=lambda e: e.batch)
    if not entries:
        if report.latency_status is None:
            return None
        return _section("latency", "Latency", el("p", report.latency_status, class_="sub"))
    charts = [
        latency_distribution(
            f"batch {e.batch} · {e.threads} threads · speedup {fmt_times(e.speedup)}",
            [
                _distribution("fp32", FP32_COLOR, e.fp32),
                _distribution("compiled", COMPILED_COLOR, e.compiled),
            ],
        )
        for e in entries
    ]
    rows = [
        [
            fmt(e.batch),
            fmt(e.threads),
            fmt(e.rounds),
            *(
                fmt(value, 3)
                for stats in (e.fp32, e.compiled)
                for value in (stats.p50_ms, stats.p90_ms, stats.p99_ms)
            ),
            fmt_times(e.speedup),
        ]
        for e in entries
    ]
    headers = ["batch", "threads", "rounds"]
    headers += [f"{side} {p} ms" for side in ("fp32", "compiled") for p in ("p50", "p90", "p99")]
    return _section(
        "latency",
        "Latency (measured on the artifact, fp32 interleaved)",
        el("div", charts, class_="charts"),
        table([*headers, "speedup"], rows),
    )


def _candidates(report: Report) -> Safe | None:
    candidates = report.decision.candidates
    if not candidates:
        return None
    batches = sorted({batch for c in candidates for batch in c.speedups})
    rows = [
        [
            c.name + (" (chosen)" if c.name == report.decision.chosen else ""),
            *(fmt_times(c.speedups.get(batch)) for batch in batches),
            fmt(c.worst_cosine, 4),
            fmt(c.task_drop, 2),
            "; ".join(f"{report.metric_label(m)} {fmt(m.value, 4)}" for m in c.metrics),
            fmt_times(c.size_ratio),
            "yes" if c.within_budget else "no",
            c.problem or "",
        ]
        for c in candidates
    ]
    headers = ["candidate", *(f"speedup b{batch}" for batch in batches)]
    headers += ["worst cosine", "task drop", "kind metrics", "size", "within budget", "problem"]
    kinds = "; ".join(f"{k.name}: {k.kind} ({k.reason})" for k in report.accuracy.kinds)
    noise = " · ".join(f"batch {b}: ±{v * 100:.1f}%" for b, v in sorted(report.decision.timing_noise.items()))
    return _section(
        "candidates",
        "Candidates compared",
        el("p", f"timing noise {noise}", class_="sub") if noise else None,
        el("p", f"output kinds: {kinds}", class_="sub") if kinds else None,
        table(headers, rows),
    )


def _tradeoff(report: Report) -> Safe | None:
    """The candidates on one speed-vs-fidelity chart: the model's own metric when every candidate
    has one (task drop), else output cosine, with the accuracy budget the choice was held to."""
    candidates = [c for c in report.decision.candidates if c.speedups]
    if len(candidates) < 2:
        return None
    by_task = report.task is not None and all(c.task_drop is not None for c in candidates)
    budget = (report.recipe or {}).get("budget", {})
    points = [
        TradeoffPoint(
            c.name,
            min(c.speedups.values()),
            c.task_drop if by_task else c.worst_cosine,
            c.name == report.decision.chosen,
            c.within_budget,
        )
        for c in candidates
    ]
    caption = "task drop" if by_task else "worst output cosine"
    chart = tradeoff_chart(
        "speed vs fidelity of every candidate",
        points,
        caption,
        higher_is_better=not by_task,
        budget=budget.get("max_drop" if by_task else "min_cosine"),
    )
    return _section("tradeoff", "Speed vs fidelity of the candidates", el("div", chart, class_="charts"))


def _size(report: Report) -> Safe:
    bars = [
        Bar("fp32 model", report.model.bytes / 2**20, fmt_bytes(report.model.bytes), FP32_COLOR),
        Bar(
            "compiled artifact",
            report.artifact.bytes / 2**20,
            fmt_bytes(report.artifact.bytes),
            COMPILED_COLOR,
        ),
    ]
    details = _key_values(
        [
            ("format", report.artifact.format),
            ("artifact", report.artifact.path),
            ("files", ", ".join(report.artifact.files)),
        ]
    )
    return _section("size", "Size", bar_chart("model size", bars, "MiB, lower is better"), details)


def _output_table(outputs: list[OutputFidelity]) -> Safe:
    rows = [
        [
            o.name,
            fmt(o.cosine, 4),
            fmt(o.rel_l2, 4),
            fmt(o.sqnr_db, 1),
            fmt(o.max_abs, 4),
            fmt(o.agreement, 4),
        ]
        for o in outputs
    ]
    return table(["output", "cosine", "rel L2", "SQNR dB", "max |Δ|", "agreement"], rows)


def _accuracy(report: Report) -> Safe:
    return _section(
        "accuracy",
        "Fidelity and task quality",
        el("p", f"{report.accuracy.samples} samples compared, fp32 vs compiled.", class_="sub"),
        _output_table(report.outputs) if report.outputs else None,
        _task(report.task)
        if report.task
        else el("p", "No task metric was measured for this model.", class_="sub"),
    )


def _task(task: TaskResult) -> Safe:
    rows = [
        [
            m.name + (" ★" if m.name in task.primary else ""),
            fmt(m.fp32, 2),
            fmt(m.compiled, 2),
            fmt(m.drop, 2),
            m.unit,
            "higher" if m.higher_is_better else "lower",
        ]
        for m in task.metrics
    ]
    return el(
        "div",
        el("h3", f"Task: {task.task} · worst primary drop {fmt(task.worst_primary_drop, 2)} (★ primary)"),
        table(["metric", "fp32", "compiled", "drop", "unit", "better"], rows),
        el("div", _nested_dim_charts(task.metrics), class_="charts"),
        el(
            "details",
            el("summary", "task details"),
            el("pre", json.dumps(task.details, indent=2, default=str)),
        )
        if task.details
        else None,
    )


def _nested_dim_charts(metrics: list[TaskMetric]) -> list[Safe]:
    """For MRL metrics named `<metric>@<dim>`: quality vs nested embedding dim, fp32 vs compiled."""
    by_metric: dict[str, list[tuple[int, TaskMetric]]] = {}
    for metric in metrics:
        match = _NESTED_DIM.match(metric.name)
        if match:
            by_metric.setdefault(match["metric"], []).append((int(match["dim"]), metric))
    charts = []
    for name, points in by_metric.items():
        if len(points) < 2:
            continue
        points.sort(key=lambda point: point[0])
        unit = points[0][1].unit
        series = [
            Series("fp32", [m.fp32 for _, m in points], FP32_COLOR),
            Series("compiled", [m.compiled for _, m in points], COMPILED_COLOR),
        ]
        charts.append(
            line_chart(
                f"{name} vs nested dim",
                [str(dim) for dim, _ in points],
                series,
                "nested embedding dimension",
                f"{name} ({unit})" if unit else name,
            )
        )
    return charts


def _quantization(report: Report) -> Safe:
    quant = report.quantization
    calibration = quant.calibration
    kept = [n for n in quant.nodes if n.reason]
    qat = quant.qat
    return _section(
        "quantization",
        "Quantization",
        _key_values(
            [
                ("method", quant.method),
                (
                    "calibration",
                    f"{calibration.method} · {calibration.samples} samples" if calibration else None,
                ),
                ("nodes by precision", " · ".join(f"{p}: {c}" for p, c in quant.counts.items())),
                ("target problems", "; ".join(quant.target_problems)),
                ("TensorRT placement", "; ".join(quant.tensorrt_violations or [])),
                (
                    "QAT check",
                    f"{qat.metric}: simulated {fmt(qat.simulated, 2)}, measured {fmt(qat.measured, 2)}, "
                    f"gap {fmt(qat.gap, 2)} (tolerance {fmt(qat.tolerance, 2)})"
                    + (" FLAGGED" if qat.flagged else "")
                    if qat
                    else None,
                ),
            ]
        ),
        el("h3", "Per-layer SQNR, worst first (culprits)") if quant.layers else None,
        table(
            ["layer", "op", "tensor", "precision", "SQNR in dB", "SQNR dB", "own SQNR dB"],
            [
                [
                    x.name,
                    x.op_type,
                    x.tensor,
                    x.precision,
                    fmt(x.sqnr_in_db, 1),
                    fmt(x.sqnr_db, 1),
                    fmt(x.own_sqnr_db, 1),
                ]
                for x in quant.layers
            ],
        )
        if quant.layers
        else None,
        el("h3", "Nodes with a precision decision") if kept else None,
        table(["node", "op", "precision", "reason"], _node_rows(kept)) if kept else None,
        el(
            "details",
            el("summary", f"all {len(quant.nodes)} nodes"),
            table(["node", "op", "precision", "reason"], _node_rows(quant.nodes)),
        )
        if quant.nodes
        else None,
    )


def _node_rows(nodes: list) -> list[list[Child]]:
    return [[n.name, n.op_type, n.precision, n.reason] for n in nodes]


def _precision_plan(report: Report) -> Safe | None:
    plan = report.precision_plan
    if plan is None:
        return None
    comparison = [
        [c.plan, fmt_times(c.size_ratio), fmt_times(c.speedup), fmt(c.task_drop, 2), fmt(c.worst_cosine, 4)]
        for c in plan.comparison
    ]
    layers = [
        [
            g.name,
            g.op_type,
            fmt(g.params),
            plan.precisions.get(g.name, "—"),
            *(fmt(g.sensitivity.get(p), 3) for p in ("int4", "int8")),
        ]
        for g in plan.layers
    ]
    return _section(
        "precision-plan",
        "Precision plan",
        el("p", f"weights {fmt_bytes(plan.weight_bytes)} as planned", class_="sub"),
        table(["plan", "size ratio", "slowest speedup", "task drop", "worst cosine"], comparison)
        if comparison
        else None,
        table(["layer", "op", "params", "precision", "int4 damage", "int8 damage"], layers)
        if layers
        else None,
    )


def _sensitivity(report: Report) -> Safe | None:
    if not report.sensitivity or report.precision_plan is not None:
        return None  # a precision plan lists the same groups with their damage
    rows = [
        [g.name, g.op_type, fmt(g.params), *(fmt(g.sensitivity.get(p), 3) for p in ("int4", "int8"))]
        for g in report.sensitivity
    ]
    return _section(
        "sensitivity",
        "Per-layer sensitivity (one layer quantized at a time)",
        table(["layer", "op", "params", "int4 damage", "int8 damage"], rows),
    )


def _pruning(report: Report) -> Safe | None:
    pruning = report.pruning
    if pruning is None:
        return None
    summary, search = pruning.summary, pruning.search
    totals = [
        [label, fmt(before), fmt(after), f"{after / before * 100:.1f}%" if before else "—"]
        for label, before, after in (
            ("parameters", summary.parameters_before, summary.parameters_after),
            ("FLOPs", summary.flops_before, summary.flops_after),
            *([("bytes", search.bytes_before, search.bytes_after)] if search else []),
        )
    ]
    layers = [
        [
            x.node,
            x.op_type,
            fmt(x.channels_before),
            fmt(x.channels_after),
            fmt(x.parameters_before),
            fmt(x.parameters_after),
            fmt(x.lossless_merged),
            fmt(x.similar_merged),
            x.note,
        ]
        for x in summary.layers
        if x.channels_after != x.channels_before or x.note
    ]
    task = pruning.accuracy.task
    return _section(
        "pruning",
        "Pruning",
        _key_values(
            [
                ("method", pruning.method),
                ("threshold", summary.threshold),
                ("max ratio", summary.max_ratio),
                ("passes", summary.passes),
                ("channels merged", summary.channels_merged),
                ("FLOPs not counted for", ", ".join(summary.flops_unknown_layers)),
                *_search_values(search),
            ]
        ),
        table(["", "before", "after", "kept"], totals),
        table(
            ["β", "max ratio tried", "channels merged", "params kept", "worst cosine", "task drop"]
            + ["verdict"],
            [
                [fmt(t.threshold, 2), fmt(t.max_ratio, 2), fmt(t.channels_merged)]
                + [f"{100 * t.parameters_kept:.1f}%", fmt(t.worst_cosine, 4), fmt(t.task_drop, 2)]
                + [t.problem or "fits"]
                for t in search.trials
            ],
        )
        if search
        else None,
        table(
            ["layer", "op", "channels before", "channels after", "params before", "params after"]
            + ["identical merged", "similar merged", "note"],
            layers,
        )
        if layers
        else el("p", "No layer lost channels.", class_="sub"),
        el("h3", "Pruned model vs fp32 (before quantization)"),
        _output_table(pruning.accuracy.outputs) if pruning.accuracy.outputs else None,
        table(
            ["task metric", "fp32", "pruned", "drop"],
            [[m.name, fmt(m.fp32, 2), fmt(m.compiled, 2), fmt(m.drop, 2)] for m in task.metrics],
        )
        if task
        else None,
    )


def _search_values(search: PruneSearch | None) -> list[tuple[str, object]]:
    """How the merge amount was measured (docs/pruning.md): trials as max_ratio → problem or fits."""
    if search is None:
        return []
    return [
        ("chosen max ratio", search.chosen_max_ratio),
        ("chosen threshold", search.chosen_threshold),
        ("kept unpruned because", search.kept_unpruned_because),
        ("budget share for pruning", search.budget_share),
        ("identical merges reproduce outputs", search.lossless_verified),
    ]


def _engine(report: Report) -> Safe | None:
    if not report.engine:
        return None
    return _section(
        "engine",
        "TensorRT engine",
        _key_values([(str(key), value) for key, value in report.engine.items()]),
    )


def _stages(report: Report) -> Safe | None:
    if not report.stages:
        return None
    bars = [Bar(s.name, s.seconds, f"{s.seconds:.2f} s", FP32_COLOR) for s in report.stages]
    total = sum(s.seconds for s in report.stages)
    return _section(
        "stages",
        f"Stages ({total:.1f} s in all)",
        bar_chart("time per compile stage", bars, "seconds"),
    )


def _machine(report: Report) -> Safe:
    machine = report.machine
    pairs = [(f.name, getattr(machine, f.name)) for f in dataclasses.fields(machine)]
    return _section(
        "machine",
        "Machine",
        _key_values([(name, value) for name, value in pairs if name not in ("flags", "versions")]),
        _key_values([("ISA flags", ", ".join(machine.flags))]),
        table(["package", "version"], [[k, v or "—"] for k, v in machine.versions.items()])
        if machine.versions
        else None,
    )


def _feeding(report: Report) -> Safe | None:
    """How each input was fed (batch axis, constant, carried state) and what one timed call is."""
    if report.feeding is None:
        return None
    rows = [[i.name, i.how, i.source] for i in report.feeding.inputs]
    unit = "streams (state carried frame to frame)" if report.feeding.streams else "samples"
    return _section(
        "feeding",
        "How the model was fed",
        table(["input", "fed as", "role"], rows),
        _key_values([("data", unit), ("latency", report.feeding.latency)]),
    )


def _warnings(report: Report) -> Safe | None:
    if not report.warnings:
        return None
    return _section(
        "warnings",
        f"Warnings ({len(report.warnings)})",
        table(["source", "message", "count"], [[w.source, w.message, fmt(w.count)] for w in report.warnings]),
    )


def _recipe(report: Report) -> Safe | None:
    if not report.recipe:
        return None
    return _section(
        "recipe",
        "Resolved recipe",
        el(
            "details",
            el("summary", "show recipe"),
            el("pre", json.dumps(report.recipe, indent=2, sort_keys=True, default=str)),
        ),
    )


_SECTIONS: tuple[Callable[[Report], Safe | None], ...] = (
    _overview,
    _latency,
    _candidates,
    _tradeoff,
    _size,
    _accuracy,
    _feeding,
    _quantization,
    _precision_plan,
    _sensitivity,
    _pruning,
    _engine,
    _stages,
    _machine,
    _warnings,
    _recipe,
)
