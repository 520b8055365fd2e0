"""Headline numbers read defensively from a report dict: any section may be null, missing or odd.

The HTML page, the runs store and `edgeq report` all summarise a run the same way through these.
"""

from __future__ import annotations

import math
from typing import Any


def as_dict(value: Any) -> dict:
    """`value` when it is a dict, else an empty one, so lookups never raise on odd reports."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    """`value` when it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def as_number(value: Any) -> float | None:
    """A finite int/float as float, else None (booleans and strings are not measurements)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def text(value: Any, default: str = "") -> str:
    """A string field as text; anything else (None, numbers) rendered as a plain string."""
    if value is None:
        return default
    return value if isinstance(value, str) else str(value)


def model_name(report: dict) -> str:
    return text(as_dict(report.get("model")).get("name"), "unknown model")


def target_name(report: dict) -> str:
    return text(as_dict(report.get("target")).get("name"), "unknown target")


def latency_rows(report: dict) -> list[dict]:
    """Latency entries that name a batch size, smallest batch first."""
    rows = [row for row in as_list(report.get("latency")) if isinstance(row, dict)]
    return sorted(rows, key=lambda row: as_number(row.get("batch")) or 0.0)


def headline_speedup(report: dict) -> float | None:
    """Speedup at batch 1 (the edge case), or at the smallest measured batch when 1 is absent."""
    rows = latency_rows(report)
    for row in rows:
        if as_number(row.get("batch")) == 1:
            return as_number(row.get("speedup"))
    return as_number(rows[0].get("speedup")) if rows else None


def worst_output(report: dict) -> dict | None:
    """The output with the lowest cosine similarity to fp32: the least faithful one."""
    outputs = [
        out
        for out in as_list(as_dict(report.get("accuracy")).get("outputs"))
        if isinstance(out, dict) and as_number(out.get("cosine")) is not None
    ]
    return min(outputs, key=lambda out: as_number(out["cosine"])) if outputs else None


def worst_cosine(report: dict) -> float | None:
    worst = worst_output(report)
    return as_number(worst["cosine"]) if worst else None


def task_metrics(report: dict) -> dict:
    """The task section (possibly empty): task name, primary metrics, per-metric fp32/compiled."""
    return as_dict(as_dict(report.get("accuracy")).get("task"))


def task_drop(report: dict) -> float | None:
    """Worst drop over the primary task metrics, in the metric's own unit (e.g. points of %)."""
    return as_number(task_metrics(report).get("worst_primary_drop"))


def size_ratio(report: dict) -> float | None:
    """Artifact bytes over fp32 model bytes, from the report or from the two sizes."""
    ratio = as_number(report.get("size_ratio"))
    if ratio is not None:
        return ratio
    before = as_number(as_dict(report.get("model")).get("bytes"))
    after = as_number(as_dict(report.get("artifact")).get("bytes"))
    return after / before if before and after is not None else None


def p50_at_batch_one(report: dict, side: str) -> float | None:
    """Median latency (ms) of `side` ("fp32" or "compiled") at the headline batch size."""
    rows = latency_rows(report)
    row = next((r for r in rows if as_number(r.get("batch")) == 1), rows[0] if rows else {})
    return as_number(as_dict(row.get(side)).get("p50_ms"))
