"""Shared pieces of the adversarial suite: a compile through the real API, evaluator modules on disk."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import edgeq
from edgeq.cli import main
from tests.conftest import Corpus


def compile_api(corpus: Corpus, out: Path, **overrides: Any) -> edgeq.CompileResult:
    """The tiny MLP compiled for the fast target through `edgeq.compile` (what the CLI runs)."""
    arguments = {"target": str(corpus.target), "calib": str(corpus.calib)} | overrides
    return edgeq.compile(corpus.model, out=out, **arguments)


def evaluator_module(monkeypatch: pytest.MonkeyPatch, folder: Path, name: str, body: str) -> str:
    """Write `def evaluate(fp32, compiled, data, **options):` + `body` as module `name`; its spec."""
    source = (
        "from edgeq.measure.tasks import TaskMetric, TaskResult\n\n\n"
        "def evaluate(fp32, compiled, data, **options):\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
    )
    (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(folder))
    return f"{name}:evaluate"


def stored_paths(store: Path) -> list[tuple[str, str]]:
    """(run id, recorded report.json path) of every run in the store."""
    with sqlite3.connect(store) as connection:
        return connection.execute("SELECT run_id, report_path FROM runs ORDER BY created").fetchall()


def run_main(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str]:
    """`edgeq ARGS` in this process: (exit code, stderr); the SIGTERM handler main installs is undone."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exited:
            main([str(a) for a in args])
    finally:
        signal.signal(signal.SIGTERM, handler)
    return exited.value.code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *words: str) -> None:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("edgeq: error: "), (code, err)
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]}"
