"""Run the real `edgeq` command and check how it refuses bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixture type only
    from tests.conftest import Corpus

EDGEQ = [sys.executable, "-c", "from edgeq.entry import main; main()"]  # the console script


def run_edgeq(
    *args: str | Path, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`edgeq ARGS...` in a subprocess (the real entry point, signals and C-level stderr included)."""
    env = {**os.environ, "PYTHONWARNINGS": "", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*EDGEQ, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def compile_args(
    corpus: Corpus, model: Path | None = None, calib: Path | None = None, *extra: str | Path
) -> list[str | Path]:
    """`compile` arguments for the corpus's model, data and fast target, quiet, then `extra`."""
    return [
        "compile",
        model or corpus.model,
        "--calib",
        calib or corpus.calib,
        "--target",
        corpus.target,
        "-q",
        *extra,
    ]


def leftovers(out: Path) -> list[Path]:
    """The output directory and any hidden staging sibling a compile into `out` left behind."""
    parent = out.parent
    found = [out] if out.exists() else []
    if parent.is_dir():
        found += sorted(parent.glob(f".{out.name}.edgeq-*"))
    return found


def assert_refused(result: subprocess.CompletedProcess, out: Path | None, *words: str) -> str:
    """Exit 2, exactly one `edgeq: error:` line on stderr naming `words`, nothing left behind."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    (line,) = lines
    assert line.startswith("edgeq: error: "), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in: {line}"
    if out is not None:
        assert not leftovers(out), f"left behind: {leftovers(out)}"
    return line
