"""How much IFM merges, chosen by measurement on the evaluation data (docs/pruning.md).

Identical channels merge first: lossless, never capped, and checked on the calibration samples
(the merged model's outputs must equal the unpruned model's within float tolerance). Beyond them,
merging by similarity is tried at a few `max_ratio` values per β, each pruned fp32 model judged
against the fp32 model with the compile's own predicate (`Candidate.budget_problem`) on a budget of
which pruning may spend only `budget_share` (default half): the rest is headroom for quantization.
Per β the largest ratio that fits; of those, the one keeping the fewest parameters (or, within 1% of
that, the one losing the least fidelity). A pruned model that saves no bytes, or none that fits,
leaves the unpruned graph in place and the report says why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgeq.data import Arrays, take
from edgeq.measure.fidelity import compare_outputs
from edgeq.measure.tasks import evaluate_task
from edgeq.passes.ifm import PruneSearch, PruneTrial, PruningSummary, merge_features
from edgeq.recipe import Budget, Prune, Recipe
from edgeq.report.schema import Accuracy, Pruning
from edgeq.runtime.session import OrtRunner
from edgeq.source import sample_count
from edgeq.stages.candidate import Candidate
from edgeq.stages.state import CompileState

# max_ratio values tried beyond the lossless merges, up to the cap (the recipe's max_ratio, or 0.5).
LADDER = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
DEFAULT_CAP = 0.5
# β tried when the recipe gives none: 0.25 merges every wide layer alike up to the cap; 0.1 only the
# most redundant ones (on the binary AE it merges more within the same budget, examples/ifm_results.md).
THRESHOLDS = (0.1, 0.25)
# Of the fitting amounts, one keeping at most this much more of the parameters than the smallest is
# preferred when it loses less fidelity: what pruning does not spend, quantization can.
PARAMETER_SLACK = 0.01
# Identical-channel merges change only the order of float32 sums: outputs agree to ~1e-6 of their scale.
LOSSLESS_RTOL = 1e-4


def headroom_budget(budget: Budget, share: float) -> Budget:
    """The budget pruning may spend: `share` of each allowance. A `max_*` limit is scaled; a `min_*`
    score keeps `share` of its distance to perfect (1, or 100 for a score given in percent)."""
    changes = {}
    for item in dataclasses.fields(budget):
        value = getattr(budget, item.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if item.name.startswith("max_"):
            changes[item.name] = value * share
        elif item.name.startswith("min_"):
            perfect = 100.0 if value > 1.0 else 1.0
            changes[item.name] = perfect - (perfect - value) * share
    return dataclasses.replace(budget, **changes)


@dataclass
class Trial:
    """One pruned model and what it measured against the fp32 model."""

    max_ratio: float
    threshold: float | None
    model: onnx.ModelProto
    summary: PruningSummary
    candidate: Candidate
    problem: str | None
    bytes: int

    def record(self) -> PruneTrial:
        task = self.candidate.task
        return PruneTrial(
            self.max_ratio,
            self.summary.channels_merged,
            self.summary.parameters_kept,
            self.bytes,
            self.candidate.worst_cosine,
            task.worst_primary_drop if task else None,
            self.problem,
            self.threshold,
        )

    def accuracy(self, evaluation: Arrays) -> Accuracy:
        return Accuracy(sample_count(evaluation, self.model), self.candidate.outputs, self.candidate.task)


@dataclass(frozen=True)
class PruneData:
    """What the search reads: the model the compile judges against, the prepared graph to prune, the
    recipe (its `prune` settings, budget and task) and the data."""

    source: onnx.ModelProto
    prepared: onnx.ModelProto
    recipe: Recipe
    evaluation: Arrays
    calib: Arrays

    @classmethod
    def of(cls, state: CompileState) -> PruneData:
        return cls(state.source.model, state.prepared, state.recipe, state.evaluation, state.calib)


class PruneJudge:
    """Prunes the prepared model at a given max_ratio and measures it like the Measure stage does."""

    def __init__(self, data: PruneData) -> None:
        self.data = data
        self.settings: Prune = data.recipe.prune
        self.fp32 = OrtRunner(data.source.SerializeToString())
        self.reference = self.fp32.predict(data.evaluation)
        budget = headroom_budget(data.recipe.budget, self.settings.budget_share)
        self.recipe: Recipe = dataclasses.replace(data.recipe, budget=budget)
        self.trials: list[Trial] = []
        self.unchanged: Trial | None = None

    def prune(
        self, max_ratio: float, threshold: float | None, lossless: bool = True
    ) -> tuple[onnx.ModelProto, PruningSummary]:
        """`threshold` None: identical channels only (max_ratio 0)."""
        settings = self.settings
        return merge_features(
            self.data.prepared,
            threshold=THRESHOLDS[-1] if threshold is None else threshold,
            max_ratio=max_ratio,
            protected=settings.protected,
            approximate=settings.approximate,
            lossless=lossless,
        )

    def measure(
        self, model: onnx.ModelProto, summary: PruningSummary, max_ratio: float, threshold: float | None
    ) -> Trial:
        """Judge `model`; a model nothing merged in is the prepared graph again, measured once."""
        if summary.channels_merged == 0 and self.unchanged is not None:
            again = {"max_ratio": max_ratio, "threshold": threshold, "model": model, "summary": summary}
            return dataclasses.replace(self.unchanged, **again)
        runner = OrtRunner(model.SerializeToString())
        candidate = Candidate(f"pruned-{max_ratio:g}", model, runner=runner)
        candidate.outputs = compare_outputs(self.reference, runner.predict(self.data.evaluation))
        candidate.task = evaluate_task(self.data.recipe, self.fp32, runner, self.data.evaluation)
        problem = candidate.budget_problem(self.recipe)
        trial = Trial(max_ratio, threshold, model, summary, candidate, problem, model.ByteSize())
        if summary.channels_merged == 0:
            self.unchanged = trial
        return trial

    def trial(self, max_ratio: float, threshold: float | None) -> Trial:
        trial = self.measure(*self.prune(max_ratio, threshold), max_ratio, threshold)
        self.trials.append(trial)
        return trial


def lossless_difference(before: onnx.ModelProto, after: onnx.ModelProto, calib: Arrays, limit: int) -> float:
    """The largest output difference on the first `limit` calibration samples, relative to each
    output's largest magnitude (inf when a non-float output changed)."""
    total = sample_count(calib, before)
    data = take(calib, np.arange(min(total, limit)), total)
    want = OrtRunner(before.SerializeToString()).predict(data)
    have = OrtRunner(after.SerializeToString()).predict(data)
    worst = 0.0
    for name, expected in want.items():
        got = have[name]
        if expected.dtype.kind != "f":
            worst = max(worst, 0.0 if np.array_equal(expected, got) else math.inf)
            continue
        scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
        worst = max(worst, float(np.max(np.abs(expected.astype(np.float64) - got), initial=0.0)) / scale)
    return worst


