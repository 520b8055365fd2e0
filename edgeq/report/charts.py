"""Inline SVG charts with printed axes and values, readable on paper and without any JavaScript."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edgeq.report.markup import Safe, el

FP32_COLOR = "#5b7fa6"
COMPILED_COLOR = "#d9730d"
FRONT_COLOR = "#1f8a4c"
MUTED_COLOR = "#9aa5b1"
ALERT_COLOR = "#c0392b"
_GRID = "#e3e7ec"
OUTLIER_SPREAD = 8.0  # slowest call / largest median beyond which a latency axis turns log-scale
_INK = "#2d3640"


@dataclass(frozen=True)
class Series:
    """One named line of a line chart; None marks a point that was not measured."""

    name: str
    values: Sequence[float | None]
    color: str


@dataclass(frozen=True)
class ScatterPoint:
    """One run in a scatter: `on_front` draws it as Pareto-optimal, `flagged` as a regression."""

    x: float
    y: float
    label: str
    on_front: bool = False
    flagged: bool = False
    href: str | None = None


@dataclass(frozen=True)
class _Axis:
    """A linear map from data values to pixels, with round-number ticks covering the data."""

    lo: float
    hi: float
    start_px: float
    end_px: float
    ticks: tuple[float, ...]
    step: float
    log: bool = False

    def px(self, value: float) -> float:
        if self.log:
            lo, hi, value = math.log10(self.lo), math.log10(self.hi), math.log10(max(value, self.lo))
            return self.start_px + (value - lo) / (hi - lo) * (self.end_px - self.start_px)
        return self.start_px + (value - self.lo) / (self.hi - self.lo) * (self.end_px - self.start_px)

    def label(self, value: float) -> str:
        if self.log:
            return f"{value:g}"
        decimals = max(0, -math.floor(math.log10(self.step) + 1e-9))
        if not math.isclose(self.step, round(self.step, decimals), rel_tol=1e-9):
            decimals += 1
        return f"{value:.{decimals}f}"


def _axis(lo: float, hi: float, start_px: float, end_px: float, count: int = 5) -> _Axis:
    """Extend [lo, hi] to round numbers so tick labels read as 0.1, 0.2 … rather than 0.137."""
    if hi <= lo:
        pad = abs(lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw_step = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = tuple(lo + i * step for i in range(round((hi - lo) / step) + 1))
    return _Axis(lo, hi, start_px, end_px, ticks, step)


def _log_axis(lo: float, hi: float, start_px: float, end_px: float) -> _Axis:
    """A log10 axis over [lo, hi] (lo > 0) with 1-2-5 ticks, or decades alone when those crowd."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if last - first <= 3 else (1,)
    ticks = [m * 10.0**d for d in range(first, last + 1) for m in steps]
    top = next(t for t in ticks if t >= hi * (1 - 1e-9))
    ticks = [t for t in ticks if t <= top]
    return _Axis(ticks[0], top, start_px, end_px, tuple(ticks), 1.0, log=True)


def text_width(text: str, size: float = 12, bold: bool = False) -> float:
    """Rendered width of `text` in a sans-serif font, a little generous so labels never clip."""
    return len(text) * size * (0.64 if bold else 0.6)


def _svg(width: int, height: int, title: str, *children: Safe) -> Safe:
    return el(
        "svg",
        el("title", title),
        *children,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        aria_label=title,
        class_="chart",
        font_family="system-ui, -apple-system, Segoe UI, sans-serif",
        font_size=12,
        fill=_INK,
    )


def _text(x: float, y: float, content: str, anchor: str = "start", **attrs: object) -> Safe:
    return el("text", content, x=x, y=y, text_anchor=anchor, **attrs)


def _x_axis(axis: _Axis, y: float, top: float, caption: str) -> list[Safe]:
    """Vertical grid lines with values under them, and the axis caption below."""
    parts: list[Safe] = []
    for tick in axis.ticks:
        x = axis.px(tick)
        parts.append(el("line", x1=x, x2=x, y1=top, y2=y, stroke=_GRID))
        parts.append(_text(x, y + 17, axis.label(tick), "middle"))
    parts.append(_text((axis.start_px + axis.end_px) / 2, y + 34, caption, "middle", font_weight=600))
    return parts


