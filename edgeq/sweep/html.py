"""sweep.html: per model the speed/fidelity chart with its Pareto front, every run, and the failures."""

from __future__ import annotations

from pathlib import Path

from edgeq.report.charts import ScatterPoint, scatter_chart
from edgeq.report.html import html_page
from edgeq.report.markup import Safe, el, table
from edgeq.sweep.runs import REPORT, RunResult
from edgeq.sweep.summary import HEADERS, Point, failures, model_points, table_rows


def write_sweep_html(results: list[RunResult], out: Path) -> Path:
    by_model = model_points(results, out)
    sections = [_model_section(name, points) for name, points in by_model.items()]
    failed = failures(results)
    if failed:
        rows = [[r.run.label, r.error] for r in failed]
        sections.append(el("section", el("h2", "Failed runs"), table(["run", "reason"], rows), id="failed"))
    rows = table_rows(results, out)
    sections.append(el("section", el("h2", "Every run"), table(HEADERS, rows), id="runs"))
    header = el("header", el("h1", f"Sweep: {len(results)} runs, {len(failed)} failed"))
    path = out / "sweep.html"
    path.write_text(html_page("edgeq sweep", header, *sections), encoding="utf-8")
    return path


def _model_section(name: str, points: list[Point]) -> Safe:
    measured = [p for p in points if p.speedup is not None]
    fidelity = points[0].fidelity_name
    chart = scatter_chart(
        f"{name}: speedup vs {fidelity}",
        [
            ScatterPoint(
                p.speedup,
                p.fidelity,
                f"{p.result.run.target_name} / {p.result.run.recipe_name}" + (" ★" if p.recommended else ""),
                p.on_front,
                href=str(p.result.run.folder / REPORT.replace(".json", ".html")),
            )
            for p in measured
        ],
        "speedup vs fp32, slowest batch (×, higher is better)",
        f"{fidelity} ({'lower' if fidelity == 'task drop' else 'higher'} is better)",
    )
    best = next((p for p in points if p.recommended), None)
    verdict = (
        f"recommended: {best.result.run.target_name} / {best.result.run.recipe_name} ({best.chosen})"
        if best
        else "no run is within its accuracy budget"
    )
    front = [p for p in points if p.on_front]
    rows = [
        [
            p.result.run.target_name,
            p.result.run.recipe_name,
            p.chosen,
            _speed(p),
            f"{p.fidelity:.4g}",
            f"{p.size_ratio:.3f}",
        ]
        for p in front
    ]
    headers = ["target", "recipe", "chosen", "speedup", fidelity, "size vs fp32"]
    return el(
        "section",
        el("h2", name),
        el("p", verdict),
        chart if measured else el("p", "latency not measured on these targets"),
        el("h3", "Pareto front (speed, fidelity, size)"),
        table(headers, rows),
    )


def _speed(p: Point) -> str:
    return f"{p.speedup:.2f}x" if p.speedup is not None else "not measured"
