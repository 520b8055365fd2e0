"""Progress a person can watch: one line per finished stage, a bar on every loop they wait for."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich import progress as rich_progress
from rich.console import Console


class Progress:
    """Times stages for the report and, when enabled, shows them on stderr."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.stages: list[dict] = []

    @contextmanager
    def stage(self, name: str, description: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self.stages.append({"name": name, "seconds": round(seconds, 4)})
        if self.enabled:
            self.console.print(f"[green]✓[/green] {description} [dim]{seconds:.2f}s[/dim]")

    @contextmanager
    def bar(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar over `total` steps; yields the function that advances it by one."""
        if not self.enabled or not self.console.is_terminal:  # a log file gets no bar (and no blank line)
            yield lambda: None
            return
        columns = (
            rich_progress.TextColumn("  {task.description}"),
            rich_progress.BarColumn(),
            rich_progress.MofNCompleteColumn(),
            rich_progress.TimeElapsedColumn(),
        )
        with rich_progress.Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda: progress.advance(task)

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"  [dim]{message}[/dim]")