def _y_axis(axis: _Axis, left: float, right: float, caption: str) -> list[Safe]:
    """Horizontal grid lines with values left of them, and a rotated axis caption."""
    parts: list[Safe] = []
    for tick in axis.ticks:
        y = axis.px(tick)
        parts.append(el("line", x1=left, x2=right, y1=y, y2=y, stroke=_GRID))
        parts.append(_text(left - 6, y + 4, axis.label(tick), "end"))
    middle = (axis.start_px + axis.end_px) / 2
    parts.append(
        _text(14, middle, caption, "middle", font_weight=600, transform=f"rotate(-90 14 {middle:.1f})")
    )
    return parts


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Distribution:
    """Latency of one side at one batch size: raw samples and/or the reported percentiles."""

    name: str
    color: str
    samples: Sequence[float]
    p50: float | None
    p90: float | None
    p99: float | None


def latency_distribution(title: str, rows: Sequence[Distribution]) -> Safe:
    """Box-and-strip plot per side on a shared ms axis, percentiles printed.

    The axis starts at zero unless outliers (a loaded machine's stalls) would squeeze the medians
    into a sliver: then it is log-scaled, and the caption says so."""
    band = 54
    left = max(92.0, 16 + max((text_width(r.name, bold=True) for r in rows), default=0))
    plot_right = left + 430
    summaries = [_percentiles(row) for row in rows]
    right_text = max(290.0, 24 + max((text_width(text) for text in summaries), default=0))
    height = 30 + band * len(rows) + 44
    values = [v for row in rows for v in (*row.samples, row.p50, row.p90, row.p99) if v is not None]
    medians = [row.p50 for row in rows if row.p50]
    slowest = max(values, default=1.0)
    caption = "latency per call (ms), lower is better"
    if medians and min(values) > 0 and slowest > OUTLIER_SPREAD * max(medians):
        axis = _log_axis(min(values), slowest, left, plot_right)
        caption = f"latency per call (ms), log scale: outliers reach {slowest:.3g} ms, lower is better"
    else:
        axis = _axis(0.0, slowest, left, plot_right)
    parts = _x_axis(axis, height - 44, 22, caption)
    parts.append(_text(8, 14, title, font_weight=600))
    for index, (row, summary) in enumerate(zip(rows, summaries, strict=True)):
        middle = 30 + band * index + band / 2
        parts.append(_text(left - 8, middle + 4, row.name, "end", font_weight=600))
        parts.extend(_box_and_strip(row, axis, middle))
        parts.append(_text(plot_right + 12, middle + 4, summary))
    return _svg(round(plot_right + right_text), height, title, *parts)


def _percentiles(row: Distribution) -> str:
    """`p50 0.119  p90 0.208  p99 44.408 ms`, the numbers printed beside a latency row."""
    summary = "  ".join(
        f"{name} {value:.3f}"
        for name, value in (("p50", row.p50), ("p90", row.p90), ("p99", row.p99))
        if value is not None
    )
    return f"{summary} ms" if summary else "no timings"


def _box_and_strip(row: Distribution, axis: _Axis, middle: float) -> list[Safe]:
    """Whiskers min–max, box p25–p75, thick median, and every sample as a jittered dot."""
    parts: list[Safe] = []
    ordered = sorted(row.samples)
    if ordered:
        low, q1, median, q3, high = (_quantile(ordered, q) for q in (0, 0.25, 0.5, 0.75, 1))
        parts.append(
            el(
                "line",
                x1=axis.px(low),
                x2=axis.px(high),
                y1=middle,
                y2=middle,
                stroke=row.color,
                stroke_width=1.5,
            )
        )
        parts.append(
            el(
                "rect",
                x=axis.px(q1),
                y=middle - 11,
                width=max(axis.px(q3) - axis.px(q1), 1),
                height=22,
                fill=row.color,
                fill_opacity=0.18,
                stroke=row.color,
            )
        )
        parts.append(
            el(
                "line",
                x1=axis.px(median),
                x2=axis.px(median),
                y1=middle - 13,
                y2=middle + 13,
                stroke=row.color,
                stroke_width=3,
                class_="median",
            )
        )
        for index, sample in enumerate(row.samples):
            jitter = ((index * 0.618034) % 1 - 0.5) * 20
            parts.append(
                el(
                    "circle",
                    cx=axis.px(sample),
                    cy=middle + jitter,
                    r=2.2,
                    fill=row.color,
                    fill_opacity=0.55,
                    class_="sample",
                )
            )
    for value, dash in ((row.p90, "4 2"), (row.p99, "1 2")):
        if value is not None:
            parts.append(
                el(
                    "line",
                    x1=axis.px(value),
                    x2=axis.px(value),
                    y1=middle - 16,
                    y2=middle + 16,
                    stroke=row.color,
                    stroke_dasharray=dash,
                )
            )
    if not ordered and row.p50 is not None:
        parts.append(
            el(
                "line",
                x1=axis.px(row.p50),
                x2=axis.px(row.p50),
                y1=middle - 13,
                y2=middle + 13,
                stroke=row.color,
                stroke_width=3,
                class_="median",
            )
        )
    return parts


