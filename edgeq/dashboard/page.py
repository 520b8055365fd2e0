"""The dashboard page: runs compared like with like (one series = one model content, target and
recipe), with recipe columns, gate results, sortable and filterable by any column, and a Pareto
front per model. Rendered server-side; the one script only sorts and filters rows in place."""

from __future__ import annotations

from urllib.parse import urlencode

from edgeq.errors import InputError
from edgeq.report.charts import COMPILED_COLOR, FP32_COLOR, ScatterPoint, Series, line_chart, scatter_chart
from edgeq.report.html import html_page, verdict_badge
from edgeq.report.markup import Child, Safe, el, fmt, fmt_times
from edgeq.report.schema import Report
from edgeq.store.runs import Regression, RunStore, RunSummary, series_key

# Sort on a header click (numbers as numbers, unmeasured last) and filter rows on any column.
TABLE_SCRIPT = Safe(
    "const table = document.getElementById('runs');"
    "const box = document.getElementById('quick-filter');"
    "const column = document.getElementById('filter-column');"
    "const rows = () => Array.from(table.tBodies[0].rows);"
    "const filter = () => {"
    " const needle = box.value.trim().toLowerCase(); const index = Number(column.value);"
    " for (const row of rows()) {"
    "  const cell = index < 0 ? row : row.cells[index];"
    "  row.hidden = needle !== '' && !cell.textContent.toLowerCase().includes(needle); } };"
    "box.addEventListener('input', filter); column.addEventListener('change', filter);"
    "const key = (row, index) => { const cell = row.cells[index];"
    " return cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim(); };"
    "const compare = (x, y) => { const a = parseFloat(x), b = parseFloat(y);"
    " if (isNaN(a) !== isNaN(b)) return isNaN(a) ? 1 : -1;"
    " return isNaN(a) ? x.localeCompare(y) : a - b; };"
    "const heads = Array.from(table.tHead.rows[0].cells);"
    "heads.forEach((head, index) => head.querySelector('button').addEventListener('click', () => {"
    " const up = head.getAttribute('aria-sort') !== 'ascending';"
    " heads.forEach((other) => other.removeAttribute('aria-sort'));"
    " head.setAttribute('aria-sort', up ? 'ascending' : 'descending');"
    " const sorted = rows().sort((a, b) => { const order = compare(key(a, index), key(b, index));"
    "  const missing = key(a, index) === '' || key(b, index) === '';"
    "  return up || missing ? order : -order; });"
    " table.tBodies[0].append(...sorted); }));"
)
_COLUMNS = (
    "created",
    "run",
    "model",
    "target",
    "recipe",
    "bits",
    "mode",
    "prune",
    "chosen lowering",
    "speedup b1",
    "slowest",
    "worst cosine",
    "task drop",
    "size",
    "gates",
    "status",
)


def render_dashboard(
    store: RunStore, model: str | None = None, target: str | None = None, recipe: str | None = None
) -> str:
    """The dashboard page for the runs matching the filters (all runs when none is given)."""
    every_run = store.list_runs()
    runs = store.list_runs(model=model, target=target, recipe=recipe)
    flagged = {r.run_id: r for r in store.regressions()}
    shown_flags = [flagged[run.run_id] for run in runs if run.run_id in flagged]
    failed = sum(run.gates_passed is False for run in runs)
    return html_page(
        "edgeq runs",
        el(
            "header",
            el("h1", "edgeq runs"),
            el(
                "p",
                f"{len(runs)} of {len(every_run)} runs · {len(shown_flags)} regressions · {failed} failed "
                f"gates · store {store.path}",
                class_="sub",
            ),
            el(
                "p",
                "A regression is a run worse than the previous run of the same model content, target "
                "and recipe; a changed recipe starts a new series.",
                class_="sub",
            ),
            class_="page",
        ),
        _regressions_section(shown_flags),
        _runs_section(every_run, runs, flagged, {"model": model, "target": target, "recipe": recipe}),
        _tradeoff_section(runs, flagged),
        _history_section(store, runs),
        script=TABLE_SCRIPT,
        wide=True,
    )


def report_href(run_id: str) -> str:
    return f"/runs/{run_id}/report.html"


