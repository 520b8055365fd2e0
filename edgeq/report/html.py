"""report.json as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Every string taken from the report goes through `markup.el`, which escapes it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from edgeq.report import headline as hl
from edgeq.report.charts import (
    COMPILED_COLOR,
    FP32_COLOR,
    Bar,
    Distribution,
    Series,
    bar_chart,
    latency_distribution,
    line_chart,
)
from edgeq.report.headline import as_dict, as_list, as_number, text
from edgeq.report.markup import Child, Safe, el, fmt, fmt_bytes, table
from edgeq.report.schema import Report

_STYLE = Safe((Path(__file__).with_name("report.css")).read_text(encoding="utf-8"))
_NESTED_DIM = re.compile(r"^(?P<metric>.+)@(?P<dim>\d+)$")


def html_page(title: str, *body: Child, script: Safe | None = None) -> str:
    """A complete document around `body`; shared by the report and the dashboard."""
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
        el("body", el("main", *body), el("script", script) if script else None),
        lang="en",
    )


def render_html(report: dict) -> str:
    """The run's report page: headline first, then each measured section that is present."""
    report = as_dict(report)
    title = f"edgeq report · {hl.model_name(report)} on {hl.target_name(report)}"
    return html_page(title, _header(report), *(section(report) for section in _SECTIONS))


