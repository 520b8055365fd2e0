"""The help a new user reads runs as written: `edgeq --help` shows an example for every command, and
its first session works from an empty directory; the README's recipe API example runs too."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import edgeq
from edgeq.cli import cli, main
from edgeq.examples import copy_examples
from tests.bad_inputs.cli import run_edgeq
from tests.conftest import FAST_TARGET


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    """`edgeq COMMAND --help` through the entry point, in this process (one import of torch)."""
    main([*command, "--help"])
    return capsys.readouterr().out


def test_the_top_help_has_an_example_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    for name in cli.commands:
        assert f"edgeq {name} " in text, f"`edgeq --help` shows no example of {name}"
        assert _help(capsys, name).startswith(f"Usage: edgeq {name}")
    for name in ("compile", "targets", "build-engine", "inspect", "calib", "examples"):
        assert "Example" in _help(capsys, name), f"`edgeq {name} --help` has no example"


def test_the_first_session_in_the_help_runs_from_an_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each line of "A first session" (but the dashboard, which serves until Ctrl-C) as written; the
    compile's shipped target is swapped for a fast one (the headline recipe's full compile is
    test_recipes_travel.test_headline_recipe_compiles_from_another_directory)."""
    block = _help(capsys).split("A first session:")[1].split("Your own model:")[0]
    lines = [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if "edgeq " in line]
    commands = [shlex.split(line)[1:] for line in lines]  # the command, without its comment
    assert [c[0] for c in commands] == ["examples", "inspect", "compile", "report", "dashboard"]
    for command in commands[:-1]:
        extra = ["--target", FAST_TARGET] if command[0] == "compile" else []
        result = run_edgeq(*command, *extra, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, f"{shlex.join(command)}: {result.stderr}"
    assert (tmp_path / "out" / "mrl" / "report.html").is_file()


@pytest.mark.slow
def test_the_readme_recipe_api_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_examples(tmp_path)  # the README's relative paths, in a fresh folder
    monkeypatch.chdir(tmp_path)
    recipe, model = edgeq.load_recipe("examples/mrl_encoder/recipe.yaml")
    result = edgeq.compile(model, out="out/m4", recipe=recipe, bits=4)  # keyword overrides win
    assert result.report.recipe["bits"] == 4 and result.artifact.is_file()
