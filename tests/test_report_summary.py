"""The terminal summary: the typed report's numbers, the gates' verdict as the other views show it."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from rich.console import Console

from edgeq.report.gates import verdict
from edgeq.report.read import load_report, read_report
from edgeq.report.schema import Report
from edgeq.report.summary import print_summary

FIXTURES = Path(__file__).parent / "fixtures" / "reports"


def summary_of(report: Report) -> str:
    out = io.StringIO()
    print_summary(report, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_summary_shows_latency_fidelity_task_and_gates() -> None:
    report = load_report(FIXTURES / "v1_binary_ae_gates.json")
    text = summary_of(report)
    assert f"{report.latency[1].speedup:.2f}×" in text and "task: binary-code" in text
    assert "gates: pass" in text
    assert "min_speedup (slowest speedup over the batch sizes >= limit)" in text


def test_a_failed_gate_reads_as_in_the_page_and_the_dashboard() -> None:
    data = load_report(FIXTURES / "v1_binary_ae_gates.json").to_dict()
    data["gates"][1]["limit"] = 50.0
    report = read_report(data)
    assert verdict(report.gates) == "FAIL: min_speedup"
    assert "gates: FAIL: min_speedup" in summary_of(report)


def test_unmeasured_latency_says_why() -> None:
    report = load_report(FIXTURES / "v1_mrl_tensorrt.json")
    assert f"latency: {report.latency_status}" in summary_of(report).replace("\n", " ")


def test_report_strings_are_not_terminal_markup() -> None:
    report = load_report(FIXTURES / "v1_mrl_cpu.json")
    odd = dataclasses.replace(report, model=dataclasses.replace(report.model, name="[/bold] [red]x"))
    assert "[/bold] [red]x" in summary_of(odd)
