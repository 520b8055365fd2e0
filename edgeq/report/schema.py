"""`report.json`, schema edgeq.report/2: one typed `Report`, the object every view of a compile reads.

The JSON is the dataclasses' serialisation; reading it back goes through the same type checks as a
recipe, so a malformed or tampered report is refused naming the field. Gates are never trusted
from the file: `edgeq.report.gates` recomputes them from the values and limits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

from edgeq.config import from_dict
from edgeq.errors import InputError
from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.kinds import KindMetric, OutputKind
from edgeq.measure.layers import LayerDamage
from edgeq.measure.tasks import TaskResult
from edgeq.passes.ifm.summary import PruneSearch, PruningSummary
from edgeq.quant.mixed import LayerGroup
from edgeq.quant.plan import NodeDecision
from edgeq.runtime.machine import Machine
from edgeq.runtime.timing import LatencyEntry

SCHEMA = "edgeq.report/2"


@dataclass
class ModelInfo:
    """The model as the user gave it: its name, where it came from, and its content hash."""

    name: str
    sha256: str
    bytes: int
    path: str | None = None


@dataclass
class TargetInfo:
    name: str
    runtime: str
    providers: list[str]


@dataclass
class ArtifactInfo:
    """The deployable file (`path`, relative to OUT) and every file written beside it."""

    path: str
    bytes: int
    format: str
    files: list[str] = field(default_factory=list)


@dataclass
class RepairStep:
    """One rebuild of a repair: how many of the worst layers it kept and what it measured."""

    kept: int
    worst_cosine: float
    problem: str | None
    speedup: float | None = None  # slowest batch's speedup over fp32; None where not timed


@dataclass
class LayerRepair:
    """A candidate that missed the budget, rebuilt with its most damaging layers kept at a higher
    precision (`kept_as`: fp32, or a finer INT8 form for its MatMul/Gemm: `repair.held_form`)."""

    base: str
    kept_layers: list[str]
    base_speedups: dict[int, float]
    base_worst_cosine: float
    base_problem: str | None
    steps: list[RepairStep] = field(default_factory=list)
    kept_as: str = "fp32"


@dataclass
class CandidateSummary:
    """One lowering the compile built and measured; `problem` says why it was not eligible."""

    name: str
    speedups: dict[int, float]
    worst_cosine: float
    task_drop: float | None
    size_ratio: float | None
    within_budget: bool
    problem: str | None = None
    metrics: list[KindMetric] = field(default_factory=list)
    speedups_vs_onnxruntime: dict[int, float] | None = None
    """On another runtime: the speedup over ONNX Runtime's fp32, beside `speedups` (its own fp32)."""
    repair: LayerRepair | None = None


@dataclass
class Decision:
    """Which candidate was kept and why; `engine` is set for targets whose engine is built on the device."""

    chosen: str
    reason: str
    candidates: list[CandidateSummary] = field(default_factory=list)
    timing_noise: dict[int, float] = field(default_factory=dict)
    engine: str | None = None
    finish_later: str | None = None

    @property
    def engine_pending(self) -> bool:
        return self.finish_later is not None


@dataclass
class Calibration:
    method: str
    samples: int


@dataclass
class QatCheck:
    """Simulated (torch fake-quant) vs measured (the artifact in its runtime) task metric."""

    metric: str
    simulated: float
    measured: float
    gap: float
    tolerance: float
    flagged: bool


@dataclass
class Quantization:
    """What was quantized, how, and which layers add the most noise (culprits, worst first)."""

    method: str
    nodes: list[NodeDecision] = field(default_factory=list)
    layers: list[LayerDamage] = field(default_factory=list)
    calibration: Calibration | None = None
    counts: dict[str, int] = field(default_factory=dict)
    target_problems: list[str] = field(default_factory=list)
    tensorrt_violations: list[str] | None = None
    qat: QatCheck | None = None


@dataclass
class Accuracy:
    """Fidelity of an artifact against fp32 on the evaluation data: per output, and the task metric."""

    samples: int
    outputs: list[OutputFidelity]
    task: TaskResult | None = None
    kinds: list[OutputKind] = field(default_factory=list)
    """Each output's recognised kind and why; `metrics` are the kind metrics the budget judges."""
    metrics: list[KindMetric] = field(default_factory=list)


