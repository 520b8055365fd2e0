"""`report.json`, schema edgeq.report/1: typed objects a pipeline can read back and gate on."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeq.errors import InputError
from edgeq.measure.fidelity import OutputFidelity
from edgeq.measure.tasks import TaskMetric, TaskResult
from edgeq.runtime.timing import LatencyEntry, LatencyStats

SCHEMA = "edgeq.report/1"


@dataclass
class Gate:
    name: str
    limit: float
    value: float | None
    passed: bool


@dataclass
class Report:
    """Everything one compile measured; every number was measured in that run, on the artifact."""

    run_id: str
    created: str
    edgeq_version: str
    model: dict[str, Any]
    target: dict[str, Any]
    recipe: dict[str, Any]
    artifact: dict[str, Any]
    size_ratio: float
    decision: dict[str, Any]
    accuracy_samples: int
    outputs: list[OutputFidelity]
    task: TaskResult | None
    latency: list[LatencyEntry]
    quantization: dict[str, Any]
    pruning: dict[str, Any] | None
    stages: list[dict[str, Any]]
    machine: dict[str, Any]
    gates: list[Gate] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] | None = None
    precision_plan: dict[str, Any] | None = None

    @property
    def worst_cosine(self) -> float | None:
        values = [o.cosine for o in self.outputs if o.cosine is not None]
        return min(values) if values else None

    def speedup(self, batch: int | None = None) -> float | None:
        """Median-latency speedup at `batch` (the smallest measured batch when None)."""
        entries = sorted(self.latency, key=lambda e: e.batch)
        entry = next((e for e in entries if batch is None or e.batch == batch), None)
        return entry.speedup if entry else None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": SCHEMA,
            "edgeq_version": self.edgeq_version,
            "run_id": self.run_id,
            "created": self.created,
            "model": self.model,
            "target": self.target,
            "recipe": self.recipe,
            "artifact": self.artifact,
            "size_ratio": self.size_ratio,
            "decision": self.decision,
            "accuracy": {
                "samples": self.accuracy_samples,
                "outputs": [asdict(o) for o in self.outputs],
                "task": self.task.to_dict() if self.task else None,
            },
            "latency": [asdict(e) | {"speedup": e.speedup} for e in self.latency],
            "quantization": self.quantization,
            "pruning": self.pruning,
            "sensitivity": self.sensitivity,
            "precision_plan": self.precision_plan,
            "stages": self.stages,
            "machine": self.machine,
            "gates": [asdict(g) for g in self.gates],
            "warnings": self.warnings,
        }
        return _json_safe(data)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise InputError(
                f"not an {SCHEMA} report (schema is {data.get('schema')!r})"
                if isinstance(data, dict)
                else f"not an {SCHEMA} report"
            )
        data = _json_restore(data)
        try:
            accuracy = data["accuracy"]
            task = accuracy.get("task")
            return cls(
                run_id=data["run_id"],
                created=data["created"],
                edgeq_version=data["edgeq_version"],
                model=data["model"],
                target=data["target"],
                recipe=data["recipe"],
                artifact=data["artifact"],
                size_ratio=data["size_ratio"],
                decision=data["decision"],
                accuracy_samples=accuracy["samples"],
                outputs=[OutputFidelity(**o) for o in accuracy["outputs"]],
                task=_task_from_dict(task) if task else None,
                latency=[_latency_from_dict(e) for e in data["latency"]],
                quantization=data["quantization"],
                pruning=data.get("pruning"),
                stages=data["stages"],
                machine=data["machine"],
                gates=[Gate(**g) for g in data.get("gates", [])],
                warnings=data.get("warnings", []),
                sensitivity=data.get("sensitivity"),
                precision_plan=data.get("precision_plan"),
            )
        except (KeyError, TypeError) as exc:
            raise InputError(f"report is missing or has a malformed field: {exc}") from None


def load_report(path: str | Path) -> Report:
    """Read a report.json back into typed objects (one clear error if it is not one)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read report {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"report {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    return Report.from_dict(data)


def _task_from_dict(data: dict[str, Any]) -> TaskResult:
    names = {f.name for f in fields(TaskMetric)}
    metrics = [TaskMetric(**{k: v for k, v in m.items() if k in names}) for m in data["metrics"]]
    return TaskResult(data["task"], metrics, data["primary"], data.get("details", {}))


def _latency_from_dict(data: dict[str, Any]) -> LatencyEntry:
    return LatencyEntry(
        data["batch"],
        data["threads"],
        data["rounds"],
        LatencyStats(**data["fp32"]),
        LatencyStats(**data["compiled"]),
    )


def _json_safe(value: Any) -> Any:
    """Non-finite floats become the strings "inf", "-inf", "nan" so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def _json_restore(value: Any) -> Any:
    if value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_restore(v) for v in value]
    return value
