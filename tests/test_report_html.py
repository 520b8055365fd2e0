"""The HTML report: rendered from the typed report, self-contained, every report string escaped."""

from __future__ import annotations

import dataclasses
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edgeq.report.charts import (
    Bar,
    Distribution,
    Series,
    TradeoffPoint,
    bar_chart,
    latency_distribution,
    line_chart,
    text_width,
    tradeoff_chart,
)
from edgeq.report.gates import verdict
from edgeq.report.html import render_html, write_html
from edgeq.report.read import load_report, read_report
from edgeq.report.schema import Report
from tests.typed_reports import full_report

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
SVG_NS = "{http://www.w3.org/2000/svg}"


def svgs(page: str) -> list[ET.Element]:
    """Every inline chart parsed as XML: a malformed chart fails here."""
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, flags=re.S)
    assert match, anchor
    return match[1]


@pytest.fixture(scope="module")
def typed() -> Report:
    return full_report()


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_renders_self_contained(path: Path) -> None:
    page = render_html(load_report(path))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "must not fetch anything"
    assert "<link" not in page
    charts = svgs(page)
    assert len(charts) >= 2
    assert all(chart.tag == f"{SVG_NS}svg" for chart in charts)


def test_latency_charts_plot_every_sample_with_printed_percentiles() -> None:
    report = load_report(FIXTURES / "v1_mrl_cpu.json")
    page = render_html(report)
    latency = [c for c in svgs(page) if c.findtext(f"{SVG_NS}title", "").startswith("batch")]
    assert len(latency) == len(report.latency)
    samples = sum(len(e.fp32.samples_ms) + len(e.compiled.samples_ms) for e in report.latency)
    dots = [c for chart in latency for c in chart.iter(f"{SVG_NS}circle") if c.get("class") == "sample"]
    assert len(dots) == samples
    texts = " ".join(t.text or "" for chart in latency for t in chart.iter(f"{SVG_NS}text"))
    assert f"p50 {report.latency[0].compiled.p50_ms:.3f}" in texts
    assert "latency per call (ms)" in texts


def test_full_report_has_every_section(typed: Report) -> None:
    page = render_html(dataclasses.replace(typed, engine={"device": "NVIDIA H200", "build_seconds": 12.5}))
    for anchor in (
        "overview",
        "latency",
        "candidates",
        "size",
        "accuracy",
        "quantization",
        "precision-plan",
        "pruning",
        "engine",
        "stages",
        "machine",
        "warnings",
        "recipe",
    ):
        assert f'id="{anchor}"' in page, anchor
    assert "1nn_acc vs nested dim" in page
    assert "NVIDIA H200" in section(page, "engine")
    assert "int4-planned (chosen)" in section(page, "candidates")
    assert "1nn_acc@8: simulated 62.00, measured 61.90" in section(page, "quantization")


def test_pruning_section_reads_the_pruning_fields(typed: Report) -> None:
    pruning = section(render_html(typed), "pruning")
    summary = typed.pruning.summary
    assert "<dt>channels merged</dt><dd>32</dd>" in pruning
    assert f"{summary.parameters_after / summary.parameters_before * 100:.1f}%" in pruning
    assert "<td>fc1</td><td>Gemm</td>" in pruning
    assert "Pruned model vs fp32" in pruning and "0.9995" in pruning


def test_real_pruned_report_shows_what_ifm_did() -> None:
    report = load_report(FIXTURES / "v1_binary_ae_pruned.json")
    pruning = section(render_html(report), "pruning")
    summary = report.pruning.summary
    assert f"<dd>{summary.channels_merged}</dd>" in pruning
    assert f"{summary.parameters_before:,}" in pruning and f"{summary.flops_after:,}" in pruning
    changed = [layer for layer in summary.layers if layer.channels_after != layer.channels_before]
    assert changed and all(f"<td>{layer.node}</td>" in pruning for layer in changed)


def test_sections_without_data_are_left_out() -> None:
    page = render_html(load_report(FIXTURES / "v1_mrl_cpu.json"))
    for anchor in ("pruning", "precision-plan", "engine"):
        assert f'id="{anchor}"' not in page


