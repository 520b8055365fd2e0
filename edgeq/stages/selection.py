"""Choosing among measured candidates: the fastest within budget, ties to the smaller artifact.

On a CPU, "quantized" does not mean "faster" (shared/BASELINES.md): static QDQ, dynamic int8 and
plain fp32 win on different models, so every candidate is measured and the best one within the
accuracy budget is kept — never one slower than fp32. Without latency (the target's runtime is not
on this machine) the rule is size first within the budget.
"""

from __future__ import annotations

from edgeq.recipe import Recipe
from edgeq.stages.candidate import Candidate

MIN_NOISE = 0.03  # a ratio closer to 1 than this is never read as a difference
# Artifacts within 5% of each other in bytes are the same size: among speed ties the faster of them
# wins (INT8 static vs dynamic differ by < 1%; INT8 vs fp32 by 4x, where the smaller one should win).
SIZE_TIE = 0.05


def select(
    candidates: list[Candidate],
    recipe: Recipe,
    noise: dict[int, float],
    floor: dict[int, float] | None = None,
) -> tuple[Candidate, str]:
    """Among candidates within budget and not measurably slower than fp32, the fastest — ties within
    the measured noise go to the smaller artifact, the faster of equal sizes (4-bit compiles: simply
    the smallest). fp32 is judged too (a pruned fp32 can miss the budget): when nothing is within
    budget the choice still stands, and the report's `budget` gate fails the compile.

    `floor`: per batch, the speedup over fp32 a candidate must not fall below (the fastest fp32 of
    the runtimes measured, where there are several); 1.0 where not given."""
    quantized = [c for c in candidates if c.name != "fp32"]
    fp32 = next(c for c in candidates if c.name == "fp32")
    fp32_miss = fp32.budget_problem(recipe)
    within = [c for c in quantized if c.budget_problem(recipe) is None]
    eligible = _eligible(candidates, recipe, noise, floor)
    if eligible and recipe.bits == 4:
        best = min(eligible, key=lambda c: (c.artifact.bytes, -c.mean_speedup))
        return (
            best,
            f"smallest candidate within the accuracy budget, not slower than fp32 ({best.mean_speedup:.2f}x)",
        )
    if eligible:
        tied = _speed_ties(eligible, max(c.mean_speedup for c in [fp32, *eligible]), noise)
        if tied:
            best = _tie_break(tied)
            return best, (
                f"fastest within the accuracy budget, or within timing noise of it and smaller "
                f"({best.mean_speedup:.2f}x fp32; noise ±{1 - _margin(noise):.0%})"
            )
        eligible_text = ", ".join(f"{c.name} {c.mean_speedup:.2f}x" for c in eligible)
        faster = f"the fp32 artifact measured faster ({fp32.mean_speedup:.2f}x) than {eligible_text}"
        if recipe.fallback_fp32 and fp32_miss is None:
            return fp32, faster
        best = max(eligible, key=lambda c: c.mean_speedup)
        why = f"fp32 misses the accuracy budget ({fp32_miss})" if fp32_miss else "fp32 fallback disabled"
        return best, f"{why}; kept the fastest INT8 ({faster})"
    if not quantized:
        return fp32, _nothing_quantizable(fp32_miss)
    problems = "; ".join(f"{c.name}: {problem(c, recipe, noise, floor)}" for c in quantized)
    if within and fp32_miss:
        best = max(within, key=lambda c: c.mean_speedup)
        return (
            best,
            f"fp32 misses the accuracy budget ({fp32_miss}); kept the fastest INT8 within it ({problems})",
        )
    if recipe.fallback_fp32:
        if fp32_miss:
            return fp32, _nothing_met(fp32_miss, problems)
        return fp32, f"no INT8 candidate is both within budget and not slower than fp32 ({problems})"
    pool = within or quantized
    best = max(pool, key=(lambda c: c.mean_speedup) if within else _faithfulness)
    return (
        best,
        f"fp32 fallback disabled; kept the {'fastest' if within else 'most faithful'} INT8 ({problems})",
    )