def search_ratios(cap: float) -> list[float]:
    return [ratio for ratio in LADDER if ratio < cap] + [cap]


def search_thresholds(settings: Prune) -> tuple[float, ...]:
    return THRESHOLDS if settings.threshold is None else (settings.threshold,)


def choose_pruning(
    data: PruneData, advance: Callable[[], None] = lambda: None
) -> tuple[onnx.ModelProto, Pruning]:
    """The pruned (or, when pruning does not pay, the unpruned) model and the report's section."""
    judge = PruneJudge(data)
    settings = judge.settings
    cap = settings.max_ratio if settings.max_ratio is not None else DEFAULT_CAP
    before = data.prepared.ByteSize()
    search = PruneSearch(settings.budget_share, cap, settings.max_ratio is not None, bytes_before=before)
    lossless = judge.trial(0.0, None)
    advance()
    if lossless.summary.channels_lossless:
        search.lossless_max_abs = lossless_difference(
            data.prepared, lossless.model, data.calib, data.recipe.calibration.samples
        )
        search.lossless_verified = search.lossless_max_abs <= LOSSLESS_RTOL
        if not search.lossless_verified:
            lossless.problem = f"identical-channel merges changed outputs by {search.lossless_max_abs:.3g}"
    fitting = [lossless] if lossless.problem is None else []
    for threshold in search_thresholds(settings):
        fitting += _largest_fitting(judge, search_ratios(cap), threshold, lossless, advance)
    best = _smallest_then_faithful(fitting)
    order = sorted(judge.trials, key=lambda t: (t.threshold or 0.0, t.max_ratio))
    search.trials = [trial.record() for trial in order]
    chosen, search.kept_unpruned_because = _accepted(best, judge.trials, before, settings.budget_share)
    if chosen is None:  # the prepared graph as it was, with its groups described
        chosen = judge.measure(data.prepared, judge.prune(0.0, None, lossless=False)[1], 0.0, None)
    else:
        search.chosen_max_ratio, search.chosen_threshold = chosen.max_ratio, chosen.threshold
    search.bytes_after = chosen.bytes
    return chosen.model, Pruning(settings.method, chosen.summary, chosen.accuracy(data.evaluation), search)