def write_html(report: Report, path: Path) -> Path:
    """Write the page next to report.json (or wherever asked) and return where it went."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report.to_dict()), encoding="utf-8")
    return path


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


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _header(report: dict) -> Safe:
    model, target = as_dict(report.get("model")), as_dict(report.get("target"))
    subtitle = " · ".join(
        part
        for part in (
            f"run {text(report.get('run_id'))}" if report.get("run_id") else "",
            text(report.get("created")),
            f"runtime {text(target.get('runtime'))}" if target.get("runtime") else "",
            f"edgeq {text(report.get('edgeq_version'))}" if report.get("edgeq_version") else "",
        )
        if part
    )
    return el(
        "header",
        el("h1", f"{hl.model_name(report)} → {hl.target_name(report)}"),
        el("p", subtitle, class_="sub"),
        el("p", f"{text(model.get('path'))}  sha256 {text(model.get('sha256'), '—')}", class_="sub"),
        class_="page",
    )


def _overview(report: dict) -> Safe:
    speedups = [
        f"{_times(as_number(row.get('speedup')))} at batch {fmt(row.get('batch'))}"
        for row in hl.latency_rows(report)
    ]
    ratio = hl.size_ratio(report)
    worst = hl.worst_output(report)
    task = hl.task_metrics(report)
    decision = as_dict(report.get("decision"))
    cards = [
        _card("speedup vs fp32", _times(hl.headline_speedup(report)), " · ".join(speedups)),
        _card(
            "size",
            _times(ratio),
            ""
            if ratio is None
            else f"{(1 - ratio) * 100:.0f}% smaller"
            f" · {fmt_bytes(as_dict(report.get('model')).get('bytes'))} → "
            f"{fmt_bytes(as_dict(report.get('artifact')).get('bytes'))}",
        ),
        _card(
            "worst fidelity",
            fmt(hl.worst_cosine(report), 4),
            f"cosine of output {text(worst.get('name'))}" if worst else "not measured",
        ),
        _card(
            "task drop",
            fmt(hl.task_drop(report), 2),
            f"worst primary metric, {text(task.get('task'))}" if task else "no task metric",
        ),
        _card("decision", text(decision.get("chosen"), "—"), text(decision.get("reason"))),
    ]
    return _section("overview", "Overview", el("div", cards, class_="cards"), _gates(report))


def _gates(report: dict) -> Safe | None:
    gates = [gate for gate in as_list(report.get("gates")) if isinstance(gate, dict)]
    if not gates:
        return None
    rows = [
        [
            text(g.get("name")),
            fmt(g.get("limit"), 4),
            fmt(g.get("value"), 4),
            el("span", "pass", class_="badge pass")
            if g.get("passed")
            else el("span", "FAIL", class_="badge fail"),
        ]
        for g in gates
    ]
    return el("div", el("h3", "Gates"), table(["gate", "limit", "value", "result"], rows))


def _distribution(name: str, color: str, side: object) -> Distribution:
    side = as_dict(side)
    samples = [v for v in (as_number(s) for s in as_list(side.get("samples_ms"))) if v is not None]
    return Distribution(
        name,
        color,
        samples,
        as_number(side.get("p50_ms")),
        as_number(side.get("p90_ms")),
        as_number(side.get("p99_ms")),
    )


def _latency(report: dict) -> Safe | None:
    rows = hl.latency_rows(report)
    if not rows:
        return None
    charts = [
        latency_distribution(
            f"batch {fmt(row.get('batch'))} · {fmt(row.get('threads'))} threads · "
            f"speedup {_times(as_number(row.get('speedup')))}",
            [
                _distribution("fp32", FP32_COLOR, row.get("fp32")),
                _distribution("compiled", COMPILED_COLOR, row.get("compiled")),
            ],
        )
        for row in rows
    ]
    table_rows = []
    for row in rows:
        fp32, compiled = as_dict(row.get("fp32")), as_dict(row.get("compiled"))
        table_rows.append(
            [
                fmt(row.get("batch")),
                fmt(row.get("threads")),
                fmt(row.get("rounds")),
                *(
                    fmt(side.get(key), 3)
                    for side in (fp32, compiled)
                    for key in ("p50_ms", "p90_ms", "p99_ms")
                ),
                _times(as_number(row.get("speedup"))),
            ]
        )
    headers = [
        "batch",
        "threads",
        "rounds",
        "fp32 p50 ms",
        "fp32 p90 ms",
        "fp32 p99 ms",
        "compiled p50 ms",
        "compiled p90 ms",
        "compiled p99 ms",
        "speedup",
    ]
    return _section(
        "latency",
        "Latency (measured on the artifact, fp32 interleaved)",
        el("div", charts, class_="charts"),
        table(headers, table_rows),
    )


def _size(report: dict) -> Safe | None:
    model, artifact = as_dict(report.get("model")), as_dict(report.get("artifact"))
    before, after = as_number(model.get("bytes")), as_number(artifact.get("bytes"))
    bars = [
        Bar(label, value / 2**20, fmt_bytes(value), color)
        for label, value, color in (
            ("fp32 model", before, FP32_COLOR),
            ("compiled artifact", after, COMPILED_COLOR),
        )
        if value is not None
    ]
    if not bars:
        return None
    details = _key_values(
        [
            ("format", text(artifact.get("format"))),
            ("artifact", text(artifact.get("path"))),
            ("files", ", ".join(text(f) for f in as_list(artifact.get("files")))),
        ]
    )
    return _section("size", "Size", bar_chart("model size", bars, "MiB, lower is better"), details)


def _accuracy(report: dict) -> Safe | None:
    accuracy = as_dict(report.get("accuracy"))
    outputs = [out for out in as_list(accuracy.get("outputs")) if isinstance(out, dict)]
    task = hl.task_metrics(report)
    if not outputs and not task:
        return None
    output_rows = [
        [
            text(o.get("name")),
            fmt(o.get("cosine"), 4),
            fmt(o.get("rel_l2"), 4),
            fmt(o.get("sqnr_db"), 1),
            fmt(o.get("max_abs"), 4),
            fmt(o.get("agreement"), 4),
        ]
        for o in outputs
    ]
    return _section(
        "accuracy",
        "Fidelity and task quality",
        el("p", f"{fmt(accuracy.get('samples'))} samples compared, fp32 vs compiled.", class_="sub"),
        table(["output", "cosine", "rel L2", "SQNR dB", "max |Δ|", "agreement"], output_rows)
        if outputs
        else None,
        _task(task) if task else el("p", "No task metric was measured for this model.", class_="sub"),
    )


def _task(task: dict) -> Safe:
    primary = {text(name) for name in as_list(task.get("primary"))}
    metrics = [m for m in as_list(task.get("metrics")) if isinstance(m, dict)]
    rows = [
        [
            text(m.get("name")) + (" ★" if text(m.get("name")) in primary else ""),
            fmt(m.get("fp32"), 2),
            fmt(m.get("compiled"), 2),
            fmt(m.get("drop"), 2),
            text(m.get("unit")),
            "higher" if m.get("higher_is_better", True) else "lower",
        ]
        for m in metrics
    ]
    details = as_dict(task.get("details"))
    return el(
        "div",
        el(
            "h3",
            f"Task: {text(task.get('task'), 'unnamed')} · worst primary drop "
            f"{fmt(task.get('worst_primary_drop'), 2)} (★ primary)",
        ),
        table(["metric", "fp32", "compiled", "drop", "unit", "better"], rows),
        el("div", _nested_dim_charts(metrics), class_="charts"),
        el(
            "details",
            el("summary", "task details"),
            el("pre", json.dumps(details, indent=2, default=str)),
        )
        if details
        else None,
    )


def _nested_dim_charts(metrics: list[dict]) -> list[Safe]:
    """For MRL metrics named `<metric>@<dim>`: quality vs nested embedding dim, fp32 vs compiled."""
    by_metric: dict[str, list[tuple[int, dict]]] = {}
    for metric in metrics:
        match = _NESTED_DIM.match(text(metric.get("name")))
        if match:
            by_metric.setdefault(match["metric"], []).append((int(match["dim"]), metric))
    charts = []
    for name, points in by_metric.items():
        if len(points) < 2:
            continue
        points.sort(key=lambda point: point[0])
        unit = text(points[0][1].get("unit"))
        series = [
            Series(side, [as_number(m.get(side)) for _, m in points], color)
            for side, color in (("fp32", FP32_COLOR), ("compiled", COMPILED_COLOR))
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


def _quantization(report: dict) -> Safe | None:
    quant = as_dict(report.get("quantization"))
    if not quant:
        return None
    calibration = as_dict(quant.get("calibration"))
    nodes = [n for n in as_list(quant.get("nodes")) if isinstance(n, dict)]
    counts = Counter(text(n.get("precision"), "?") for n in nodes)
    kept = [n for n in nodes if text(n.get("reason"))]
    layers = [layer for layer in as_list(quant.get("layers")) if isinstance(layer, dict)]
    return _section(
        "quantization",
        "Quantization",
        _key_values(
            [
                ("method", text(quant.get("method"))),
                ("calibration", " · ".join(f"{k} {_compact(v)}" for k, v in calibration.items())),
                ("nodes by precision", " · ".join(f"{p}: {c}" for p, c in counts.most_common())),
            ]
        ),
        el("h3", "Per-layer SQNR, worst first (culprits)") if layers else None,
        _culprit_table(layers) if layers else None,
        el("h3", "Nodes with a precision decision") if kept else None,
        table(["node", "op", "precision", "reason"], _node_rows(kept)) if kept else None,
        el(
            "details",
            el("summary", f"all {len(nodes)} nodes"),
            table(["node", "op", "precision", "reason"], _node_rows(nodes)),
        )
        if nodes
        else None,
    )


_LAYER_COLUMNS = (
    ("name", "layer"),
    ("op_type", "op"),
    ("tensor", "tensor"),
    ("sqnr_in_db", "SQNR in dB"),
    ("sqnr_db", "SQNR dB"),
    ("own_sqnr_db", "own SQNR dB"),
    ("sqnr_drop_db", "SQNR drop dB"),
    ("precision", "precision"),
)


def _culprit_table(layers: list[dict]) -> Safe:
    """Per-layer noise, in the report's order (worst first); only columns some layer reports."""
    columns = [(key, title) for key, title in _LAYER_COLUMNS if any(key in x for x in layers)]
    rows = [
        [fmt(x.get(key), 1) if key.endswith("_db") else text(x.get(key)) for key, _ in columns]
        for x in layers
    ]
    return table([title for _, title in columns], rows)


