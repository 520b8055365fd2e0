"""The recipe: every choice a compile makes, as small typed objects; YAML files and CLI flags fill it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgeq.config import from_dict, limit, load_yaml, over_limit
from edgeq.errors import InputError

CalibrationMethod = Literal["minmax", "mean_minmax", "percentile", "mse", "entropy"]
OutputKindName = Literal["embedding", "class-scores", "binary", "dense", "integer"]


@dataclass
class Calibration:
    """How activation ranges are measured on calibration samples."""

    method: CalibrationMethod = "mse"
    samples: int = 256
    percentile: float = 99.99
    bins: int = 2048

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")
        if not 16 <= self.bins <= 1 << 16:
            raise ValueError(f"bins must be in [16, 65536], got {self.bins}")


@dataclass
class Methods:
    """Survey methods that help low bits; each measured against round-to-nearest in the tests."""

    equalize: bool = False  # cross-layer equalisation of ReLU chains (data-free, exact)
    bias_correction: bool = False  # b ← b − (W_q − W)·E[x] on calibration data
    adaround: bool = False  # learned rounding of weights (Nagel et al. 2020)
    adaround_iterations: int = 500
    smoothquant: bool = False  # INT8 candidates also on the SmoothQuant-smoothed model (alpha 0.95)
    gptq: bool = False  # 4-bit weights rounded by GPTQ (calibration-input Hessian), not to nearest

    def __post_init__(self) -> None:
        if self.adaround_iterations < 1:
            raise ValueError(f"adaround_iterations must be >= 1, got {self.adaround_iterations}")


@dataclass
class Task:
    """A task evaluator (built-in name or module:function) and its keyword options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prune:
    """Iterative Feature Merging settings (structured pruning; edgeq.stages.prune_search).

    Identical channels always merge (lossless). How much merges beyond them is measured: for β
    (`threshold`, or each of 0.1 and 0.25) the largest max_ratio, up to `max_ratio` when given, whose
    pruned fp32 model spends at most `budget_share` of the accuracy budget (the rest is left for
    quantization); of those, the one that keeps the fewest parameters."""

    method: Literal["ifm"] = "ifm"
    threshold: float | None = None  # β; None: 0.1 and 0.25 are both measured
    max_ratio: float | None = None  # None: searched up to 0.5
    protected: list[str] = field(default_factory=list)
    approximate: bool = False
    budget_share: float = 0.5

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.max_ratio is not None and not 0.0 < self.max_ratio < 1.0:
            raise ValueError(f"max_ratio must be in (0, 1), got {self.max_ratio}")
        if not 0.0 < self.budget_share <= 1.0:
            raise ValueError(f"budget_share must be in (0, 1], got {self.budget_share}")


@dataclass
class Matryoshka:
    """Deploy an MRL embedding at `dim`: the projection writing `output` is cut to its first dims."""

    dim: int
    output: str = "embedding"

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")


@dataclass
class QatCheck:
    """A QAT model's task metric as simulated in torch, to compare with the measured artifact."""

    metric: str
    simulated: float
    tolerance: float = 0.5


def _refuse_non_finite(section: str, values: dict[str, float | None]) -> None:
    """NaN compares false with everything: a NaN limit would pass or fail whatever was measured."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{section} {name} must be a finite number, got {value!r}")


@dataclass
class Gates:
    """Limits a pipeline can rely on: a failed gate exits 3 after the report is written."""

    max_drop: float | None = None
    min_speedup: float | None = None
    min_cosine: float | None = None

    def __post_init__(self) -> None:
        _refuse_non_finite("gate", vars(self))


@dataclass
class Budget:
    """The accuracy a candidate must keep to be chosen: the task's primary drop, else each output's
    own metric by its kind (docs/fidelity.md says why these defaults)."""

    max_drop: float = 1.0
    min_cosine: float = 0.99  # dense outputs and embeddings (mean cosine); integer outputs' agreement
    # one neighbour lost in 33: the measured INT8 MiniLM keeps 0.89 at cosine 0.992 (issue 16)
    min_recall: float = 0.97
    min_top1: float = 0.995  # one label in 200 may change: the FP noise of a stock INT8 classifier
    min_bit_agreement: float = 0.99  # as strict as cosine 0.99 on ±1 codes (cos = 1 − 2·flips)
    # a mask may lose 5% of its area (IoU is stricter than bit agreement on sparse masks)
    min_iou: float = 0.95
    max_rel_l2: float | None = None  # dense outputs; off by default (cosine 0.99 ≈ rel L2 0.14)
    enforce: bool = True
    """An artifact outside the budget fails the compile (exit 3, report written); false keeps it, exit 0."""

    def __post_init__(self) -> None:
        _refuse_non_finite("budget", {k: v for k, v in vars(self).items() if k != "enforce"})


@dataclass
class InputSpec:
    """How one model input is fed (see docs/streaming.md); unset fields are inferred from the graph."""

    batch_axis: int | Literal["none"] | None = None
    """The axis a call's samples go on; "none": one sample per call; None (unset): inferred."""
    constant: Any = None
    """A value fed unchanged on every call (a sample rate, a threshold)."""
    state_from: str | None = None
    """The output whose value this input gets on the next frame (a recurrent state)."""

    def __post_init__(self) -> None:
        if hasattr(self.constant, "tolist"):  # a numpy value from the API: the recipe is written as YAML
            self.constant = self.constant.tolist()


