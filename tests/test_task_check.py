"""A task evaluator that cannot be found is refused before any work, by the measure stage's check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import Corpus


@pytest.mark.parametrize(
    ("task", "words"),
    [
        ("no-such-task", ("unknown task evaluator", "mrl-retrieval")),
        ("no_such_module:evaluate", ("cannot load task evaluator", "no_such_module")),
        ("missing_file.py:evaluate", ("cannot load task evaluator", "missing_file.py")),
    ],
)
def test_an_unknown_task_is_refused_before_the_model_is_prepared(
    corpus: Corpus, tmp_path: Path, task: str, words: tuple[str, ...]
) -> None:
    out = tmp_path / "out"
    args = ["compile", corpus.model, "--calib", corpus.calib, "--target", corpus.target, "-o", out]
    result = run_edgeq(*args, "--task", task, cwd=tmp_path)
    assert result.returncode == 2 and "prepare graph" not in result.stderr and "quantize" not in result.stderr
    assert_refused(run_edgeq(*args, "-q", "--task", task, cwd=tmp_path), out, *words)
