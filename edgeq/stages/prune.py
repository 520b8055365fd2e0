"""Prune by Iterative Feature Merging, the amount measured so the pruned model leaves budget to spare."""

from __future__ import annotations

from edgeq.report.schema import Pruning
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class Prune(Stage):
    """Merge redundant features when the recipe asks (`prune`); a no-op otherwise."""

    name = "prune"

    def run(self, state: CompileState) -> CompileState:
        settings = state.recipe.prune
        if settings is None:
            return state
        from edgeq.stages.prune_search import PruneData, choose_pruning, most_trials

        with state.progress.stage("prune", "prune by iterative feature merging"):
            with state.progress.bar("IFM: measuring merge amounts", most_trials(settings)) as advance:
                state.prepared, state.pruning = choose_pruning(PruneData.of(state), advance)
            state.progress.note(pruning_line(state.pruning))
        return state


def pruning_line(pruning: Pruning) -> str:
    """The one summary line: what merged at the chosen amount and what it cost, or why nothing did."""
    search, summary = pruning.search, pruning.summary
    if search.chosen_max_ratio is None:
        return f"IFM: kept the unpruned model: {search.kept_unpruned_because}"
    chosen = next(
        t
        for t in search.trials
        if (t.max_ratio, t.threshold) == (search.chosen_max_ratio, search.chosen_threshold)
    )
    cost = f"task drop {chosen.task_drop:.3g}" if chosen.task_drop is not None else ""
    beta = "" if chosen.threshold is None else f"β {chosen.threshold:g}, "
    return (
        f"IFM: {beta}max_ratio {chosen.max_ratio:g}: merged {summary.channels_merged} channels "
        f"({summary.channels_lossless} identical, {summary.channels_merged - summary.channels_lossless} "
        f"by similarity), parameters kept {100 * summary.parameters_kept:.1f}%, bytes "
        f"{search.bytes_after / search.bytes_before:.2f}x; {cost}{', ' if cost else ''}worst cosine "
        f"{chosen.worst_cosine:.5f} (pruning may spend {search.budget_share:g} of the budget)"
    )