def fastest_fp32(baselines: list[Candidate]) -> dict[int, float]:
    """Per batch, the speedup over the reference of the fastest fp32: the reference itself (1.0) or
    one of `baselines`, the fp32 model on the target's other runtimes."""
    floor: dict[int, float] = {}
    for baseline in baselines:
        for entry in baseline.latency:
            floor[entry.batch] = max(floor.get(entry.batch, 1.0), entry.speedup)
    return floor


def select_across_runtimes(
    candidates: list[Candidate], recipe: Recipe, noise: dict[int, float], baselines: list[Candidate]
) -> tuple[Candidate, str]:
    """`select` held to the fastest fp32 of every runtime at every batch. Where no candidate within
    budget is that fast (one runtime's fp32 wins at batch 1, another's at batch 32), the fastest by
    the geometric mean over batches of those not slower than some one runtime's fp32 at any batch,
    ties within the noise going to the smaller artifact as in `select`."""
    floor = fastest_fp32(baselines)
    chosen, reason = select(candidates, recipe, noise, floor)
    if not slower_than(chosen, noise, floor):
        return chosen, reason
    floors = [{}, *({e.batch: e.speedup for e in b.latency} for b in baselines)]
    pool = [
        c
        for c in candidates
        if c.budget_problem(recipe) is None and any(not slower_than(c, noise, f) for f in floors)
    ]
    if not pool:  # nothing within budget: the one-runtime rule, and the budget gate fails the compile
        return select(candidates, recipe, noise)
    best = _tie_break(_speed_ties(pool, max(c.mean_speedup for c in pool), noise))
    fastest = ", ".join(f"batch {batch}: {speedup:.2f}x" for batch, speedup in sorted(floor.items()))
    return best, (
        "no candidate within the accuracy budget is as fast as every runtime's fp32 at every batch "
        f"(the fastest fp32 per batch, vs the reference: {fastest}); kept the fastest by the geometric "
        f"mean over batches of those at least as fast as one runtime's fp32, or within timing noise of "
        f"it and smaller ({best.mean_speedup:.2f}x)"
    )


def select_unmeasured(candidates: list[Candidate], recipe: Recipe) -> tuple[Candidate, str]:
    """Without latency: the smallest quantized candidate within budget (sizes within SIZE_TIE: the
    most faithful of them); none within budget: fp32, or the most faithful one without fallback."""
    quantized = [c for c in candidates if c.name != "fp32"]
    fp32 = next(c for c in candidates if c.name == "fp32")
    within = [c for c in quantized if c.budget_problem(recipe) is None]
    unmeasured = "latency not measured on the target"
    if within:
        best = max(_smallest(within), key=_faithfulness)
        return best, (
            f"{unmeasured}: the smallest candidate within the accuracy budget (size first; of sizes "
            f"within {SIZE_TIE:.0%}, the most faithful)"
        )
    fp32_miss = fp32.budget_problem(recipe)
    if not quantized:
        return fp32, f"{unmeasured}; {_nothing_quantizable(fp32_miss)}"
    problems = "; ".join(f"{c.name}: {c.budget_problem(recipe)}" for c in quantized)
    if recipe.fallback_fp32 and fp32_miss:
        return fp32, f"{unmeasured}; {_nothing_met(fp32_miss, problems)}"
    if recipe.fallback_fp32:
        return fp32, f"{unmeasured}; no quantized candidate is within the accuracy budget ({problems})"
    best = max(quantized, key=_faithfulness)
    return best, f"{unmeasured}; fp32 fallback disabled; kept the most faithful ({problems})"


def _nothing_quantizable(fp32_miss: str | None) -> str:
    text = "nothing on this graph can be quantized for the target"
    return f"{text}; fp32 misses the accuracy budget ({fp32_miss})" if fp32_miss else text


def _nothing_met(fp32_miss: str, problems: str) -> str:
    """The reason when no candidate, fp32 included, is within the budget (the compile then exits 3)."""
    return f"no candidate meets the accuracy budget; kept fp32 (fp32: {fp32_miss}; {problems})"