def _regressions_section(flags: list[Regression]) -> Safe | None:
    if not flags:
        return None
    items = [
        el(
            "li",
            el("a", f"{flag.model} on {flag.target}: {flag.run_id}", href=report_href(flag.run_id)),
            " vs ",
            el("a", flag.previous_run_id, href=report_href(flag.previous_run_id)),
            " — ",
            "; ".join(flag.reasons),
        )
        for flag in flags
    ]
    return el("section", el("h2", f"Regressions ({len(flags)})"), el("ul", items), id="regressions")


def _runs_section(
    every_run: list[RunSummary],
    runs: list[RunSummary],
    flagged: dict[str, Regression],
    chosen: dict[str, str | None],
) -> Safe:
    options = {
        "model": sorted({run.model for run in every_run}),
        "target": sorted({run.target for run in every_run}),
        "recipe": sorted({run.recipe_hash for run in every_run if run.recipe_hash}),
    }
    selects = [
        el(
            "label",
            name,
            el(
                "select",
                el("option", "all", value=""),
                [el("option", value, value=value, selected=value == chosen[name]) for value in values],
                name=name,
            ),
        )
        for name, values in options.items()
    ]
    columns = el(
        "select",
        el("option", "any column", value="-1"),
        [el("option", name, value=str(index)) for index, name in enumerate(_COLUMNS)],
        id="filter-column",
    )
    form = el(
        "form",
        selects,
        el("button", "apply", type="submit"),
        el("label", "filter column", columns),
        el(
            "label",
            "contains",
            el("input", type="search", id="quick-filter", placeholder="type to filter rows"),
        ),
        method="get",
        action="/",
        class_="filters",
    )
    head = el(
        "thead", el("tr", [el("th", el("button", name, type="button", class_="sort")) for name in _COLUMNS])
    )
    rows = [_run_row(run, flagged.get(run.run_id)) for run in reversed(runs)]
    runs_table = el("table", head, el("tbody", rows), id="runs", class_="runs")
    note = el("p", "Click a column to sort; pick a column to filter on it.", class_="sub")
    return el("section", el("h2", "Runs"), form, note, runs_table, id="runs-section")


def _breakable(name: str) -> list[Child]:
    """`binary_ae/model` with a line-break opportunity after each `/`, so a narrow table wraps it there."""
    head, *rest = name.split("/")
    return [head, *(part for piece in rest for part in ("/", Safe("<wbr>"), piece))]


def _number(value: float | None, text: str) -> Safe:
    """A numeric cell that sorts by its value, whatever its printed form (4.69×, —)."""
    return el("td", text, class_="num", data_sort="" if value is None else repr(value))


def _status(run: RunSummary, regression: Regression | None) -> Safe:
    if regression:
        return el("span", "regression", class_="badge fail", title="; ".join(regression.reasons))
    if run.gates_passed is False:
        return el("span", "gate failed", class_="badge fail", title=run.gates_verdict or "")
    return el("span", "ok", class_="badge pass")


def _run_row(run: RunSummary, regression: Regression | None) -> Safe:
    cells = [
        el(
            "td", run.created[5:16].replace("T", " "), data_sort=run.created, class_="when", title=run.created
        ),
        el(
            "td",
            el(
                "a",
                run.run_id.rpartition("-")[2] or run.run_id,
                href=report_href(run.run_id),
                title=run.run_id,
            ),
            class_="id",
        ),
        el("td", el("a", _breakable(run.model), href="/?" + urlencode({"model": run.model}))),
        el("td", el("a", run.target, href="/?" + urlencode({"target": run.target}))),
        el(
            "td",
            el(
                "a",
                run.recipe_hash[:8],
                href="/?" + urlencode({"recipe": run.recipe_hash}),
                title=f"recipe {run.recipe_hash}: show its runs only",
            )
            if run.recipe_hash
            else "—",
            class_="id",
        ),
        _number(run.bits, str(run.bits) if run.bits else "—"),
        el("td", run.mode or "—"),
        el("td", run.prune or "no"),
        el("td", run.decision or "—"),
        _number(run.speedup_b1, fmt_times(run.speedup_b1)),
        _number(run.slowest_speedup, fmt_times(run.slowest_speedup)),
        _number(run.worst_cosine, fmt(run.worst_cosine, 4)),
        _number(run.task_drop, fmt(run.task_drop, 2)),
        _number(run.size_ratio, fmt_times(run.size_ratio)),
        el("td", verdict_badge(run.gates_verdict)),
        el("td", _status(run, regression)),
    ]
    failed = run.gates_passed is False
    return el("tr", cells, class_="regressed" if regression or failed else None)