def test_unmeasured_latency_says_why(typed: Report) -> None:
    report = load_report(FIXTURES / "v1_mrl_tensorrt.json")
    page = render_html(report)
    assert html.escape(report.latency_status) in section(page, "latency")
    assert "engine: pending" in section(page, "overview")
    no_task = render_html(dataclasses.replace(typed, accuracy=dataclasses.replace(typed.accuracy, task=None)))
    assert "No task metric was measured" in no_task


def test_gates_show_the_same_verdict_as_the_other_views(typed: Report) -> None:
    data = typed.to_dict()
    data["gates"] = [
        {"name": "min_speedup", "limit": 1000.0, "value": 2000.0, "passed": True},
        {"name": "min_cosine", "limit": 0.5, "value": None, "passed": False},
    ]
    report = read_report(data)
    assert verdict(report.gates) == "FAIL: min_speedup"
    overview = section(render_html(report), "overview")
    assert '<span class="badge fail">FAIL: min_speedup</span>' in overview
    assert "slowest speedup over the batch sizes" in overview
    assert f"{report.slowest_speedup:.4f}" in overview


def test_every_report_string_is_escaped(typed: Report) -> None:
    attack = "<script>alert(1)</script>"
    data = typed.to_dict()
    data["model"]["name"] = attack
    data["target"]["name"] = '"><img src=x onerror=alert(2)>'
    data["decision"]["reason"] = attack
    data["accuracy"]["task"]["metrics"][0]["name"] = f"{attack}@8"
    data["accuracy"]["task"]["primary"][0] = f"{attack}@8"
    data["quantization"]["layers"][0]["name"] = attack
    data["pruning"]["summary"]["layers"][0]["node"] = attack
    data["warnings"][0]["message"] = attack
    data["machine"]["versions"][attack] = attack
    data["recipe"] = {attack: attack}
    page = render_html(read_report(data))
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    svgs(page)


def test_write_html_creates_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    assert write_html(load_report(FIXTURES / "v1_mrl_tensorrt.json"), target) == target
    assert "gpu-tensorrt" in target.read_text()


def _boxes(chart: ET.Element, size: str = "11") -> list[tuple[float, float, float, float, str]]:
    """The extent of every label of `size` in a chart, from its anchor and text_width."""
    boxes = []
    for text in chart.iter(f"{SVG_NS}text"):
        if text.get("font-size") != size:
            continue
        x, y, content = float(text.get("x")), float(text.get("y")), text.text or ""
        width = text_width(content, 11, bold=text.get("font-weight") == "600")
        start = {"start": x, "middle": x - width / 2, "end": x - width}[text.get("text-anchor", "start")]
        boxes.append((start, y - 10, start + width, y + 2, content))
    return boxes


def _overlapping(boxes: list[tuple[float, float, float, float, str]]) -> list[tuple[str, str]]:
    return [
        (a[4], b[4])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]


def _median_x(chart: ET.Element) -> list[float]:
    return [float(line.get("x1")) for line in chart.iter(f"{SVG_NS}line") if line.get("class") == "median"]


def test_latency_axis_turns_log_when_outliers_would_squeeze_the_medians() -> None:
    steady = [0.8 + 0.01 * i for i in range(40)]
    rows = [Distribution("fp32", "#000", [*steady, 95.0], 1.0, 1.1, 95.0)]
    chart = ET.fromstring(latency_distribution("batch 1", rows))
    texts = " ".join(t.text or "" for t in chart.iter(f"{SVG_NS}text"))
    assert "log scale: outliers reach 95 ms" in texts
    ticks = [
        float(t.text)
        for t in chart.iter(f"{SVG_NS}text")
        if t.get("text-anchor") == "middle" and not t.get("font-weight")
    ]
    left, right = min(ticks), max(ticks)
    assert left > 0 and right >= 95
    # the median sits a visible share into the plot, not in the first few pixels
    axis_lines = [
        float(line.get("x1")) for line in chart.iter(f"{SVG_NS}line") if line.get("stroke") == "#e3e7ec"
    ]
    (median,) = _median_x(chart)
    assert (median - min(axis_lines)) / (max(axis_lines) - min(axis_lines)) > 0.25

    calm = ET.fromstring(
        latency_distribution("batch 1", [Distribution("fp32", "#000", steady, 1.0, 1.1, 1.2)])
    )
    calm_texts = [t.text for t in calm.iter(f"{SVG_NS}text")]
    assert "0.00" in calm_texts  # linear from zero
    assert not any("log scale" in (t or "") for t in calm_texts)


