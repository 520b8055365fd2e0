"""The HTML report: rendered from the typed report, self-contained, every report string escaped."""

from __future__ import annotations

import dataclasses
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

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
