"""The shipped example recipes with their small models and calibration files, copied where a user wants
them: `edgeq examples DEST` works the same from a source checkout and from an installed wheel."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from edgeq.errors import InputError

# Every file the shipped recipes read, relative to the repository root (and to edgeq/_examples/ in a
# wheel). The recipes name their files relative to themselves, so this layout must be kept.
FILES = (
    "examples/mrl_encoder/recipe.yaml",
    "examples/mrl_encoder/recipe_pruned.yaml",
    "examples/mrl_encoder/model.onnx",
    "examples/binary_ae/recipe.yaml",
    "examples/binary_ae/recipe_encoder.yaml",
    "examples/binary_ae/model.onnx",
    "examples/binary_ae/encoder.onnx",
    "examples/pointer_net/recipe.yaml",
    "examples/pointer_net/recipe_hull.yaml",
    "examples/pointer_net/tsp.onnx",
    "examples/pointer_net/hull.onnx",
    "calib/README.md",
    "calib/mrl_digits.npz",
    "calib/binary_ae.npz",
    "calib/pointer_tsp.npz",
    "calib/pointer_hull.npz",
)


def examples_root() -> Path:
    """Where the example files are: inside the installed package, or the repository in a checkout."""
    packaged = Path(str(resources.files("edgeq"))) / "_examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent


def recipes() -> list[str]:
    """The shipped recipes, as paths relative to a copied examples folder."""
    return [name for name in FILES if name.endswith(".yaml")]


def copy_examples(dest: Path, force: bool = False) -> list[Path]:
    """Copy every example file under `dest` (keeping the layout the recipes' relative paths need)."""
    root = examples_root()
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise InputError(f"this installation lacks the example file {missing[0]} (looked in {root})")
    clashes = [name for name in FILES if (dest / name).exists()]
    if clashes and not force:
        raise InputError(f"{dest / clashes[0]} already exists: choose another folder or pass --force")
    copied = []
    for name in FILES:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, target)
        copied.append(target)
    return copied