def _node_rows(nodes: list[dict]) -> list[list[Child]]:
    return [
        [
            text(n.get("name")),
            text(n.get("op_type")),
            text(n.get("precision")),
            text(n.get("reason")),
        ]
        for n in nodes
    ]


def _precision_plan(report: dict) -> Safe | None:
    plan = as_dict(report.get("precision_plan"))
    if not plan:
        return None
    comparison = [c for c in as_list(plan.get("comparison")) if isinstance(c, dict)]
    layers = [layer for layer in as_list(plan.get("layers")) if isinstance(layer, dict)]
    return _section(
        "precision-plan",
        "Precision plan",
        table(
            ["plan", "size ratio", "speedup", "task drop"],
            [
                [
                    text(c.get("plan")),
                    _times(as_number(c.get("size_ratio"))),
                    _times(as_number(c.get("speedup"))),
                    fmt(c.get("task_drop"), 2),
                ]
                for c in comparison
            ],
        )
        if comparison
        else None,
        table(
            ["layer", "precision"],
            [[text(x.get("name")), text(x.get("precision"))] for x in layers],
        )
        if layers
        else None,
    )


def _pruning(report: dict) -> Safe | None:
    pruning = as_dict(report.get("pruning"))
    if not pruning:
        return None
    totals = [
        [
            label,
            fmt(pruning.get(f"{key}_before")),
            fmt(pruning.get(f"{key}_after")),
            _ratio(pruning.get(f"{key}_after"), pruning.get(f"{key}_before")),
        ]
        for label, key in (("parameters", "params"), ("FLOPs", "flops"))
    ]
    layers = [layer for layer in as_list(pruning.get("layers")) if isinstance(layer, dict)]
    before, after = as_dict(pruning.get("task_before")), as_dict(pruning.get("task_after"))
    return _section(
        "pruning",
        "Pruning",
        _key_values([("method", text(pruning.get("method"))), ("threshold", pruning.get("threshold"))]),
        table(["", "before", "after", "kept"], totals),
        table(
            ["layer", "op", "channels before", "channels after", "params before", "params after"],
            [
                [
                    text(x.get("name")),
                    text(x.get("op_type")),
                    fmt(x.get("channels_before")),
                    fmt(x.get("channels_after")),
                    fmt(x.get("params_before")),
                    fmt(x.get("params_after")),
                ]
                for x in layers
            ],
        )
        if layers
        else None,
        table(
            ["task metric", "before pruning", "after pruning"],
            [
                [text(name), fmt(before.get(name), 2), fmt(after.get(name), 2)]
                for name in dict.fromkeys([*before, *after])
            ],
        )
        if before or after
        else None,
    )


