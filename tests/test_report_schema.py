"""report.json read back: /1 upgraded, /2 round-tripped, tampered or impossible reports refused."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeq.errors import InputError
from edgeq.report.read import load_report, read_report
from edgeq.report.schema import SCHEMA, Report
from tests.typed_reports import full_report

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
V1 = sorted(FIXTURES.glob("v1_*.json"))


def raw(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def typed() -> Report:
    return full_report()


@pytest.mark.parametrize("path", V1, ids=lambda p: p.stem)
def test_every_v1_report_reads_and_round_trips(path: Path) -> None:
    report = load_report(path)
    data = report.to_dict()
    assert data["schema"] == SCHEMA
    again = read_report(data)
    assert again == report
    assert again.to_dict() == data


def test_v1_pruning_is_nested_under_summary_with_the_reports_sample_count() -> None:
    flat = raw("v1_binary_ae_pruned.json")
    pruning = load_report(FIXTURES / "v1_binary_ae_pruned.json").pruning
    assert pruning.method == "ifm"
    assert pruning.summary.threshold == flat["pruning"]["threshold"]
    assert pruning.summary.parameters_after == flat["pruning"]["parameters_after"]
    assert pruning.summary.channels_merged == flat["pruning"]["channels_merged"]
    assert pruning.accuracy.samples == flat["accuracy"]["samples"]
    assert pruning.accuracy.outputs[0].cosine == flat["pruning"]["accuracy"]["outputs"][0]["cosine"]


def test_v1_precision_plan_and_sensitivity_are_reshaped() -> None:
    old = raw("v1_mrl_int4.json")
    report = load_report(FIXTURES / "v1_mrl_int4.json")
    assert report.precision_plan.precisions == {
        row["name"]: row["precision"] for row in old["precision_plan"]["layers"]
    }
    assert [g.name for g in report.precision_plan.layers] == [
        row["name"] for row in old["precision_plan"]["layers"]
    ]
    assert report.sensitivity[0].sensitivity == old["sensitivity"][0]["sensitivity"]
    assert "worst_damage" not in report.to_dict()["sensitivity"][0]


def test_v1_tensorrt_report_says_why_latency_is_missing() -> None:
    report = load_report(FIXTURES / "v1_mrl_tensorrt.json")
    assert report.latency == [] and report.decision.engine_pending
    assert report.latency_status.startswith("not measured here: the engine is pending")
    assert report.quantization.tensorrt_violations == []


def test_v1_tensorrt_details_move_to_engine_and_the_engine_is_built() -> None:
    data = raw("v1_mrl_tensorrt.json") | {"tensorrt": {"device": "NVIDIA H200", "build_seconds": 12.5}}
    data["artifact"]["path"] = "model.plan"
    report = read_report(data)
    assert report.engine == {"device": "NVIDIA H200", "build_seconds": 12.5}
    assert report.decision.engine == "built: model.plan" and not report.decision.engine_pending


def test_typed_report_round_trips(typed: Report, tmp_path: Path) -> None:
    data = typed.to_dict()
    assert data["latency"][0]["speedup"] == typed.latency[0].speedup
    assert data["pruning"]["summary"]["channels_merged"] == 32
    assert read_report(data) == typed
    assert load_report(typed.write(tmp_path / "report.json")) == typed
    assert load_report(tmp_path) == typed


def test_non_finite_values_survive_and_names_stay_strings(typed: Report) -> None:
    data = typed.to_dict()
    data["accuracy"]["outputs"][0] |= {"name": "nan", "sqnr_db": "inf", "max_abs": "nan"}
    data["quantization"]["layers"][0]["sqnr_db"] = "inf"
    report = read_report(data)
    output = report.outputs[0]
    assert output.name == "nan" and output.sqnr_db == math.inf and math.isnan(output.max_abs)
    assert report.quantization.layers[0].sqnr_db == math.inf
    assert read_report(report.to_dict()).to_dict() == report.to_dict()


def test_a_nan_cosine_is_the_worst_and_fails_min_cosine(typed: Report) -> None:
    data = typed.to_dict()
    data["accuracy"]["outputs"].append(data["accuracy"]["outputs"][0] | {"name": "second", "cosine": "nan"})
    data["gates"] = [{"name": "min_cosine", "limit": 0.5, "value": 1.0, "passed": True}]
    report = read_report(data)
    assert math.isnan(report.worst_cosine)
    assert [g.passed for g in report.gates] == [False]


def test_gates_are_recomputed_never_read(typed: Report) -> None:
    data = typed.to_dict()
    slowest = typed.slowest_speedup
    data["gates"] = [
        {"name": "min_speedup", "limit": slowest + 1, "value": slowest + 5, "passed": True},
        {"name": "min_cosine", "limit": 0.99, "value": 0.1, "passed": False},
    ]
    report = read_report(data)
    assert [(g.name, g.value, g.passed) for g in report.gates] == [
        ("min_speedup", slowest, False),
        ("min_cosine", 0.9991, True),
    ]
    assert not report.passed


@pytest.mark.parametrize("passed", ["false", [0], 1, None])
def test_a_gate_verdict_of_the_wrong_type_is_refused(typed: Report, passed: Any) -> None:
    data = typed.to_dict()
    data["gates"][0]["passed"] = passed
    with pytest.raises(InputError, match=r"report\.gates\[0\]\.passed"):
        read_report(data)


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"name": "max_speed", "limit": 1.0, "value": None, "passed": True}, "unknown gate 'max_speed'"),
        ({"name": "min_cosine", "limit": "inf", "value": None, "passed": True}, "finite"),
    ],
)
def test_odd_gates_are_refused(typed: Report, gate: dict, message: str) -> None:
    data = typed.to_dict()
    data["gates"] = [gate]
    with pytest.raises(InputError, match=message):
        read_report(data)


def _set(data: dict, path: str, value: Any) -> dict:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("model.bytes", -1, "report.model.bytes"),
        ("artifact.bytes", -5, "report.artifact.bytes"),
        ("size_ratio", "inf", "report.size_ratio"),
        ("latency.0.compiled.p50_ms", 0.0, r"report.latency\[0\].compiled.p50_ms"),
        ("latency.0.fp32.p90_ms", "nan", r"report.latency\[0\].fp32.p90_ms"),
        ("latency.0.batch", 0, r"report.latency\[0\].batch"),
        ("decision.candidates.0.speedups", {"1": "inf"}, r"report.decision.candidates\[0\].speedups\[1\]"),
        ("decision.candidates.0.speedups", {"x": 1.0}, "key 'x' must be an integer"),
        ("accuracy.outputs.0.cosine", 1.5, r"report.accuracy.outputs\[0\].cosine"),
        ("accuracy.task.primary", ["recall@99"], "'recall@99', which is not among its metrics"),
        ("accuracy.task.primary", [], "at least one metric"),
        ("quantization.layers.0.sqnr_db", -1e6, r"report.quantization.layers\[0\]"),
        ("stages.1.seconds", -2.0, r"report.stages\[1\].seconds"),
        ("pruning.summary.flops_after", -1, "report.pruning.summary.flops_after"),
        ("model.bytes", 10**30, "integer of 31 digits"),
    ],
)
def test_impossible_values_are_refused_naming_the_field(
    typed: Report, path: str, value: Any, field: str
) -> None:
    with pytest.raises(InputError, match=field):
        read_report(_set(typed.to_dict(), path, value))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": "edgeq.report/2", "size_ratio": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"schema": "edgeq.report/2", "recipe": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
        ('{"schema": "edgeq.report/2", "recipe": {"x": ' + "[" * 500 + "]" * 500 + "}}", "nested deeper"),
        ('{"schema": "edgeq.report/2", "size_ratio": ' + "9" * 4000 + "}", "integer of 4000 digits"),
        ("\xff\xfe", "not valid JSON"),
    ],
)
def test_hostile_files_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    with pytest.raises(InputError, match=message) as error:
        load_report(path)
    assert len(str(error.value).splitlines()) == 1 and len(str(error.value)) < 300


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path in a JSON value."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):
            found += _paths(child, (*prefix, index))
    return found


_SOURCES = {
    "v1 tensorrt": raw("v1_mrl_tensorrt.json"),
    "v2 int4": load_report(FIXTURES / "v1_mrl_int4.json").to_dict(),
    "v2 pruned": load_report(FIXTURES / "v1_binary_ae_pruned.json").to_dict(),
}
_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def _tampered(draw: st.DrawFn) -> dict:
    """One of the sources with 1-3 of its fields (anywhere, any depth) replaced by random JSON."""
    source = _SOURCES[draw(st.sampled_from(sorted(_SOURCES)))]
    changes = draw(st.lists(st.tuples(st.sampled_from(_paths(source)), _JUNK), min_size=1, max_size=3))
    return _apply(copy.deepcopy(source), changes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tampered())
def test_tampered_fields_are_refused_or_read_never_a_crash(data: dict) -> None:
    try:
        report = read_report(data)
    except InputError as error:
        assert str(error).startswith(("report", "not an")), error
        return
    assert read_report(report.to_dict()).to_dict() == report.to_dict()


def _apply(data: dict, changes: list) -> dict:
    """`data` with each (path, value) change made where the path still exists."""
    for path, junk in changes:
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced a parent of this path
    return data
