"""User-supplied names never reach the terminal raw: control sequences and rich markup are shown, not run."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.bad_inputs.cli import compile_args, run_edgeq
from tests.conftest import Corpus

HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\r[bold red]x[link=file:x]\x9b"  # no "/": a file name


def assert_inert(text: str) -> None:
    for raw in ("\x1b", "\x07", "\r", "\x9b"):
        assert raw not in text, f"{raw!r} reached the terminal: {text!r}"


def test_a_hostile_model_name_is_escaped_in_the_summary_and_the_report_view(
    corpus: Corpus, tmp_path: Path
) -> None:
    model = tmp_path / f"{HOSTILE}.onnx"
    shutil.copy(corpus.model, model)
    out = tmp_path / "out"
    args = ["compile", model, "--calib", corpus.calib, "--target", corpus.target, "-o", out]
    result = run_edgeq(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_inert(result.stdout + result.stderr)
    assert "\\x1b]0;pwned" in result.stdout and "[bold red]x[link=file:x]" in result.stdout
    shown = run_edgeq("report", out, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert_inert(shown.stdout + shown.stderr)


def test_a_hostile_path_is_escaped_in_the_error_line(corpus: Corpus, tmp_path: Path) -> None:
    args = compile_args(corpus, None, tmp_path / f"{HOSTILE}.npz")
    result = run_edgeq(*args, "-o", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert_inert(result.stderr)
    assert "\\x1b]0;pwned" in result.stderr
