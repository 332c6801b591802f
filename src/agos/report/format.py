"""The one set of formatters every renderer uses (terminal tables, the HTML page, the trajectory and
check tables): percentages, ratios, plain numbers, MAC counts, ranges and the console. A figure that
is missing or undefined (None, NaN, ±inf) is shown as a dash, never as 'nan'."""

from __future__ import annotations

import math

from rich.console import Console

DASH = "—"


def wide_console(min_width: int = 180) -> Console:
    """A terminal's own width; at least `min_width` columns when writing to a file or pipe."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=max(min_width, probe.width))


def missing(v) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def pct(x: float | None, digits: int = 1, width: int = 5) -> str:
    """A fraction as a percentage (0.123 → ' 12.3%')."""
    return DASH if missing(x) else f"{100 * x:{width}.{digits}f}%"


def times(x: float | None, digits: int = 2, unit: str = "×") -> str:
    """A ratio (a speedup): 1.234 → '1.23×'."""
    return DASH if missing(x) else f"{x:.{digits}f}{unit}"


def num(x: float | None, digits: int = 2) -> str:
    return DASH if missing(x) else f"{x:.{digits}f}"


def macs(n: int, digits: int = 2, units: str = "GMk") -> str:
    """A count with a unit prefix (1.5e9 → '1.50G'); `units` from the largest, e.g. 'TGMk'."""
    scales = {"T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3}
    for unit in units:
        if n >= scales[unit]:
            return f"{n / scales[unit]:.{digits}f}{unit}"
    return str(n)


def span(s: dict | None) -> str:
    """A {low, high} range of ratios: '1.20×–2.30×', or one figure when they agree."""
    if not s:
        return DASH
    low, high = s["low"], s["high"]
    return times(low) if abs(high - low) < 5e-3 else f"{times(low)}–{times(high)}"