def _ratio(after: object, before: object) -> str:
    a, b = as_number(after), as_number(before)
    return f"{a / b * 100:.1f}%" if a is not None and b else "—"


def _stages(report: dict) -> Safe | None:
    stages = [s for s in as_list(report.get("stages")) if isinstance(s, dict)]
    bars = [
        Bar(text(s.get("name")), seconds, f"{seconds:.2f} s", FP32_COLOR)
        for s in stages
        if (seconds := as_number(s.get("seconds"))) is not None
    ]
    if not bars:
        return None
    total = sum(bar.value for bar in bars)
    return _section(
        "stages",
        f"Stages ({total:.1f} s in all)",
        bar_chart("time per compile stage", bars, "seconds"),
    )


def _machine(report: dict) -> Safe | None:
    machine = as_dict(report.get("machine"))
    if not machine:
        return None
    versions = as_dict(machine.get("versions"))
    flags = ", ".join(text(f) for f in as_list(machine.get("flags")))
    others = [(text(k), v) for k, v in machine.items() if k not in ("flags", "versions")]
    return _section(
        "machine",
        "Machine",
        _key_values([*others, ("ISA flags", flags)]),
        table(["package", "version"], [[text(k), text(v)] for k, v in versions.items()])
        if versions
        else None,
    )


def _warnings(report: dict) -> Safe | None:
    warnings = [w for w in as_list(report.get("warnings")) if isinstance(w, dict)]
    if not warnings:
        return None
    return _section(
        "warnings",
        f"Warnings ({len(warnings)})",
        table(
            ["source", "message", "count"],
            [[text(w.get("source")), text(w.get("message")), fmt(w.get("count"))] for w in warnings],
        ),
    )


def _recipe(report: dict) -> Safe | None:
    recipe = report.get("recipe")
    if not recipe:
        return None
    return _section(
        "recipe",
        "Resolved recipe",
        el(
            "details",
            el("summary", "show recipe"),
            el("pre", json.dumps(recipe, indent=2, sort_keys=True, default=str)),
        ),
    )


_SECTIONS: tuple[Callable[[dict], Safe | None], ...] = (
    _overview,
    _latency,
    _size,
    _accuracy,
    _quantization,
    _precision_plan,
    _pruning,
    _stages,
    _machine,
    _warnings,
    _recipe,
)