def test_candidates_chart_marks_the_chosen_one_within_the_budget(typed: Report) -> None:
    budgeted = dataclasses.replace(typed, recipe={"budget": {"max_drop": 0.75, "min_cosine": 0.99}})
    (chart,) = svgs(section(render_html(budgeted), "tradeoff"))
    dots = [c for c in chart.iter(f"{SVG_NS}circle") if (c.get("class") or "").startswith("candidate")]
    assert len(dots) == len(typed.decision.candidates)
    (chosen,) = [c for c in dots if c.get("class") == "candidate chosen"]
    assert chosen.findtext(f"{SVG_NS}title").startswith(f"{typed.decision.chosen}:")
    texts = [t.text for t in chart.iter(f"{SVG_NS}text")]
    assert "budget 0.75" in texts
    assert "task drop (better ↑)" in texts
    assert not _overlapping(_boxes(chart))


def test_crowded_candidates_get_labels_that_neither_collide_nor_clip() -> None:
    names = [
        "int8-static",
        "int8-static-per-tensor",
        "int8-dynamic",
        "int8-dynamic-per-tensor",
        "int4",
        "fp32",
    ]
    points = [
        TradeoffPoint(name, 2.0 + 0.01 * i, 0.999 - 0.0001 * i, i == 1, i != 4)
        for i, name in enumerate(names)
    ]
    chart = ET.fromstring(tradeoff_chart("crowded", points, "worst output cosine", True, 0.99))
    boxes = _boxes(chart)  # the candidates', the budget's and the fp32 line's labels
    assert len([box for box in boxes if box[4].split(" (")[0] in names]) == len(names)
    ringed = [
        c for c in chart.iter(f"{SVG_NS}circle") if c.get("class") == "candidate" and c.get("fill") == "white"
    ]
    assert [c.findtext(f"{SVG_NS}title").split(":")[0] for c in ringed] == ["int4"]  # outside the budget
    assert not _overlapping(boxes)
    width = float(chart.get("width"))
    assert all(box[0] >= 0 and box[2] <= width for box in boxes)
    # fp32 at the fastest speed: its line's label turns to the left instead of leaving the chart
    slow = [TradeoffPoint("int8", 0.7, 0.999, False, True), TradeoffPoint("fp32", 1.0, 1.0, True, True)]
    edge = ET.fromstring(tradeoff_chart("slow", slow, "worst output cosine", True, None))
    assert all(box[2] <= float(edge.get("width")) for box in _boxes(edge))


def test_long_bar_labels_are_not_clipped() -> None:
    label = "compile-int8-dynamic-per-tensor"
    chart = ET.fromstring(bar_chart("stages", [Bar(label, 1.0, "1.00 s"), Bar("load", 0.1, "0.10 s")], "s"))
    (text,) = [t for t in chart.iter(f"{SVG_NS}text") if t.text == label]
    assert float(text.get("x")) - text_width(label) >= 0


def test_two_series_never_print_values_on_top_of_each_other() -> None:
    series = [
        Series("fp32", [99.06, 99.01, 100.0], "#111"),
        Series("compiled", [99.14, 99.09, 100.0], "#222"),
    ]
    chart = ET.fromstring(line_chart("map", ["8", "16", "32"], series, "dim", "map"))
    assert not _overlapping(_boxes(chart))
    printed = [t.text for t in chart.iter(f"{SVG_NS}text") if t.get("font-size") == "11"]
    assert printed.count("100") == 1  # an equal value is printed once
