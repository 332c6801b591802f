"""Progress bars on stderr (rich), silent when stderr is not a terminal unless forced."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


def _enabled() -> bool:
    return sys.stderr.isatty() or os.environ.get("AGOS_PROGRESS") == "1"


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int, str], None]]:
    """Yield `advance(n, note)`; a no-op when progress is disabled."""
    if not _enabled():
        yield lambda n=1, note="": None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # the estimate: elapsed per item × items left
    )
    with Progress(*columns, console=_console, transient=False) as progress:
        task = progress.add_task(label, total=total, note="")

        def advance(n: int = 1, note: str = "") -> None:
            progress.update(task, advance=n, note=note)

        yield advance


@contextlib.contextmanager
def progress_status(label: str) -> Iterator[None]:
    """A spinner with the elapsed time for a phase whose length is not counted (building a model,
    one captured training step, writing or checking a trace); it stays, with its time, when done."""
    if not _enabled():
        yield
        return
    columns = (SpinnerColumn(finished_text="✓"), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=False) as progress:
        task = progress.add_task(label, total=None)
        yield
        progress.update(task, total=1, completed=1)
