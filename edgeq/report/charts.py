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

    def px(self, value: float) -> float:
        return self.start_px + (value - self.lo) / (self.hi - self.lo) * (self.end_px - self.start_px)

    def label(self, value: float) -> str:
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
        parts.append(_text(x, y + 14, axis.label(tick), "middle"))
    parts.append(_text((axis.start_px + axis.end_px) / 2, y + 32, caption, "middle", font_weight=600))
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
    """Box-and-strip plot per side on a shared ms axis starting at zero, percentiles printed."""
    band, left, right_text, plot_right = 54, 92, 270, 520
    height = 30 + band * len(rows) + 44
    values = [v for row in rows for v in (*row.samples, row.p50, row.p90, row.p99) if v is not None]
    axis = _axis(0.0, max(values, default=1.0), left, plot_right)
    parts = _x_axis(axis, height - 44, 22, "latency per call (ms), lower is better")
    parts.append(_text(8, 14, title, font_weight=600))
    for index, row in enumerate(rows):
        middle = 30 + band * index + band / 2
        parts.append(_text(left - 8, middle + 4, row.name, "end", font_weight=600))
        parts.extend(_box_and_strip(row, axis, middle))
        summary = "  ".join(
            f"{name} {value:.3f}"
            for name, value in (("p50", row.p50), ("p90", row.p90), ("p99", row.p99))
            if value is not None
        )
        parts.append(_text(plot_right + 12, middle + 4, f"{summary} ms" if summary else "no timings"))
    return _svg(plot_right + right_text, height, title, *parts)


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
    left, plot_right, row_height = 150, 480, 26
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
    return _svg(plot_right + 140, height, title, *parts)


def line_chart(
    title: str, x_labels: Sequence[str], series: Sequence[Series], x_caption: str, y_caption: str
) -> Safe:
    """Lines over evenly spaced categories (nested dims, runs), values printed while they fit."""
    left, right, top, bottom = 64, 600, 40, 250
    values = [v for s in series for v in s.values if v is not None]
    low, high = min(values, default=0.0), max(values, default=1.0)
    margin = (high - low) * 0.08
    y_axis = _axis(low - margin, high + margin, bottom, top)
    slots = max(len(x_labels) - 1, 1)
    x_of = [left + 20 + (right - left - 40) * i / slots for i in range(len(x_labels))]
    parts = _y_axis(y_axis, left, right, y_caption)
    parts.append(_text(8, 16, title, font_weight=600))
    label_every = max(1, math.ceil(len(x_labels) / 12))
    for index, (x, label) in enumerate(zip(x_of, x_labels, strict=True)):
        if index % label_every == 0 or index == len(x_labels) - 1:
            parts.append(_text(x, bottom + 16, label, "middle"))
    parts.append(_text((left + right) / 2, bottom + 36, x_caption, "middle", font_weight=600))
    for number, line in enumerate(series):
        parts.extend(_line(line, x_of, y_axis, above=number % 2 == 0, print_values=len(x_of) <= 12))
        legend_x = right - 150 * (len(series) - number)
        parts.append(el("rect", x=legend_x, y=22, width=12, height=4, fill=line.color))
        parts.append(_text(legend_x + 16, 28, line.name))
    return _svg(right + 16, bottom + 48, title, *parts)


def _line(line: Series, x_of: Sequence[float], axis: _Axis, above: bool, print_values: bool) -> list[Safe]:
    points = [(x, axis.px(v), v) for x, v in zip(x_of, line.values, strict=True) if v is not None]
    parts: list[Safe] = []
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
        parts.append(el("polyline", points=path, fill="none", stroke=line.color, stroke_width=2))
    for index, (x, y, value) in enumerate(points):
        parts.append(el("circle", cx=x, cy=y, r=3.5, fill=line.color, class_="point"))
        if print_values or index == len(points) - 1:
            parts.append(
                _text(
                    x,
                    y - 8 if above else y + 17,
                    f"{value:.4g}",
                    "middle",
                    fill=line.color,
                    font_size=11,
                )
            )
    return parts


def scatter_chart(title: str, points: Sequence[ScatterPoint], x_caption: str, y_caption: str) -> Safe:
    """Runs as dots; the Pareto front is joined and labelled, regressions are ringed in red."""
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
        bottom,
        top,
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
            on_right_half = x > (left + right) / 2
            parts.append(
                _text(
                    x - 9 if on_right_half else x + 9,
                    y - 8,
                    point.label,
                    "end" if on_right_half else "start",
                    font_size=11,
                )
            )
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
