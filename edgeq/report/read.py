"""Reading a report from a file: version, bounded shape, /1 upgrade, types, possible values, gates.

Every reader of a report (edgeq report, the runs store, the dashboard, build-engine) comes through
here, so a tampered or corrupted file is refused naming the field and no stored verdict is trusted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeq.errors import InputError
from edgeq.report.checks import check_shape, check_values
from edgeq.report.gates import recheck_gates
from edgeq.report.schema import SCHEMA, Report
from edgeq.report.upgrade import upgrade_v1

READABLE_SCHEMAS = ("edgeq.report/1", SCHEMA)  # /1: the same sections before typing, upgraded on read
MAX_REPORT_BYTES = 64 << 20


def read_report(data: Any) -> Report:
    """A typed report from its JSON form (/1 upgraded); wrong keys, types or impossible values are
    refused naming the field, and the gates are evaluated again from their limits."""
    if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"not an {SCHEMA} report (schema: {found!r})")
    check_shape(data, "report")
    body = {k: v for k, v in data.items() if k != "schema"}
    if data["schema"] != SCHEMA:
        body = upgrade_v1(body)
    report = Report.parse(body)
    check_values(report)
    report.gates = recheck_gates(report)
    return report


def load_report(path: str | Path) -> Report:
    """Read a report.json (or the output directory holding one) back into typed objects."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise InputError(f"report {path} is over {MAX_REPORT_BYTES >> 20} MB: not an edgeq report")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read report {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also 5000-digit ints
        raise InputError(f"report {path} is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    return read_report(data)