@dataclass
class Pruning:
    """Iterative Feature Merging's result and what pruning alone cost against the fp32 model."""

    method: str
    summary: PruningSummary
    accuracy: Accuracy
    search: PruneSearch | None = None  # how the amount was measured (None: reports before it)


@dataclass
class PlanStep:
    assignment: dict[str, str]
    damage: float
    problem: str | None


@dataclass
class PlanComparison:
    """One precision plan as an artifact: uniform-int8, uniform-int4 or the planned mix."""

    plan: str
    size_ratio: float | None
    task_drop: float | None
    worst_cosine: float
    speedup: float | None
    within_budget: bool


@dataclass
class PrecisionPlanReport:
    """The per-layer precisions a 4-bit compile chose (`precisions`: group name → precision)."""

    layers: list[LayerGroup]
    precisions: dict[str, str]
    weight_bytes: float
    steps: list[PlanStep] = field(default_factory=list)
    comparison: list[PlanComparison] = field(default_factory=list)


@dataclass
class StageTime:
    name: str
    seconds: float


@dataclass
class Gate:
    """One gate: `value` against `limit`; `passed` is recomputed on read, never trusted from a file."""

    name: str
    limit: float
    value: float | None
    passed: bool
    detail: str | None = None
    """What missed, in words (the `budget` gate: which metric of which output)."""


@dataclass
class ReportWarning:
    """Library warnings grouped and counted instead of flooding the terminal."""

    source: str
    message: str
    count: int


@dataclass
class InputFeed:
    """How one model input was fed: `how` in words, `source` declared, inferred or default."""

    name: str
    how: str
    source: str


@dataclass
class Feeding:
    """How the model was called: each input's role, whether data were streams, what one timed call is."""

    inputs: list[InputFeed]
    streams: bool = False
    latency: str = "one call per batch, samples on each input's batch axis"


@dataclass
class RuntimePrecision:
    """What the runtime really compiled the kept artifact to (OpenVINO's runtime model): the
    precision and settings asked for, per layer type the precisions run, the layers in int8;
    `dynamic_quantization_group_size`: channels per int8 scale of the activations OpenVINO
    quantizes per call for compressed-weight layers (0: none)."""

    runtime: str
    inference_precision: str
    config: dict[str, str]
    layer_precisions: dict[str, dict[str, int]]
    int8_layers: list[str]
    matrix_layers: int
    matrix_layers_int8: int
    dynamic_quantization_group_size: int = 0


@dataclass
class CacheUse:
    """Stages whose results a compile restored from the cache, and when they were measured."""

    key: str
    reused: list[str]
    measured_at: str


