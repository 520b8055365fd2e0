"""Keep the chosen artifact: its files move to the output's top level, the other candidates go."""

from __future__ import annotations

import shutil

from edgeq.backends.artifact import Artifact
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class Keep(Stage):
    name = "keep"

    def run(self, state: CompileState) -> CompileState:
        artifact, files = state.chosen.artifact, []
        for path in artifact.files:
            files.append(path.rename(state.staging / path.name))
        state.artifact = Artifact(state.staging / artifact.path.name, artifact.format, files)
        shutil.rmtree(state.work)
        return state
