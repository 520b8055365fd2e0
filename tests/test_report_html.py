"""The HTML report: self-contained, every report string escaped, sections follow the data."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edgeq.report.html import render_html, write_html

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
SVG_NS = "{http://www.w3.org/2000/svg}"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def svgs(page: str) -> list[ET.Element]:
    """Every inline chart parsed as XML: a malformed chart fails here."""
    return [ET.fromstring(chunk) for chunk in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_fixture_renders_self_contained(name: str) -> None:
    page = render_html(load(name))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "must not fetch anything"
    assert "<link" not in page
    charts = svgs(page)
    assert len(charts) >= 3
    assert all(chart.tag == f"{SVG_NS}svg" for chart in charts)


def test_latency_charts_plot_every_sample_with_printed_percentiles() -> None:
    report = load("mrl_cpu_run1.json")
    page = render_html(report)
    latency = [c for c in svgs(page) if c.findtext(f"{SVG_NS}title", "").startswith("batch")]
    assert len(latency) == len(report["latency"])
    samples = sum(len(row[side]["samples_ms"]) for row in report["latency"] for side in ("fp32", "compiled"))
    dots = [c for chart in latency for c in chart.iter(f"{SVG_NS}circle") if c.get("class") == "sample"]
    assert len(dots) == samples
    texts = " ".join(t.text or "" for chart in latency for t in chart.iter(f"{SVG_NS}text"))
    assert f"p50 {report['latency'][0]['compiled']['p50_ms']:.3f}" in texts
    assert "latency per call (ms)" in texts


def test_full_report_has_every_section() -> None:
    page = render_html(load("mrl_cpu_run1.json"))
    for anchor in (
        "overview",
        "latency",
        "size",
        "accuracy",
        "quantization",
        "precision-plan",
        "pruning",
        "stages",
        "machine",
        "warnings",
        "recipe",
    ):
        assert f'id="{anchor}"' in page, anchor
    assert "1nn_acc vs nested dim" in page
    assert "/attn/MatMul_output_0" in page
    assert "AMD EPYC 7B13" in page and "onnxruntime" in page


def test_sections_without_data_are_left_out() -> None:
    page = render_html(load("binary_ae_cpu_no_task.json"))
    for anchor in ("pruning", "precision-plan", "warnings"):
        assert f'id="{anchor}"' not in page
    assert "No task metric was measured" in page
    assert "nested dim" not in page


def test_minimal_and_malformed_reports_still_render() -> None:
    minimal = {
        "schema": "edgeq.report/1",
        "model": {"name": "m"},
        "target": {"name": "t"},
        "artifact": {"bytes": 10},
    }
    assert 'id="overview"' in render_html(minimal)
    odd = {
        **minimal,
        "latency": "oops",
        "accuracy": {"outputs": [None, 3, {"cosine": "x"}]},
        "stages": [{"name": "load", "seconds": float("nan")}],
        "machine": [],
        "quantization": {"nodes": "?", "layers": [None]},
        "gates": [1],
        "latency_extra": None,
        "size_ratio": True,
    }
    assert "<html" in render_html(odd)
    assert "<html" in render_html({})


def test_every_report_string_is_escaped() -> None:
    attack = "<script>alert(1)</script>"
    report = copy.deepcopy(load("mrl_cpu_run1.json"))
    report["model"]["name"] = attack
    report["target"]["name"] = '"><img src=x onerror=alert(2)>'
    report["decision"]["reason"] = attack
    report["accuracy"]["task"]["metrics"][0]["name"] = f"{attack}@8"
    report["quantization"]["layers"][0]["name"] = attack
    report["warnings"][0]["message"] = attack
    report["machine"]["versions"][attack] = attack
    report["recipe"] = {attack: attack}
    page = render_html(report)
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    svgs(page)


def test_write_html_creates_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    assert write_html(load("mrl_trt_jetson.json"), target) == target
    assert "jetson-orin-trt" in target.read_text()
