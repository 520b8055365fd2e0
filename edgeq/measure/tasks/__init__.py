"""Task evaluators: judge a compiled model by its family's own metric, side by side with fp32.

An evaluator is a callable ``evaluate(fp32, compiled, data, **options) -> TaskResult`` where
``fp32`` and ``compiled`` are predictors (``predict(data) -> {output name: array}``) and ``data``
holds every array of the evaluation set: the model inputs plus extras such as ``labels``.
Built-ins are named in ``BUILTIN_EVALUATORS``; anything else is given as ``module:function``
or ``path/to/file.py:function``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeq.errors import InputError

if TYPE_CHECKING:  # the recipe is only read here, never built
    from edgeq.recipe import Recipe


class Predictor(Protocol):
    """Anything that maps a data set to model outputs, e.g. `edgeq.runtime.session.OrtRunner`."""

    def predict(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class TaskMetric:
    """One metric measured on both models; `drop` is positive when the compiled model is worse."""

    name: str
    fp32: float
    compiled: float
    higher_is_better: bool = True
    unit: str = ""

    @property
    def drop(self) -> float:
        delta = self.fp32 - self.compiled
        return delta if self.higher_is_better else -delta


@dataclass
class TaskResult:
    """A family's metrics; `primary` names the metrics a `--max-drop` gate checks (worst drop)."""

    task: str
    metrics: list[TaskMetric]
    primary: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> TaskMetric:
        return next(m for m in self.metrics if m.name == name)

    @property
    def worst_primary_drop(self) -> float:
        return max(self.metric(name).drop for name in self.primary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "primary": self.primary,
            "worst_primary_drop": self.worst_primary_drop,
            "metrics": [asdict(m) | {"drop": m.drop} for m in self.metrics],
            "details": self.details,
        }


Evaluator = Callable[..., TaskResult]

BUILTIN_EVALUATORS = {
    "mrl-retrieval": "edgeq.measure.tasks.retrieval:evaluate_mrl_retrieval",
    "binary-code": "edgeq.measure.tasks.binary_code:evaluate_binary_code",
    "pointer-hull": "edgeq.measure.tasks.pointer:evaluate_convex_hull",
    "pointer-tsp": "edgeq.measure.tasks.pointer:evaluate_tsp",
}


def resolve_evaluator(spec: str) -> Evaluator:
    """A built-in evaluator name or a `module:function` path, imported and checked callable."""
    target = BUILTIN_EVALUATORS.get(spec, spec)
    module_name, _, function_name = target.rpartition(":")
    if not module_name or not function_name:
        known = ", ".join(sorted(BUILTIN_EVALUATORS))
        raise InputError(
            f"unknown task evaluator {spec!r}: use one of {known}, module:function or file.py:function"
        )
    try:
        function = getattr(_import(module_name), function_name)
    except (ImportError, AttributeError, OSError) as exc:
        raise InputError(f"cannot load task evaluator {spec!r}: {exc}") from None
    if not callable(function):
        raise InputError(f"task evaluator {spec!r} is not callable")
    return function


def _import(module_name: str) -> Any:
    """A module by dotted name, or a Python file by path (a recipe's own evaluator next to it)."""
    if not module_name.endswith(".py"):
        return importlib.import_module(module_name)
    spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
    if spec is None or spec.loader is None or not Path(module_name).is_file():
        raise ImportError(f"no Python file {module_name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate_task(
    recipe: Recipe, fp32: Predictor, compiled: Predictor, evaluation: Mapping[str, np.ndarray]
) -> TaskResult | None:
    """The recipe's task metric for both models, or None when the recipe names no task."""
    if recipe.task is None:
        return None
    evaluator = resolve_evaluator(recipe.task.name)
    try:
        return evaluator(fp32, compiled, evaluation, **recipe.task.options)
    except TypeError as exc:
        raise InputError(f"task {recipe.task.name!r} rejected its options: {exc}") from None
