"""Reports are validated when read: a tampered verdict never passes a gate, malformed JSON is one line.

Property-based: any single field of a real report replaced by any JSON value reads back as a report
or is refused with InputError, never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeq.errors import InputError
from edgeq.report.schema import load_report
from tests.adversarial.helpers import assert_one_line, run_main

GATED = Path(__file__).parent.parent / "fixtures" / "reports" / "v1_binary_ae_gates.json"
FIXTURES = sorted(GATED.parent.glob("*.json"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


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


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON document (to pick one field to replace)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def replaced(document: Any, path: tuple, value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return copy


@given(data=st.data(), value=json_values)
def test_any_field_replaced_by_any_value_reads_or_is_refused(
    data: st.DataObject, value: Any, tmp_path: Path
) -> None:
    fixture = data.draw(st.sampled_from(FIXTURES))
    document = json.loads(fixture.read_text())
    path = data.draw(st.sampled_from(paths(document)))
    try:
        report = load_report(write(tmp_path, replaced(document, path, value)))
    except InputError:
        return
    assert all(isinstance(gate.passed, bool) for gate in report.gates)
    json.dumps(report.to_dict(), allow_nan=True)  # what was read can be written again