@dataclass
class Recipe:
    """A whole compile: target, data, quantization, pruning, task and gates."""

    target: str = "cpu-x86-avx2"
    calib: str | None = None
    eval: str | None = None
    reference: str | None = None
    eval_fraction: float = 0.5
    bits: Literal[8, 4] = 8
    block_size: int = 32
    analyze: bool = False
    mode: Literal["auto", "static", "dynamic"] = "auto"
    pooling: Literal["cls", "mean", "none"] | None = None
    """A Hugging Face model folder's output: per-token states (none, the default) or a sentence
    embedding (cls token, or mean over the attention mask)."""
    calibration: Calibration = field(default_factory=Calibration)
    methods: Methods = field(default_factory=Methods)
    exclude: list[str] = field(default_factory=list)
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    prune: Prune | None = None
    mrl: Matryoshka | None = None
    qat: QatCheck | None = None
    task: Task | None = None
    budget: Budget = field(default_factory=Budget)
    kinds: dict[str, OutputKindName] = field(default_factory=dict)
    """Output name → kind, overriding the kind edgeq recognises (embedding, class-scores, ...)."""
    gates: Gates = field(default_factory=Gates)
    fallback_fp32: bool = True
    allow_unmeasured: bool = False
    """Compile for a target whose runtime is not on this machine: fidelity is measured in ONNX Runtime
    CPU, latency is not measured (never CPU numbers under another target)."""

    def __post_init__(self) -> None:
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 16, got {self.block_size}")
        if self.block_size > limit("EDGEQ_MAX_BLOCK_SIZE"):
            raise over_limit("EDGEQ_MAX_BLOCK_SIZE", "block_size", self.block_size)
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_recipe(path: str | Path) -> tuple[Recipe, str | None]:
    """A recipe file, with every relative path in it (model, calib, eval, reference, a target file,
    a task's `file.py:function`) read from the recipe's folder, so a recipe runs from any directory.

    Returns the recipe and the `model` key (resolved) if the file names one.
    """
    path = Path(path)
    data = load_yaml(path, "recipe")
    model = data.pop("model", None)
    if model is not None and not isinstance(model, str):
        raise InputError(f"recipe {path.name}: model must be a path string")
    recipe = from_dict(Recipe, data, f"recipe {path.name}")
    base = path.parent
    for key in ("calib", "eval", "reference"):
        value = getattr(recipe, key)
        if isinstance(value, str):
            setattr(recipe, key, resolve_path(base, value))
    if is_target_file(recipe.target):
        recipe.target = resolve_path(base, recipe.target)
    if recipe.task is not None:
        recipe.task.name = _resolve_task(base, recipe.task.name)
    return recipe, (resolve_path(base, model) if model else None)


def resolve_path(base: Path, value: str) -> str:
    """`value` read from folder `base` (absolute paths and `~` as given)."""
    given = Path(value).expanduser()
    return str(given if given.is_absolute() else (base / given).resolve())


def is_target_file(target: str) -> bool:
    """A target given as a YAML file (not a shipped target's name)."""
    return target.endswith((".yaml", ".yml")) or "/" in target or "\\" in target


def _resolve_task(base: Path, name: str) -> str:
    """A task evaluator given as `path/to/file.py:function` is read from the recipe's folder."""
    module, sep, function = name.rpartition(":")
    return f"{resolve_path(base, module)}{sep}{function}" if sep and module.endswith(".py") else name


def build_recipe(base: Recipe | None = None, **overrides: Any) -> Recipe:
    """A recipe from a base plus keyword overrides (nested sections given as dicts), validated."""
    data = (base or Recipe()).to_dict()
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return from_dict(Recipe, data, "recipe")
