"""A lowering candidate and what it measured; the per-layer analysis a 4-bit compile adds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.measure.budget import budget_margin, budget_problem
from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.kinds import KindMetric
from edgeq.measure.tasks import TaskResult
from edgeq.quant.mixed import LayerGroup, PrecisionPlan
from edgeq.quant.plan import QuantPlan
from edgeq.recipe import Recipe
from edgeq.report.schema import CandidateSummary
from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry


@dataclass
class Candidate:
    """One way to lower the model, with what it measured."""

    name: str
    model: onnx.ModelProto
    plan: QuantPlan | None = None
    artifact: Artifact | None = None
    runner: OrtRunner | None = None
    outputs: list[OutputFidelity] = field(default_factory=list)
    task: TaskResult | None = None
    latency: list[LatencyEntry] = field(default_factory=list)
    metrics: list[KindMetric] = field(default_factory=list)
    """Each output's kind metrics (neighbour recall, top-1 agreement, ...) against fp32."""
    vs_onnxruntime: dict[int, float] = field(default_factory=dict)
    """Speedup per batch over ONNX Runtime's fp32, where the target's runtime is another one."""

    @property
    def worst_cosine(self) -> float:
        values = [o.cosine for o in self.outputs if o.cosine is not None]
        values += [o.agreement for o in self.outputs if o.agreement is not None and o.cosine is None]
        return min(values, default=1.0)

    @property
    def mean_speedup(self) -> float:
        """Geometric mean over the measured batch sizes."""
        return math.exp(sum(math.log(e.speedup) for e in self.latency) / len(self.latency))

    def budget_problem(self, recipe: Recipe) -> str | None:
        """Why this candidate misses the accuracy budget, or None: the task's drop first, else each
        output by its kind's metric (`edgeq.measure.budget`), else (kinds not measured) cosine."""
        drop = self.task.worst_primary_drop if self.task is not None else None
        return budget_problem(recipe.budget, self.metrics, drop, self.worst_cosine)

    def budget_margin(self, recipe: Recipe) -> float:
        """How far inside the budget it measured (`edgeq.measure.budget.budget_margin`)."""
        drop = self.task.worst_primary_drop if self.task is not None else None
        return budget_margin(recipe.budget, self.metrics, drop, self.worst_cosine)

    def summary(self, recipe: Recipe, source_bytes: int, problem: str | None = None) -> CandidateSummary:
        return CandidateSummary(
            name=self.name,
            speedups={e.batch: e.speedup for e in self.latency},
            worst_cosine=self.worst_cosine,
            task_drop=self.task.worst_primary_drop if self.task else None,
            size_ratio=self.artifact.bytes / source_bytes if self.artifact else None,
            within_budget=self.budget_problem(recipe) is None,
            problem=problem,
            metrics=self.metrics,
            speedups_vs_onnxruntime=dict(self.vs_onnxruntime) or None,
        )


@dataclass
class Analysis:
    """Per-layer sensitivity and, for 4-bit compiles, the chosen precision plan."""

    groups: list[LayerGroup]
    plan: PrecisionPlan | None = None

    def ranking(self) -> list[LayerGroup]:
        """Groups measured alone, by their worst damage, most damaging first (the culprit table);
        a 4-bit compile probes repeated blocks by role, so only `--analyze` measures every group."""
        measured = [g for g in self.groups if g.sensitivity]
        return sorted(measured, key=lambda g: max(g.sensitivity.values()), reverse=True)