@dataclass(frozen=True)
class Bar:
    """One bar: its label, length in chart units and the value text printed after it."""

    label: str
    value: float
    value_text: str
    color: str = COMPILED_COLOR


def bar_chart(title: str, bars: Sequence[Bar], caption: str) -> Safe:
    """Horizontal bars from zero, labelled on the left, each value printed after its bar."""
    row_height = 26
    left = max(150.0, 16 + max((text_width(bar.label) for bar in bars), default=0))
    plot_right = left + 330
    height = 28 + row_height * len(bars) + 40
    axis = _axis(0.0, max((bar.value for bar in bars), default=1.0), left, plot_right)
    parts = _x_axis(axis, height - 40, 22, caption)
    parts.append(_text(8, 14, title, font_weight=600))
    for index, bar in enumerate(bars):
        top = 28 + row_height * index
        end = axis.px(max(bar.value, 0.0))
        parts.append(_text(left - 8, top + 15, bar.label, "end"))
        parts.append(
            el(
                "rect",
                x=left,
                y=top + 3,
                width=max(end - left, 1),
                height=row_height - 8,
                fill=bar.color,
                class_="bar",
            )
        )
        parts.append(_text(end + 6, top + 15, bar.value_text))
    value_room = max((text_width(bar.value_text) for bar in bars), default=0) + 24
    return _svg(round(plot_right + value_room), height, title, *parts)


def line_chart(
    title: str, x_labels: Sequence[str], series: Sequence[Series], x_caption: str, y_caption: str
) -> Safe:
    """Lines over evenly spaced categories (nested dims, runs), values printed while they fit."""
    left, right, top, bottom = 64, 600, 46, 256
    values = [v for s in series for v in s.values if v is not None]
    low, high = min(values, default=0.0), max(values, default=1.0)
    margin = (high - low) * 0.08
    floor = low - margin if low < 0 or low - margin >= 0 else 0.0  # latency and sizes never below zero
    y_axis = _axis(floor, high + margin, bottom, top)
    slots = max(len(x_labels) - 1, 1)
    x_of = [left + 20 + (right - left - 40) * i / slots for i in range(len(x_labels))]
    parts = _y_axis(y_axis, left, right, y_caption)
    parts.append(_text(8, 16, title, font_weight=600))
    label_every = max(1, math.ceil(len(x_labels) / 12))
    for index, (x, label) in enumerate(zip(x_of, x_labels, strict=True)):
        if index % label_every == 0 or index == len(x_labels) - 1:
            parts.append(_text(x, bottom + 16, label, "middle"))
    parts.append(_text((left + right) / 2, bottom + 36, x_caption, "middle", font_weight=600))
    places = _value_places(series)
    for number, line in enumerate(series):
        parts.extend(_line(line, x_of, y_axis, places[number], print_values=len(x_of) <= 12))
        legend_x = right - 150 * (len(series) - number)
        parts.append(el("rect", x=legend_x, y=27, width=12, height=4, fill=line.color))
        parts.append(_text(legend_x + 16, 33, line.name))
    return _svg(right + 40, bottom + 48, title, *parts)


def _value_places(series: Sequence[Series]) -> list[list[str | None]]:
    """Where each point's printed value goes so two series never print on top of each other: the
    higher value above its dot, the lower below; a value equal to one already printed is skipped."""
    places: list[list[str | None]] = [[None] * len(s.values) for s in series]
    for index in range(max((len(s.values) for s in series), default=0)):
        present = [(s.values[index], n) for n, s in enumerate(series) if s.values[index] is not None]
        present.sort(key=lambda item: -item[0])
        printed: set[str] = set()
        for rank, (value, number) in enumerate(present):
            text = f"{value:.4g}"
            if text not in printed:
                places[number][index] = "above" if rank < max(len(present) / 2, 1) else "below"
                printed.add(text)
    return places


def _line(
    line: Series, x_of: Sequence[float], axis: _Axis, places: Sequence[str | None], print_values: bool
) -> list[Safe]:
    points = [
        (x, axis.px(v), v, place)
        for x, v, place in zip(x_of, line.values, places, strict=True)
        if v is not None
    ]
    parts: list[Safe] = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(el("polyline", points=path, fill="none", stroke=line.color, stroke_width=2))
    low_px, high_px = max(axis.start_px, axis.end_px), min(axis.start_px, axis.end_px)
    for index, (x, y, value, place) in enumerate(points):
        parts.append(el("circle", cx=x, cy=y, r=3.5, fill=line.color, class_="point"))
        if place == "below" and y + 17 > low_px + 4:
            place = "above"  # under the dot would run into the axis' tick labels
        elif place == "above" and y - 18 < high_px - 6:
            place = "below"  # over the dot would run into the legend
        if place and (print_values or index == len(points) - 1):
            parts.append(
                _text(
                    x,
                    y - 8 if place == "above" else y + 17,
                    f"{value:.4g}",
                    "middle",
                    fill=line.color,
                    font_size=11,
                )
            )
    return parts


