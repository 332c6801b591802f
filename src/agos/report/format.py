"""Formatting shared by the renderers: the console, percentages, MAC counts."""

from __future__ import annotations

from rich.console import Console


def wide_console() -> Console:
    """A terminal's own width; at least 180 columns when writing to a file or pipe."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=max(180, probe.width))


def print_density_notes(analysis, console: Console) -> None:
    """The density source's notes (a profile that leaves activations real, …) under every table
    computed on it."""
    density = analysis.density
    for note in density.notes if density is not None else []:
        console.print(f"note: density {density.spec}: {note}", markup=False, highlight=False, soft_wrap=True)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:5.1f}%"


def macs(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
