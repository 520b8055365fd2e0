"""The one typed compile state every stage reads and extends, from intake to the written report."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from edgeq.backends.artifact import Artifact
from edgeq.backends.registry import Backend
from edgeq.data import Arrays
from edgeq.measure.kinds import OutputKind
from edgeq.measure.layers import LayerDamage
from edgeq.progress import Progress
from edgeq.quant.smoothquant import SmoothRule
from edgeq.recipe import Recipe
from edgeq.report.schema import CacheUse, CandidateSummary, Pruning, Report
from edgeq.source import SourceModel
from edgeq.stages.candidate import Analysis, Candidate
from edgeq.targets import TargetSpec


@dataclass
class CompileState:
    """Inputs (set at intake) first, then what each stage adds, in pipeline order."""

    source: SourceModel
    recipe: Recipe
    target: TargetSpec
    backend: Backend
    calib: Arrays
    evaluation: Arrays
    out: Path
    """The final output directory: what messages and the runs store name (work goes to `staging`)."""
    progress: Progress
    requested: Recipe
    """The recipe as given (written to recipe.yaml); `recipe` is what the stages compile with (the
    MRL stage limits the task to the deployed dims)."""
    unmeasured: str | None = None
    """Why the target's runtime is not on this machine (its latency cannot be measured here), or None."""
    runs: Path | None | bool = None
    """The runs store: a path, None for the default, False to record nothing."""
    caught: list[warnings.WarningMessage] = field(default_factory=list)
    staging: Path | None = None
    prepared: onnx.ModelProto | None = None
    smoothed: dict[SmoothRule, onnx.ModelProto] = field(default_factory=dict)
    """The prepared model with activation outliers migrated into MatMul weights (`methods.smoothquant`)."""
    pruning: Pruning | None = None
    deployed: Path | None = None
    """The fp32 model cut to the deployed MRL dim: what fidelity is judged against, when set."""
    reference: Path | None = None
    """The fp32 model latency (and, without `deployed`, fidelity) is measured against."""
    candidates: list[Candidate] = field(default_factory=list)
    kinds: list[OutputKind] = field(default_factory=list)
    """Each output's kind, recognised once from the fp32 outputs on the evaluation data."""
    analysis: Analysis | None = None
    target_problems: list[str] = field(default_factory=list)
    tensorrt_violations: list[str] | None = None
    noise: dict[int, float] = field(default_factory=dict)
    chosen: Candidate | None = None
    reason: str = ""
    summaries: list[CandidateSummary] = field(default_factory=list)
    """Every candidate as measured, summarised before the unchosen ones' files are removed."""
    explained: Candidate | None = None
    """The candidate whose quantization the report describes (the chosen one, or the most faithful
    quantized one when fp32 wins)."""
    layers: list[LayerDamage] = field(default_factory=list)
    artifact: Artifact | None = None
    engine: str | None = None
    finish_later: str | None = None
    report: Report | None = None
    reused: CacheUse | None = None
    """What the cache supplied (the report's `cache`), or None when everything was computed now."""

    @property
    def work(self) -> Path:
        """Where candidates are compiled; removed once the chosen artifact is kept."""
        return self.staging / "candidates"

    @property
    def measures_latency(self) -> bool:
        return self.backend.measures_latency and self.unmeasured is None