def scatter_chart(
    title: str,
    points: Sequence[ScatterPoint],
    x_caption: str,
    y_caption: str,
    y_higher_is_better: bool = True,
) -> Safe:
    """Runs as dots, better up and right; the Pareto front is joined and labelled (labels placed so
    none collide), regressions are ringed in red."""
    left, right, top, bottom = 72, 600, 36, 300
    x_axis = _axis(
        min((p.x for p in points), default=0.0),
        max((p.x for p in points), default=1.0),
        left,
        right,
    )
    y_axis = _axis(
        min((p.y for p in points), default=0.0),
        max((p.y for p in points), default=1.0),
        *((bottom, top) if y_higher_is_better else (top, bottom)),
    )
    parts = _x_axis(x_axis, bottom, top, x_caption) + _y_axis(y_axis, left, right, y_caption)
    parts.append(_text(8, 16, title, font_weight=600))
    front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
    if len(front) > 1:
        path = " ".join(f"{x_axis.px(p.x):.1f},{y_axis.px(p.y):.1f}" for p in front)
        parts.append(
            el(
                "polyline",
                points=path,
                fill="none",
                stroke=FRONT_COLOR,
                stroke_width=2,
                stroke_dasharray="6 3",
                class_="pareto-front",
            )
        )
    labels: list[_Label] = []
    for point in points:
        x, y = x_axis.px(point.x), y_axis.px(point.y)
        dot = el(
            "circle",
            el("title", point.label),
            cx=x,
            cy=y,
            r=6 if point.on_front else 4.5,
            fill=FRONT_COLOR if point.on_front else "white",
            stroke=ALERT_COLOR if point.flagged else (FRONT_COLOR if point.on_front else MUTED_COLOR),
            stroke_width=3 if point.flagged else 1.5,
            class_="run-point front" if point.on_front else "run-point",
        )
        parts.append(el("a", dot, href=point.href) if point.href else dot)
        if point.on_front or point.flagged:
            labels.append(_Label(x, y, point.label))
    legend_box = (right - 190, 12, right + 40, 30)
    parts += _placed_labels(labels, left, right, top, bottom, [legend_box])
    legend = [(FRONT_COLOR, "Pareto front"), (ALERT_COLOR, "regression")]
    for index, (color, name) in enumerate(legend):
        parts.append(
            el(
                "circle",
                cx=right - 180 + 100 * index,
                cy=22,
                r=5,
                fill="white",
                stroke=color,
                stroke_width=2.5,
            )
        )
        parts.append(_text(right - 170 + 100 * index, 26, name))
    return _svg(right + 40, bottom + 44, title, *parts)


@dataclass(frozen=True)
class _Label:
    """A label wanting to sit next to the dot at (x, y)."""

    x: float
    y: float
    text: str
    bold: bool = False


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _placed_labels(
    labels: Sequence[_Label],
    left: float,
    right: float,
    top: float,
    bottom: float,
    reserved: Sequence[Box] = (),
) -> list[Safe]:
    """Each label beside its dot at the first spot (right, left, above, below, then further out)
    that overlaps no label placed before it and stays inside the plot, so none collide or clip."""
    taken = [*reserved, *((label.x - 7, label.y - 7, label.x + 7, label.y + 7) for label in labels)]
    parts: list[Safe] = []
    offsets = [(9, 4), (-9, 4), (9, -9), (9, 17), (-9, -9), (-9, 17), (9, -22), (9, 30), (-9, -22), (-9, 30)]
    placed: set[tuple[float, float, str]] = set()
    for label in sorted(labels, key=lambda item: (not item.bold, item.y)):
        if (label.x, label.y, label.text) in placed:
            continue  # two runs at one spot with one label: print it once
        placed.add((label.x, label.y, label.text))
        width = text_width(label.text, 11, label.bold)
        spot = None
        for dx, dy in offsets:
            x0 = label.x + dx if dx > 0 else label.x + dx - width
            box = (x0, label.y + dy - 10, x0 + width, label.y + dy + 2)
            inside = box[0] >= left + 2 and box[2] <= right + 36 and box[1] >= top - 4 and box[3] <= bottom
            if inside and not any(_overlap(box, other) for other in taken):
                spot = (box, dx, dy)
                break
        if spot is None:  # crowded: keep the first spot; the dot's tooltip still names it
            dx, dy = offsets[0]
            spot = ((label.x + dx, label.y + dy - 10, label.x + dx + width, label.y + dy + 2), dx, dy)
        box, dx, dy = spot
        taken.append(box)
        parts.append(
            _text(box[0], label.y + dy, label.text, font_size=11, font_weight=600 if label.bold else None)
        )
    return parts


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass(frozen=True)
class TradeoffPoint:
    """One compiled candidate: its slowest speedup, its fidelity, and whether it could be kept."""

    label: str
    speedup: float
    fidelity: float
    chosen: bool
    within_budget: bool


