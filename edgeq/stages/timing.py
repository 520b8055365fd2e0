"""One interleaved latency run of the fp32 model, its A/A twin and the compiled candidates."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import numpy as np

from edgeq.runtime.session import OrtRunner
from edgeq.runtime.timing import LatencyEntry, LatencyStats, measure_interleaved, speedup
from edgeq.stages.candidate import Candidate
from edgeq.stages.selection import MIN_NOISE
from edgeq.stages.session import open_session
from edgeq.stages.state import CompileState

REFERENCE_AGAIN = " reference (second session)"  # the A/A timing: no candidate has this name
ORT_FP32 = " fp32 on onnxruntime"  # beside another runtime's reference: what "vs ONNX Runtime" reads


def batch_sizes(runner: OrtRunner, wanted: list[int]) -> list[int]:
    """The target's batch sizes (along each input's declared batch axis; a call of a streaming model
    is one frame of that many streams), or the model's own batch if its inputs fix it, or 1 where it
    has no batch axis (then a warning, which the report lists, says what was measured instead)."""
    if not runner.roles.batched:
        if wanted != [1]:
            warnings.warn(
                "an input of the model has no batch axis: latency measured per call (batch 1), not at "
                f"the target's batch sizes {', '.join(map(str, wanted))}",
                FixedBatchWarning,
                stacklevel=2,
            )
        return [1]
    fixed = runner.fixed_batch
    if fixed is None:
        return wanted
    if wanted != [fixed]:
        warnings.warn(
            f"the model's inputs fix the batch at {fixed}: latency measured at batch {fixed} only "
            f"(the target asks for {', '.join(map(str, wanted))}); export with a dynamic batch axis "
            "to measure the others",
            FixedBatchWarning,
            stacklevel=2,
        )
    return [fixed]


class FixedBatchWarning(UserWarning):
    """Latency was measured at the model's fixed batch, not at the target's batch sizes."""


def time_candidates(
    state: CompileState,
    candidates: list[Candidate],
    rounds: int | None = None,
    stage: str = "latency",
) -> dict[int, float]:
    """Time fp32, a second session of it and `candidates` interleaved; sets each candidate's latency.

    Returns the timing noise per batch size: how far the second fp32 session strays from 1.0x in the
    same run (never below MIN_NOISE), the margin no speed difference is read inside. A batch size's
    rounds stop once fp32 and the fastest are told apart from the others (`decided`)."""
    settings, threads = state.target.latency, state.target.latency.threads
    rounds = rounds or settings.rounds
    fp32 = open_session(state, state.reference, reference=True)
    batches = batch_sizes(fp32, settings.batch_sizes)
    runners = {"reference": fp32, REFERENCE_AGAIN: open_session(state, state.reference, reference=True)}
    if state.target.runtime != "onnxruntime":
        runners[ORT_FP32] = OrtRunner(state.reference, threads=threads)
    timed_further, noise = list(candidates), {}
    with (
        state.progress.stage(stage, f"time fp32 and {', '.join(c.name for c in candidates)}, interleaved"),
        state.progress.bar("latency rounds", rounds * len(batches)) as tick,
    ):
        for done, batch in enumerate(batches, 1):
            stats = measure_interleaved(
                runners | {c.name: c.runner for c in timed_further},
                state.evaluation,
                batch=batch,
                warmup=settings.warmup,
                rounds=rounds,
                seconds_per_round=settings.seconds_per_round,
                tick=tick,
                stop=decided(["reference", *(c.name for c in candidates)]),
            )
            timed = len(stats["reference"].round_p50_ms)
            for candidate in (c for c in candidates if c.name in stats):
                entry = LatencyEntry(batch, threads, timed, stats["reference"], stats[candidate.name])
                candidate.latency = [e for e in candidate.latency if e.batch != batch] + [entry]
                if ORT_FP32 in stats:
                    candidate.vs_onnxruntime[batch] = speedup(stats[ORT_FP32], stats[candidate.name])
            timed_further = _hopeless_left_out(state, timed_further, stats, batches[:done])
            twin = speedup(stats["reference"], stats[REFERENCE_AGAIN])
            noise[batch] = max(MIN_NOISE, abs(1.0 - twin))
    return noise


def _hopeless_left_out(
    state: CompileState, candidates: list[Candidate], stats: Mapping[str, LatencyStats], timed: list[int]
) -> list[Candidate]:
    """`candidates` less those only warmed up at the last of the batch sizes `timed` so far
    (`HOPELESS_PACE`): they are not timed at the later ones either, where each call would take
    longer still, and keep no entry from an earlier run for them."""
    reference = stats["reference"].p50_ms
    for candidate in (c for c in candidates if stats[c.name].warm_up_only):
        ms = stats[candidate.name].p50_ms
        candidate.latency = [e for e in candidate.latency if e.batch in timed]
        state.progress.note(
            f"{candidate.name} timed no further: a call took {ms:.0f} ms at batch {timed[-1]}, "
            f"{ms / reference:.0f}x fp32's {reference:.1f} ms"
        )
    return [c for c in candidates if not stats[c.name].warm_up_only]


SIGN_TEST_ROUNDS = 6  # one model faster in each of 6 paired rounds: a two-sided sign test's p = 0.03


def decided(names: list[str], margin: float = MIN_NOISE) -> Callable[[Mapping[str, list[list[float]]]], bool]:
    """A stop rule, all that selection reads: after SIGN_TEST_ROUNDS rounds or more, every model of
    `names` is ordered or tied against the first, fp32 (`pair_decided`), and the fastest so far is
    at worst `margin` slower than each other model (`within_margin_of`). Two slower models are left
    undecided, as is a rival the fastest may trail by less than the noise floor: either pick is as
    good. Near-equal INT8 variants used to keep every run-off going to its last round."""

    def stop(samples: Mapping[str, list[list[float]]]) -> bool:
        if len(samples[names[0]]) < SIGN_TEST_ROUNDS:
            return False
        timed = [name for name in names if name in samples]  # a hopeless model is not in the rounds
        medians = {name: np.array([np.median(r) for r in samples[name]]) for name in timed}
        fastest = fastest_of(medians)
        reference, rivals = timed[0], [n for n in timed[1:] if n != fastest]
        return all(pair_decided(medians[reference] / medians[n], margin) for n in timed[1:]) and all(
            within_margin_of(medians[fastest] / medians[n], margin) for n in rivals
        )

    return stop


def fastest_of(per_round: Mapping[str, np.ndarray]) -> str:
    """The model with the lowest median per-round time: the leader the stop rule and the run-off's
    feasibility both judge the others against."""
    return min(per_round, key=lambda name: float(np.median(per_round[name])))


def median_interval(ratios: np.ndarray) -> tuple[float, float]:
    """The distribution-free confidence interval of the median of per-round ratios, at the sign
    test's p however many rounds: up to 9 rounds it spans every ratio, from 10 on it drops the
    extreme round each side, from 13 the two, so one contrary or load-hit round is outvoted."""
    ordered = np.sort(ratios)
    k = median_interval_rank(len(ordered))
    return float(ordered[k - 1]), float(ordered[-k])


def pair_decided(ratios: np.ndarray, margin: float) -> bool:
    """Per-round time ratios of two models decide them when the median's interval excludes 1 —
    ordered — or lies within `margin` of 1 — tied."""
    low, high = median_interval(ratios)
    return low > 1 or high < 1 or (low >= 1 - margin and high <= 1 + margin)


def within_margin_of(ratios: np.ndarray, margin: float) -> bool:
    """Per-round time ratios leader/rival show the leader at worst `margin` slower (the upper end of
    the median's interval): faster, tied, or behind by less than the noise floor."""
    return median_interval(ratios)[1] <= 1 + margin


def median_interval_rank(rounds: int) -> int:
    """The largest k for which the k-th smallest and k-th largest of `rounds` paired ratios bound
    their median at the sign test's p: 2 * P(Binomial(rounds, 1/2) < k) <= 2 / 2**SIGN_TEST_ROUNDS,
    compared in whole numbers (the tail's count of outcomes x 2**SIGN_TEST_ROUNDS <= 2**rounds)."""

    def bounds(rank: int) -> bool:  # the rank-th order statistics bound the median at that p
        return sum(math.comb(rounds, i) for i in range(rank)) * 2**SIGN_TEST_ROUNDS <= 2**rounds

    k = 1
    while k < rounds // 2 and bounds(k + 1):
        k += 1
    return k


def decided_already(candidates: list[Candidate]) -> bool:
    """Whether the rounds the candidates were timed in already decide them, with fp32's, at every batch
    size (never when they were timed in different runs: only rounds of one run pair up)."""
    paired = paired_rounds(candidates)
    names = ["reference", *(c.name for c in candidates)]
    return bool(paired) and all(
        decided(names)({name: [[m] for m in medians] for name, medians in rounds.items()})
        for rounds in paired.values()
    )


POWER_Z = 2.15  # the two-sided normal quantile at the sign test's p = 1/32
MEDIAN_EFFICIENCY = 1.2533  # sqrt(pi/2): a sample median's standard error over the mean's, normal noise


def runoff_can_decide(candidates: list[Candidate], rounds: int, margin: float = MIN_NOISE) -> bool:
    """Whether `rounds` paired rounds could decide the fastest of `candidates` against every rival at
    the round-to-round spread σ of their first timing: the median's interval, about
    POWER_Z · MEDIAN_EFFICIENCY · σ / sqrt(rounds) each side, must fit inside the noise floor or the
    gap between them. On 2 shared cores bert_l6's INT8 variants lie 0-5% apart at a 3-10% spread:
    14 rounds never decided them, and the run-off ran 14-17 s to its last round in every compile."""
    paired = paired_rounds(candidates)
    if not paired:
        return True
    for medians in paired.values():
        times = {name: np.log(medians[name]) for name in medians if name != "reference"}
        fastest = fastest_of(times)
        for name in times.keys() - {fastest}:
            diff = times[fastest] - times[name]
            half_width = POWER_Z * MEDIAN_EFFICIENCY * float(np.std(diff, ddof=1)) / math.sqrt(rounds)
            if half_width >= max(math.log1p(margin), abs(float(np.median(diff)))):
                return False
    return True


def paired_rounds(candidates: list[Candidate]) -> dict[int, dict[str, list[float]]]:
    """Per batch size, the per-round medians of fp32 ("reference") and each candidate from the run they
    were timed in together; empty when they were timed in different runs (their rounds do not pair)."""
    by_batch: dict[int, dict[str, list[float]]] = {}
    for candidate in candidates:
        for entry in candidate.latency:
            rounds = by_batch.setdefault(entry.batch, {"reference": entry.fp32.round_p50_ms})
            if rounds["reference"] != entry.fp32.round_p50_ms:
                return {}
            rounds[candidate.name] = entry.compiled.round_p50_ms
    complete = all(len(rounds) == len(candidates) + 1 for rounds in by_batch.values())
    return by_batch if complete else {}
