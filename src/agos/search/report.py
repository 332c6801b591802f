"""The terminal table of `agos search` and its files: search.json (a dump of `SearchResult`) and
one plot per front."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from agos.fileio import owned_file
from agos.report.format import wide_console
from agos.search.front import SearchResult
from agos.search.plot import plot_front


def write(result: SearchResult, out: Path) -> list[Path]:
    path = out / "search.json"
    with owned_file(path) as f:  # in the search's own folder: a planted link is replaced
        f.write(result.model_dump_json(indent=1))
    files = [path]
    for i, front in enumerate(result.fronts):
        files.append(plot_front(front, out / f"front-{i + 1}-{front.organisation}.png"))
    return files


def print_table(result: SearchResult, console: Console | None = None) -> None:
    console = console or wide_console()
    for front in result.fronts:
        table = Table(title=f"{front.organisation}: {front.label}", title_justify="left", show_lines=False)
        for col in ("area budget", "best without output skipping", "ms", "best with output skipping", "ms",
                    "with / without"):  # fmt: skip
            table.add_column(col, justify="left" if "best" in col else "right", overflow="fold")
        for b in front.budgets:
            table.add_row(
                f"{b.budget:g}× ({b.area_mm2:.1f} mm²)",
                b.best_without or "—",
                f"{b.without_backprop_ms:.3f}" if b.without_backprop_ms is not None else "—",
                b.best_with or "—",
                f"{b.with_backprop_ms:.3f}" if b.with_backprop_ms is not None else "—",
                f"{b.with_over_without:.3f}×" if b.with_over_without is not None else "—",
            )
        console.print(table)
    console.print(
        f"{result.points} design points in {result.seconds:.0f} s; backprop time per training step; "
        "with / without: the fastest design without output skipping over the fastest with it, at most "
        "the budget's area (above 1×: output skipping pays). Every design uses the bypass rule.",
        highlight=False,
    )
