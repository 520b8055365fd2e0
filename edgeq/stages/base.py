"""The stage protocol: a stage first says what it cannot honour, then does its one job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgeq.stages.state import CompileState


class Stage(Protocol):
    """One step of a compile; the pipeline calls every stage's `check` before any stage's `run`."""

    name: str

    def check(self, state: CompileState) -> str | None:
        """One line naming the recipe option this stage cannot honour for this target/model, or None."""
        return None

    def run(self, state: CompileState) -> CompileState:
        """Do the work, returning the state with what this stage adds."""
        ...


def first_refusal(options: Iterable[tuple[str, bool, str]]) -> str | None:
    """`"<option>: <why>"` for the first (option, asked for, why not) the recipe asks for, or None."""
    return next((f"{option}: {why}" for option, asked, why in options if asked), None)