@dataclass
class Report:
    """Everything one compile measured; every number was measured in that run, on the artifact.

    `latency` is empty with `latency_status` saying why when the target's runtime was not here
    (never CPU numbers under a GPU target)."""

    run_id: str
    created: str
    edgeq_version: str
    model: ModelInfo
    target: TargetInfo
    recipe: dict[str, Any]
    artifact: ArtifactInfo
    size_ratio: float
    decision: Decision
    accuracy: Accuracy
    latency: list[LatencyEntry]
    quantization: Quantization
    stages: list[StageTime]
    machine: Machine
    latency_status: str | None = None
    pruning: Pruning | None = None
    sensitivity: list[LayerGroup] | None = None
    precision_plan: PrecisionPlanReport | None = None
    engine: dict[str, Any] | None = None
    gates: list[Gate] = field(default_factory=list)
    warnings: list[ReportWarning] = field(default_factory=list)
    feeding: Feeding | None = None
    runtime_precision: RuntimePrecision | None = None
    cache: CacheUse | None = None

    @property
    def outputs(self) -> list[OutputFidelity]:
        return self.accuracy.outputs

    @property
    def task(self) -> TaskResult | None:
        return self.accuracy.task

    @property
    def worst_output(self) -> OutputFidelity | None:
        """The output least like fp32 by cosine; NaN (an output that went NaN) is the worst of all."""
        measured = [o for o in self.outputs if o.cosine is not None]
        return min(measured, key=lambda o: -math.inf if math.isnan(o.cosine) else o.cosine, default=None)

    @property
    def worst_cosine(self) -> float | None:
        worst = self.worst_output
        return worst.cosine if worst else None

    @property
    def task_drop(self) -> float | None:
        """The worst drop over the task's primary metrics (what `max_drop` gates); None without a task."""
        return self.task.worst_primary_drop if self.task is not None else None

    @property
    def headline_latency(self) -> LatencyEntry | None:
        """The entry at batch 1 (the edge case), else at the smallest measured batch."""
        entries = sorted(self.latency, key=lambda e: (e.batch != 1, e.batch))
        return entries[0] if entries else None

    def speedup(self, batch: int | None = None) -> float | None:
        """Median-latency speedup at `batch` (the smallest measured batch when None)."""
        entries = sorted(self.latency, key=lambda e: e.batch)
        entry = next((e for e in entries if batch is None or e.batch == batch), None)
        return entry.speedup if entry else None

    @property
    def slowest_speedup(self) -> float | None:
        """The worst speedup over the measured batch sizes: what `min_speedup` gates."""
        return min((e.speedup for e in self.latency), default=None)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def metric_label(self, metric: KindMetric) -> str:
        """`top-1 agreement`, with the output's name when the model has more than one output."""
        return f"{metric.metric} ({metric.output})" if len(self.accuracy.kinds) > 1 else metric.metric

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA} | json_safe(_plain(self))

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Report:
        """The typed report from its /2 JSON sections (no `schema` key), checked against the types
        alone; `edgeq.report.read` adds the version, shape, value and gate checks a file needs."""
        try:
            return from_dict(cls, _for_reading(cls, body), "report")
        except (OverflowError, RecursionError) as exc:
            raise InputError(f"report has a value out of range: {exc}") from None


def _plain(value: Any) -> Any:
    """Dataclasses as dicts with their derived values (a latency entry's speedup, a metric's drop)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return data | {name: _plain(getattr(value, name)) for name in _DERIVED.get(type(value).__name__, ())}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# Read-only values written for people and other tools; recomputed, never read back.
_DERIVED = {
    "LatencyEntry": ("speedup",),
    "TaskMetric": ("drop",),
    "TaskResult": ("worst_primary_drop",),
    "LayerDamage": ("own_sqnr_db",),
    "PruningSummary": ("channels_merged", "channels_lossless", "parameters_kept"),
    "GroupSummary": ("similar",),
}


def _for_reading(cls: type, data: Any) -> Any:
    """`data` as `cls` reads it: derived keys dropped, "inf"/"nan" strings back to floats where a
    float is expected (a name that happens to be "nan" stays a string)."""
    if not isinstance(data, dict):
        return data
    hints = get_type_hints(cls)
    derived = set(_DERIVED.get(cls.__name__, ()))
    return {k: _restore(hints.get(k), v) for k, v in data.items() if k not in derived}


def _restore(hint: Any, value: Any) -> Any:
    if value in _NON_FINITE and float in _options(hint):
        return float(value)
    origin = getattr(hint, "__origin__", None)
    if isinstance(value, list) and origin in (list, tuple) and hint.__args__:
        return [_restore(hint.__args__[0], v) for v in value]
    if isinstance(value, dict) and origin is dict and hint.__args__:
        return {k: _restore(hint.__args__[1], v) for k, v in value.items()}
    for candidate in _options(hint):
        if dataclasses.is_dataclass(candidate):
            return _for_reading(candidate, value)
        if getattr(candidate, "__origin__", None) in (list, dict) and candidate is not hint:
            return _restore(candidate, value)
    return value


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of `X | None` (and `hint` itself when it is not a union)."""
    return get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


_NON_FINITE = ("inf", "-inf", "nan")


def json_safe(value: Any) -> Any:
    """Non-finite floats become the strings "inf", "-inf", "nan" so the file (or a view's JSON) is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value
