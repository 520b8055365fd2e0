"""Reports are validated when read: a tampered verdict never passes a gate, hostile JSON is one line.

(The property "any field replaced by any JSON value reads or is refused" is
`tests/test_report_schema.py::test_tampered_fields_are_refused_or_read_never_a_crash`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.helpers import assert_one_line, run_main

GATED = Path(__file__).parent.parent / "fixtures" / "reports" / "v1_binary_ae_gates.json"


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("passed", ["false", [0], "true", 1, None, {}])
def test_a_gate_verdict_that_is_not_a_bool_is_refused(
    passed: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = json.loads(GATED.read_text())
    data["gates"][0] |= {"limit": 0.0, "passed": passed}
    code, err = run_main(capsys, "report", write(tmp_path, data))
    assert_one_line(code, err, "passed must be a bool")


def test_a_tampered_true_verdict_is_recomputed_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = json.loads(GATED.read_text())
    data["gates"][0] |= {"limit": 0.0, "value": 0.0, "passed": True}  # the real drop is 0.22
    code, err = run_main(capsys, "report", write(tmp_path, data))
    assert code == 3, err


@pytest.mark.parametrize(
    "text",
    [
        "1" * 5000,
        "[" * 100_000 + "]" * 100_000,
        '{"schema": "edgeq.report/2", "gates": ' + "[" * 50_000,
        "\xff",
    ],
    ids=["5000-digit-int", "deep-nesting", "deep-and-truncated", "not-utf8"],
)
def test_hostile_json_is_one_line(text: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(text.encode("latin-1"))
    code, err = run_main(capsys, "report", path)
    assert_one_line(code, err)
