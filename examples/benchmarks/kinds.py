"""Each wild model's output kinds and every candidate's kind metric, from one default compile each.

    python -P examples/benchmarks/kinds.py minilm_l6_ts crepe_tiny rapidocr_cls mtcnn_rnet basic_pitch

Compiles ~/.cache/edgeq-wild/NAME/model.onnx with its calib.npz into /tmp/kinds-NAME (the corpus is
only read) and prints a markdown table: kind and why, then per candidate its speedups, worst cosine,
kind metrics and verdict, the chosen one and the compile's exit code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeq.report.read import load_report

CORPUS = Path.home() / ".cache" / "edgeq-wild"


def compile_one(name: str) -> tuple[Path, int]:
    out = Path("/tmp") / f"kinds-{name}"
    model, calib = CORPUS / name / "model.onnx", CORPUS / name / "calib.npz"
    command = [sys.executable, "-P", "-m", "edgeq", "compile", model, "--calib", calib, "-o", out]
    done = subprocess.run([*map(str, command), "--force", "-q"], capture_output=True, text=True)
    return out / "report.json", done.returncode


def rows(name: str, report_path: Path, code: int) -> list[str]:
    report = load_report(report_path)
    kinds = "; ".join(f"`{k.name}` {k.kind} ({k.reason})" for k in report.accuracy.kinds)
    lines = [f"**{name}** — {kinds}; kept **{report.decision.chosen}**, exit {code}", ""]
    lines += [
        "| candidate | speedup b1 / b32 | worst cosine | kind metrics | in budget |",
        "|---|---|---|---|---|",
    ]
    for c in report.decision.candidates:
        speed = " / ".join(f"{v:.2f}×" for _, v in sorted(c.speedups.items()))
        metrics = ", ".join(
            f"{report.metric_label(m)} {m.value:.3f}" for m in c.metrics if "SQNR" not in m.metric
        )
        lines.append(f"| {c.name} | {speed} | {c.worst_cosine:.4f} | {metrics} | {c.within_budget} |")
    return [*lines, ""]


def main(names: list[str]) -> None:
    for name in names:
        print("\n".join(rows(name, *compile_one(name))))


if __name__ == "__main__":
    main(sys.argv[1:])