def _largest_fitting(
    judge: PruneJudge, ratios: list[float], threshold: float, lossless: Trial, advance: Callable[[], None]
) -> list[Trial]:
    """At one β: the cap if it fits, else the largest fitting ratio by bisection (fidelity falls as
    merging grows); nothing when no similarity merge happens at all or none fits."""
    top = judge.trial(ratios[-1], threshold)
    advance()
    if top.summary.channels_merged <= lossless.summary.channels_merged:
        return []
    if top.problem is None:
        return [top]
    best, low, high = [], -1, len(ratios) - 1
    while high - low > 1:
        middle = (low + high) // 2
        trial = judge.trial(ratios[middle], threshold)
        advance()
        if trial.problem is None:
            best, low = [trial], middle
        else:
            high = middle
    return best


def _smallest_then_faithful(fitting: list[Trial]) -> Trial | None:
    """The fitting trial with the least fidelity loss among those within PARAMETER_SLACK of the
    fewest parameters kept (loss: the task drop, else 1 - worst cosine)."""
    if not fitting:
        return None
    fewest = min(trial.summary.parameters_kept for trial in fitting)
    near = [trial for trial in fitting if trial.summary.parameters_kept <= fewest + PARAMETER_SLACK]
    return min(near, key=lambda t: (_loss(t), t.summary.parameters_kept))


def _loss(trial: Trial) -> float:
    task = trial.candidate.task
    return task.worst_primary_drop if task is not None else 1.0 - trial.candidate.worst_cosine


def _accepted(
    best: Trial | None, trials: list[Trial], before: int, share: float
) -> tuple[Trial | None, str | None]:
    """The best trial if it really prunes (something merged, the graph got smaller), else why not."""
    if not any(trial.summary.channels_merged for trial in trials):
        return None, "no channel could merge (each group's reason is in the summary)"
    if best is None or best.summary.channels_merged == 0:
        failed = min((t for t in trials if t.problem), key=lambda t: t.max_ratio)
        return None, (
            f"no merge amount kept the pruned model within {share:g} of the accuracy budget "
            f"(max_ratio {failed.max_ratio:g}: {failed.problem})"
        )
    if best.bytes >= before:
        return None, f"pruning saves no bytes ({best.bytes} >= {before} before pruning)"
    return best, None


def most_trials(settings: Prune) -> int:
    """An upper bound on the trials `choose_pruning` runs: the progress bar's length."""
    cap = settings.max_ratio if settings.max_ratio is not None else DEFAULT_CAP
    per_threshold = 1 + math.ceil(math.log2(len(search_ratios(cap))))
    return 1 + len(search_thresholds(settings)) * per_threshold
