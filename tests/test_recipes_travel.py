"""Shipped recipes run from any directory and from an installed wheel: their paths are their own."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

import edgeq
from edgeq.examples import FILES, copy_examples, recipes
from edgeq.progress import Progress
from edgeq.stages.intake import intake
from tests.bad_inputs.cli import assert_refused, run_edgeq
from tests.conftest import FAST_TARGET

ROOT = Path(__file__).resolve().parent.parent


def test_every_shipped_file_exists_and_every_recipe_is_listed() -> None:
    assert all((ROOT / name).is_file() for name in FILES)
    assert sorted(recipes()) == sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("examples/*/recipe*.yaml"))


def test_headline_recipe_compiles_from_another_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    recipe = ROOT / "examples" / "mrl_encoder" / "recipe.yaml"
    result = run_edgeq("compile", "--recipe", recipe, "-o", "out/mrl", "-q", cwd=elsewhere, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((elsewhere / "out" / "mrl" / "report.json").read_text())
    assert report["model"]["path"] == str(ROOT / "examples" / "mrl_encoder" / "model.onnx")
    assert report["accuracy"]["task"]["task"] == "mrl-retrieval"


@pytest.mark.parametrize("name", [n for n in recipes() if n != "examples/mrl_encoder/recipe.yaml"])
def test_every_other_recipe_loads_and_reads_its_data_from_a_copy(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied elsewhere and read from a third directory: the recipe, its model and data all resolve."""
    copy_examples(tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    recipe, model = edgeq.load_recipe(Path("copy") / name)
    assert model is not None and Path(model).is_absolute() and Path(model).is_file()
    assert recipe.calib is not None and Path(recipe.calib).parent == (tmp_path / "copy" / "calib")
    state = intake(model, recipe, tmp_path / "out", Progress(enabled=False))
    assert state.calib and state.evaluation and state.target.name == "cpu-x86-avx2"


def test_recipe_paths_are_relative_to_the_recipe_absolute_ones_as_given(tmp_path: Path) -> None:
    mine = tmp_path / "project" / "recipes"
    mine.mkdir(parents=True)
    (mine / "my-target.yaml").write_text(Path(FAST_TARGET).read_text())
    (mine / "my_task.py").write_text(
        "from edgeq.measure.tasks.retrieval import evaluate_mrl_retrieval as evaluate\n"
    )
    model = ROOT / "examples" / "mrl_encoder" / "model.onnx"
    (mine / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "model": str(model),
                "calib": "../../" + os.path.relpath(ROOT / "calib" / "mrl_digits.npz", tmp_path),
                "target": "my-target.yaml",
                "task": {"name": "my_task.py:evaluate", "options": {"dims": [8, 16]}},
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_edgeq("compile", "--recipe", mine / "r.yaml", "-o", "out", "-q", cwd=elsewhere, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((elsewhere / "out" / "report.json").read_text())
    assert report["target"]["name"] == yaml.safe_load(Path(FAST_TARGET).read_text())["name"]
    assert report["recipe"]["task"]["name"] == str(mine / "my_task.py") + ":evaluate"
    assert report["recipe"]["calib"] == str(ROOT / "calib" / "mrl_digits.npz")
    assert report["accuracy"]["task"]["task"] == "mrl-retrieval"


def test_a_recipe_path_that_is_not_there_names_the_resolved_file(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("model: nothere.onnx\ncalib: data.npz\n")
    result = run_edgeq("compile", "--recipe", tmp_path / "r.yaml", "-o", tmp_path / "out", cwd=ROOT)
    assert_refused(result, tmp_path / "out", str(tmp_path / "nothere.onnx"))


def test_examples_command_copies_and_refuses_to_overwrite(tmp_path: Path) -> None:
    listed = run_edgeq("examples", cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.split() == recipes()
    assert run_edgeq("examples", "ex", cwd=tmp_path).returncode == 0
    assert all((tmp_path / "ex" / name).is_file() for name in FILES)
    assert_refused(run_edgeq("examples", "ex", cwd=tmp_path), None, "already exists", "--force")
    assert run_edgeq("examples", "ex", "--force", cwd=tmp_path).returncode == 0


def test_the_built_wheel_ships_the_examples_and_runs_the_headline_recipe(tmp_path: Path) -> None:
    """A wheel built from this tree, installed in a scratch venv, compiles its own copied example."""
    wheels = tmp_path / "wheels"
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", wheels]
    built = subprocess.run([*map(str, build), str(ROOT)], capture_output=True, text=True, timeout=300)
    if built.returncode and not isolation and "hatchling" in built.stderr and "distribution" in built.stderr:
        pytest.skip("the build backend (hatchling) is neither installed nor reachable on a package index")
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("edgeq-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel]
    subprocess.run(list(map(str, install)), check=True, capture_output=True, env=clean, timeout=300)
    edgeq_cli = env_dir / "bin" / "edgeq"
    where = subprocess.run(
        [python, "-c", "import edgeq; print(edgeq.__file__)"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(env_dir)), where.stdout + where.stderr
    copied = subprocess.run(
        [edgeq_cli, "examples", "ex"], cwd=tmp_path, env=clean, capture_output=True, text=True
    )
    assert copied.returncode == 0, copied.stderr
    compiled = subprocess.run(
        [edgeq_cli, "compile", "--recipe", "ex/examples/mrl_encoder/recipe.yaml", "--target", FAST_TARGET]
        + ["-o", "out", "-q"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert (
        json.loads((tmp_path / "out" / "report.json").read_text())["accuracy"]["task"]["task"]
        == "mrl-retrieval"
    )