def size_tied_leaders(
    candidates: list[Candidate], recipe: Recipe, noise: dict[int, float]
) -> list[Candidate]:
    """Eligible INT8 candidates within the noise of the fastest and within SIZE_TIE of the smallest:
    the ones a second, longer timing run (the run-off) must tell apart."""
    eligible = _eligible(candidates, recipe, noise)
    if recipe.bits == 4 or len(eligible) < 2:
        return []
    return _smallest(_speed_ties(eligible, max(c.mean_speedup for c in eligible), noise))


def problem(
    candidate: Candidate, recipe: Recipe, noise: dict[int, float], floor: dict[int, float] | None = None
) -> str | None:
    """Why a quantized candidate is not eligible: its budget miss, or the batches it is slower at
    (than fp32, or than the fastest fp32 of the runtimes measured: `floor`)."""
    budget = candidate.budget_problem(recipe)
    if budget:
        return budget
    slow = [
        f"batch {batch}: {speedup:.2f}x" for batch, speedup in slow_batches(candidate, noise, floor).items()
    ]
    if not slow:
        return None
    bar = [
        f"batch {batch}: {speedup:.2f}x" for batch, speedup in sorted((floor or {}).items()) if speedup > 1.0
    ]
    against = f"the faster runtime's fp32 ({', '.join(bar)})" if bar else "fp32"
    return f"slower than {against} at {', '.join(slow)}"


def _eligible(
    candidates: list[Candidate],
    recipe: Recipe,
    noise: dict[int, float],
    floor: dict[int, float] | None = None,
) -> list[Candidate]:
    """INT8 candidates within the accuracy budget and not measurably slower than fp32 (or `floor`)."""
    within = [c for c in candidates if c.name != "fp32" and c.budget_problem(recipe) is None]
    return [c for c in within if not slower_than(c, noise, floor)]


def _margin(noise: dict[int, float]) -> float:
    """The fraction of the fastest speed that still counts as a tie: one minus the worst batch's noise.

    The worst, not the mean: the pointer net's batch-1 A/A noise reads 10-12% where batch 32 reads
    3%, and a mean margin let one noisy run pick a larger, less faithful INT8 variant."""
    return 1.0 - max(noise.values())


def _speed_ties(pool: list[Candidate], fastest: float, noise: dict[int, float]) -> list[Candidate]:
    return [c for c in pool if c.mean_speedup >= fastest * _margin(noise)]


def _tie_break(tied: list[Candidate]) -> Candidate:
    """Among speed ties, the smaller artifact; the faster of equal sizes."""
    return max(_smallest(tied), key=lambda c: c.mean_speedup)


def _smallest(pool: list[Candidate]) -> list[Candidate]:
    """The smallest artifacts of `pool`, sizes within SIZE_TIE counting as equal."""
    smallest = min(c.artifact.bytes for c in pool)
    return [c for c in pool if c.artifact.bytes <= smallest * (1 + SIZE_TIE)]


def slow_batches(
    candidate: Candidate, noise: dict[int, float], floor: dict[int, float] | None = None
) -> dict[int, float]:
    """{batch: speedup} where `candidate` is measurably slower than fp32: by more than that batch's
    noise, against the batch's `floor` speedup (1.0, fp32 itself, where none is given). The fp32
    artifact is the reference compiled: never slower than it (a shortfall is the A/A noise)."""
    floor = floor or {}
    at_least = 1.0 if candidate.name == "fp32" else 0.0
    speeds = {e.batch: max(e.speedup, at_least) for e in candidate.latency}
    return {b: s for b, s in speeds.items() if s < floor.get(b, 1.0) * (1.0 - noise[b])}


def slower_than(candidate: Candidate, noise: dict[int, float], floor: dict[int, float] | None = None) -> bool:
    return bool(slow_batches(candidate, noise, floor))


def _faithfulness(candidate: Candidate) -> float:
    return -candidate.task.worst_primary_drop if candidate.task else candidate.worst_cosine
