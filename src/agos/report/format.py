"""Formatting shared by the renderers: the console, percentages, MAC counts."""

from __future__ import annotations

from rich.console import Console


def wide_console() -> Console:
    """A terminal's own width; at least 180 columns when writing to a file or pipe."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=max(180, probe.width))


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:5.1f}%"


def macs(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
