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
    "streams": "edgeq.measure.streams:evaluate_streams",
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
    name = recipe.task.name
    evaluator = resolve_evaluator(name)
    try:
        result = evaluator(fp32, compiled, evaluation, **recipe.task.options)
    except TypeError as exc:
        raise InputError(f"task {name!r} rejected its options: {exc}") from None
    except (KeyError, IndexError, ValueError, ArithmeticError) as exc:  # data of another family
        why = f"no array {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise InputError(f"task {name!r} cannot evaluate this evaluation data ({why})") from None
    return checked_result(result, name)


def checked_result(result: Any, name: str) -> TaskResult:
    """A custom evaluator's return value, refused in one line unless it is a well-formed TaskResult."""
    where = f"task evaluator {name!r} returned"
    if not isinstance(result, TaskResult):
        raise InputError(f"{where} a {type(result).__name__}; it must return edgeq's TaskResult")
    if not isinstance(result.metrics, list) or not result.metrics:
        raise InputError(f"{where} no metrics; TaskResult.metrics must list TaskMetric objects")
    for metric in result.metrics:
        if not isinstance(metric, TaskMetric) or not isinstance(metric.name, str):
            raise InputError(f"{where} a metric that is not a TaskMetric: {metric!r:.60}")
        for side in ("fp32", "compiled"):
            value = getattr(metric, side)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
                raise InputError(f"{where} metric {metric.name!r} with a non-numeric {side} value")
            setattr(metric, side, float(value))  # numpy scalars too: the report is JSON
    names = {metric.name for metric in result.metrics}
    primary = result.primary if isinstance(result.primary, list) else None
    if not primary or any(p not in names for p in primary):
        raise InputError(
            f"{where} primary {result.primary!r:.60}: it must list some of its metrics {sorted(names)}"
        )
    return result