def _history_section(store: RunStore, runs: list[RunSummary]) -> Safe | None:
    """Batch-1 p50 latency over time, one chart per series (model content, target, recipe) with two
    runs or more: a line through an int8 run and an int4 run would be a trend of two recipes."""
    series_runs: dict[tuple[str, str, str | None], list[RunSummary]] = {}
    for run in runs:
        series_runs.setdefault(series_key(run), []).append(run)
    charts = []
    for members in series_runs.values():
        reports = [report for run in members if (report := _readable(store, run.run_id)) is not None]
        headlines = [r.headline_latency for r in reports]
        if sum(e is not None for e in headlines) < 2:
            continue
        series = [
            Series(f"{side} p50", [getattr(e, side).p50_ms if e else None for e in headlines], color)
            for side, color in (("fp32", FP32_COLOR), ("compiled", COMPILED_COLOR))
        ]
        first = members[0]
        recipe = " ".join(filter(None, [f"int{first.bits}" if first.bits else None, first.prune]))
        charts.append(
            line_chart(
                f"{first.model} on {first.target} · recipe {(first.recipe_hash or '—')[:8]} {recipe}",
                [r.created[5:16].replace("T", " ") for r in reports],
                series,
                "run (created, UTC)",
                "p50 latency at batch 1 (ms)",
            )
        )
    if not charts:
        return None
    return el(
        "section", el("h2", "Latency history, per series"), el("div", charts, class_="charts"), id="history"
    )


def _readable(store: RunStore, run_id: str) -> Report | None:
    """A stored report, or None when it no longer reads (its run is still listed in the table)."""
    try:
        return store.get(run_id)
    except InputError:
        return None


def pareto_flags(points: list[tuple[float, float]], y_higher_is_better: bool) -> list[bool]:
    """True for points no other point beats on both speedup (higher) and quality."""
    sign = 1 if y_higher_is_better else -1

    def beats(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and sign * a[1] >= sign * b[1] and a != b

    return [not any(beats(other, point) for other in points) for point in points]


def _tradeoff_section(runs: list[RunSummary], flagged: dict[str, Regression]) -> Safe | None:
    """One speed-vs-quality chart per model (its own task drop when every run has one, else
    worst cosine): a Pareto front across models would compare different tasks."""
    by_model: dict[tuple[str, str | None], list[RunSummary]] = {}
    for run in runs:
        if run.speedup_b1 is not None:
            by_model.setdefault((run.model, run.model_sha256), []).append(run)
    names = [name for name, _ in by_model]
    charts = []
    for (name, digest), model_runs in by_model.items():
        by_task = all(run.task_drop is not None for run in model_runs)
        attribute = "task_drop" if by_task else "worst_cosine"
        measured = [(run, run.speedup_b1, getattr(run, attribute)) for run in model_runs]
        measured = [(run, x, y) for run, x, y in measured if y is not None]
        if not measured:
            continue
        front = pareto_flags([(x, y) for _, x, y in measured], y_higher_is_better=not by_task)
        points = [
            ScatterPoint(x, y, _point_label(run), on_front, run.run_id in flagged, report_href(run.run_id))
            for (run, x, y), on_front in zip(measured, front, strict=True)
        ]
        title = name if names.count(name) == 1 else f"{name} (sha256 {(digest or '')[:8]})"
        charts.append(
            scatter_chart(
                f"{title}: speed vs {'task drop' if by_task else 'worst cosine'}",
                points,
                "speedup at batch 1 (×, higher is better)",
                "task drop (lower is better)" if by_task else "worst output cosine (higher is better)",
                y_higher_is_better=not by_task,
            )
        )
    if not charts:
        return None
    return el(
        "section",
        el("h2", "Speed vs quality, per model (Pareto front)"),
        el("div", charts, class_="charts"),
        id="tradeoff",
    )


def _point_label(run: RunSummary) -> str:
    """Which recipe a point is: target, bits, pruning and the lowering kept."""
    parts = [
        run.target,
        f"int{run.bits}" if run.bits else None,
        "pruned" if run.prune else None,
        run.decision,
    ]
    return " · ".join(part for part in parts if part)
