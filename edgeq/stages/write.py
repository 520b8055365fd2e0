"""Write report.json, report.html and recipe.yaml once, into the staging directory."""

from __future__ import annotations

import yaml

from edgeq.report.html import write_html
from edgeq.stages.base import Stage
from edgeq.stages.state import CompileState


class Write(Stage):
    name = "write"

    def run(self, state: CompileState) -> CompileState:
        state.report.write(state.staging / "report.json")
        write_html(state.report, state.staging / "report.html")
        recipe = yaml.safe_dump(state.requested.to_dict(), sort_keys=False)
        (state.staging / "recipe.yaml").write_text(recipe)
        return state
