"""Deploy a Matryoshka embedding at its `mrl.dim`: cut the projection, judge fidelity at that dim."""

from __future__ import annotations

from edgeq.graph import save_model
from edgeq.passes.mrl import deployed_task_options, slice_embedding
from edgeq.recipe import build_recipe
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class Mrl(Stage):
    """The embedding cut to its deployed dims (the fp32 cut is the fidelity reference); a no-op
    without `mrl`. The task then reports only the dims up to the deployed one."""

    name = "mrl"

    def run(self, state: CompileState) -> CompileState:
        mrl, recipe = state.recipe.mrl, state.recipe
        if mrl is None:
            return state
        with state.progress.stage("mrl", f"cut the embedding to its deployed {mrl.dim} dims"):
            state.prepared = slice_embedding(state.prepared, mrl.output, mrl.dim)
            state.work.mkdir(exist_ok=True)
            state.deployed = save_model(state.prepared, state.work / "reference.deployed.onnx")
            if recipe.task is not None:
                options = deployed_task_options(recipe.task.options, mrl.dim)
                state.recipe = build_recipe(recipe, task={"name": recipe.task.name, "options": options})
        return state
