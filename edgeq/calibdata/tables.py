"""Numeric rows from CSV files and arrays from .npy files, each row or array one sample."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.errors import InputError


@dataclass(frozen=True)
class TableOptions:
    """Which CSV columns are the model input (default: every column but the label) and the label."""

    columns: tuple[str, ...] = ()
    label_column: str | None = None


def read_table(path: Path, options: TableOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples (first axis) and, for a CSV with a label column, one label per row."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"cannot read {path} as a numeric .npy array: {exc}") from None
        return (array if array.ndim > 1 else array[None]), None
    return _read_csv(path, options)


def _read_csv(path: Path, options: TableOptions) -> tuple[np.ndarray, np.ndarray | None]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if not rows:
        raise InputError(f"{path} holds no rows")
    header = rows[0] if not _numeric(rows[0]) else [f"column {i}" for i in range(len(rows[0]))]
    body = rows[1:] if header is rows[0] else rows
    wanted = [*options.columns, *([options.label_column] if options.label_column else [])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise InputError(f"{path} has no column {missing[0]!r} (columns: {', '.join(header)})")
    label = header.index(options.label_column) if options.label_column else None
    features = [header.index(c) for c in options.columns] or [i for i in range(len(header)) if i != label]
    try:
        values = np.array([[float(row[i]) for i in features] for row in body], np.float64)
        labels = None if label is None else np.array([row[label] for row in body])
    except (ValueError, IndexError):
        raise InputError(
            f"{path}: every row needs a number in each of the {len(features)} input columns"
        ) from None
    if labels is None or _numeric(list(labels)):
        return values, None if labels is None else labels.astype(np.float64).astype(np.int64)
    return values, np.unique(labels, return_inverse=True)[1].astype(np.int64)  # class names → sorted ids


def _numeric(row: list[str]) -> bool:
    try:
        [float(value) for value in row]
    except ValueError:
        return False
    return True