def tradeoff_chart(
    title: str,
    points: Sequence[TradeoffPoint],
    fidelity_caption: str,
    higher_is_better: bool,
    budget: float | None,
) -> Safe:
    """Speed vs fidelity of every candidate, better up and right: the chosen one filled, those
    outside the accuracy budget ringed red, the budget as a dashed line, fp32 speed at 1×."""
    left, right, top, bottom = 72, 620, 40, 300
    speeds = [p.speedup for p in points] + [1.0]
    fidelities = [p.fidelity for p in points] + ([budget] if budget is not None else [])
    x_axis = _axis(min(speeds), max(speeds), left, right)
    low, high = min(fidelities), max(fidelities)
    pad = (high - low) * 0.1 or abs(high) * 0.01 or 0.01
    ends = (bottom, top) if higher_is_better else (top, bottom)
    y_axis = _axis(low - pad, high + pad, *ends)
    caption = f"{fidelity_caption} (better ↑)"
    parts = _x_axis(x_axis, bottom, top, "speedup vs fp32 at the slowest batch size (×), better →")
    parts += _y_axis(y_axis, left, right, caption)
    parts.append(_text(8, 16, title, font_weight=600))
    one = x_axis.px(1.0)
    parts.append(el("line", x1=one, x2=one, y1=top, y2=bottom, stroke=MUTED_COLOR, stroke_dasharray="3 3"))
    width = text_width("fp32 speed", 11)
    start = one + 4 if one + 4 + width <= right + 36 else one - 4 - width  # right of the line, if it fits
    parts.append(_text(start, top + 12, "fp32 speed", font_size=11, fill=MUTED_COLOR))
    reserved = [(start, top + 2, start + width, top + 14)]
    if budget is not None:
        y, text = y_axis.px(budget), f"budget {budget:g}"
        parts.append(el("line", x1=left, x2=right, y1=y, y2=y, stroke=ALERT_COLOR, stroke_dasharray="6 3"))
        label_x = right - 4 - text_width(text, 11)
        near = any(
            abs(y_axis.px(p.fidelity) - y) < 20 and x_axis.px(p.speedup) > label_x - 10 for p in points
        )
        label_x = left + 4 if near else label_x  # the right end is the fast end: dots gather there
        parts.append(_text(label_x, y - 5, text, font_size=11, fill=ALERT_COLOR))
        reserved.append((label_x, y - 15, label_x + text_width(text, 11), y - 3))
    labels = []
    for point in points:
        x, y = x_axis.px(point.speedup), y_axis.px(point.fidelity)
        color = FRONT_COLOR if point.chosen else (COMPILED_COLOR if point.within_budget else "white")
        parts.append(
            el(
                "circle",
                el("title", f"{point.label}: {point.speedup:.2f}×, {point.fidelity:.4g}"),
                cx=x,
                cy=y,
                r=7 if point.chosen else 5,
                fill=color,
                stroke=ALERT_COLOR if not point.within_budget else color,
                stroke_width=2.5,
                class_="candidate chosen" if point.chosen else "candidate",
            )
        )
        labels.append(_Label(x, y, point.label + (" (chosen)" if point.chosen else ""), point.chosen))
    parts += _placed_labels(labels, left, right, top, bottom, reserved)
    legend = [(FRONT_COLOR, FRONT_COLOR, "chosen"), (COMPILED_COLOR, COMPILED_COLOR, "within budget")]
    legend.append(("white", ALERT_COLOR, "outside budget"))
    for index, (fill, stroke, name) in enumerate(legend):
        x = left + 130 * index
        parts.append(el("circle", cx=x + 5, cy=bottom + 50, r=5, fill=fill, stroke=stroke, stroke_width=2.5))
        parts.append(_text(x + 15, bottom + 54, name))
    return _svg(right + 40, bottom + 66, title, *parts)
