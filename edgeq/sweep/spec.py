"""The sweep file: models, targets and recipe variants (a named list, crossed with a grid of keys).

    models:                      # name: {recipe: file} and/or {model: file.onnx, calib: file.npz}
      mrl: {recipe: ../mrl_encoder/recipe.yaml}
    targets: [native, cpu-x86-avx2]
    recipes:                     # named recipe fields over each model's recipe (default: {base: {}})
      int8: {}
      int4: {bits: 4}
    grid:                        # optional: every combination, dotted keys for nested fields
      budget.min_cosine: [0.99, 0.995]

Paths are read from the sweep file's folder, like a recipe's.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeq.config import from_dict, load_yaml
from edgeq.errors import InputError
from edgeq.recipe import Recipe, build_recipe, load_recipe, resolve_path

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass
class ModelEntry:
    """A model of the sweep: a recipe file that names it, or the model file itself, or both."""

    recipe: str | None = None
    model: str | None = None
    calib: str | None = None


@dataclass
class SweepSpec:
    models: dict[str, ModelEntry]
    targets: list[str]
    recipes: dict[str, dict[str, Any]] = field(default_factory=lambda: {"base": {}})
    grid: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """One compile of the sweep: what it compiles and where its output goes (OUT/model/target/recipe)."""

    model_name: str
    target: str
    recipe_name: str
    model: str
    recipe: Recipe

    @property
    def target_name(self) -> str:
        """The target as the sweep names it: a shipped name, or a target file's stem."""
        return Path(self.target).stem if self.target.endswith((".yaml", ".yml")) else self.target

    @property
    def folder(self) -> Path:
        return Path(_safe(self.model_name), _safe(self.target_name), _safe(self.recipe_name))

    @property
    def label(self) -> str:
        return f"{self.model_name} / {self.target_name} / {self.recipe_name}"


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "_"


def load_sweep(path: str | Path) -> list[RunSpec]:
    """Every run of the sweep file, in order, each recipe checked before anything runs."""
    path = Path(path)
    spec = from_dict(SweepSpec, load_yaml(path, "sweep"), f"sweep {path.name}")
    if not spec.models or not spec.targets or not spec.recipes:
        raise InputError(f"sweep {path.name}: models, targets and recipes must each list at least one")
    base = path.parent
    runs = []
    for model_name, entry in spec.models.items():
        model, recipe = _model_recipe(base, model_name, entry, path.name)
        for target in spec.targets:
            target = resolve_path(base, target) if target.endswith((".yaml", ".yml")) else target
            for recipe_name, overrides in _variants(spec):
                where = f"sweep {path.name}: {model_name} / {recipe_name}"
                runs.append(
                    RunSpec(model_name, target, recipe_name, model, _recipe(recipe, target, overrides, where))
                )
    folders = [run.folder for run in runs]
    clash = next((f for f in folders if folders.count(f) > 1), None)
    if clash is not None:
        raise InputError(f"sweep {path.name}: two runs would write {clash}/; give them distinct names")
    return runs


def _model_recipe(base: Path, name: str, entry: ModelEntry, where: str) -> tuple[str, Recipe]:
    recipe, named = load_recipe(resolve_path(base, entry.recipe)) if entry.recipe else (Recipe(), None)
    model = resolve_path(base, entry.model) if entry.model else named
    if model is None:
        raise InputError(f"sweep {where}: model {name!r} needs `model:` or a recipe with a `model:` key")
    if entry.calib:
        recipe.calib = resolve_path(base, entry.calib)
    return model, recipe


def _variants(spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """(name, recipe fields) for every named recipe crossed with every combination of the grid."""
    keys = list(spec.grid)
    combinations = list(itertools.product(*(spec.grid[k] for k in keys))) if keys else [()]
    variants = []
    for name, overrides in spec.recipes.items():
        for values in combinations:
            fields = dict(overrides)
            for key, value in zip(keys, values, strict=True):
                _set_dotted(fields, key, value)
            suffix = ",".join(f"{k.rpartition('.')[2]}={v}" for k, v in zip(keys, values, strict=True))
            variants.append((f"{name}+{suffix}" if suffix else name, fields))
    return variants


def _set_dotted(fields: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for parent in parents:
        fields = fields.setdefault(parent, {})
    fields[last] = value


def _recipe(base: Recipe, target: str, overrides: dict[str, Any], where: str) -> Recipe:
    try:
        return build_recipe(base, **{**overrides, "target": target})
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
