"""A tiny HTML/SVG builder that escapes by default, so no report string can become markup."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Union

Child = Union["Safe", str, int, float, None, Iterable["Child"]]


class Safe(str):
    """Text that is already markup; everything else is escaped when it is rendered."""


def render(child: Child) -> Safe:
    """Escape `child` unless it is `Safe`; lists are rendered item by item, None is empty."""
    if child is None:
        return Safe("")
    if isinstance(child, Safe):
        return child
    if isinstance(child, (str, int, float)):
        return Safe(html.escape(str(child), quote=True))
    return Safe("".join(render(item) for item in child))


def el(tag: str, *children: Child, **attrs: object) -> Safe:
    """`<tag attrs>children</tag>`; `class_` → class, `text_anchor` → text-anchor, None drops it."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{html.escape(_attr(value), quote=True)}"')
    return Safe(f"<{' '.join(parts)}>{render(children)}</{tag}>")


def _attr(value: object) -> str:
    """Attribute values: floats trimmed to two decimals so SVG stays small and stable."""
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def fmt(value: object, digits: int = 3, suffix: str = "") -> str:
    """A number for people: fixed significant decimals, '—' when it was not measured."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else str(value)
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def fmt_times(value: float | None) -> str:
    """A ratio to fp32 (speedup, size) as people read it: 1.83×; '—' when it was not measured."""
    return "—" if value is None else f"{value:.2f}×"


def fmt_bytes(value: object) -> str:
    """Bytes as KiB/MiB, which is how people compare model sizes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{int(value)} B"


def table(headers: list[str], rows: Iterable[list[Child]], class_: str | None = None) -> Safe:
    """A plain data table; numbers (and the headers of numeric columns) are right-aligned by the
    stylesheet via `.num`, so a header sits over its figures."""
    rows = [list(row) for row in rows]
    numeric = [any(_numeric(row[i]) for row in rows if i < len(row)) for i in range(len(headers))]
    cells = [el("th", h, class_="num" if n else None) for h, n in zip(headers, numeric, strict=True)]
    head = el("thead", el("tr", cells))
    body_rows = [
        el("tr", [el("td", cell, class_="num" if _numeric(cell) else None) for cell in row]) for row in rows
    ]
    return el("table", head, el("tbody", body_rows), class_=class_)


def _numeric(cell: Child) -> bool:
    text = str(cell).replace(",", "").replace("%", "").replace("×", "").strip()
    try:
        float(text.split(" ")[0])
    except ValueError:
        return False
    return True
