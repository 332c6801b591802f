"""The one set of formatters every renderer uses (terminal tables, the HTML page, the trajectory and
check tables): percentages, ratios, plain numbers, MAC counts, ranges and the console. A figure that
is missing or undefined (None, NaN, ±inf) is shown as a dash, never as 'nan'."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

PIPE_WIDTH = 1000  # a file or pipe: tables take their natural width, no column squeezed

DASH = "—"

def wide_console(stderr: bool = False) -> Console:
    """A terminal's own width; written to a file or pipe, as wide as a table needs (an 80-column
    default squeezed and truncated columns, design names included)."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=max(PIPE_WIDTH, probe.width))


def name_width(names) -> int:
    """`min_width` of a column of design names: never truncated, whatever the terminal's width."""
    return max((len(str(n)) for n in names), default=1)


@dataclass(frozen=True)
class Col:
    header: str
    justify: Literal["left", "right", "center"] = "right"


def _table(title: str, cols: list[Col], rows: list[list[str]], chosen: list[int] | None = None) -> Table:
    chosen = list(range(len(cols))) if chosen is None else chosen
    table = Table(title=title or None, title_justify="left")
    for i in chosen:
        width = max([len(cols[i].header), *(len(r[i]) for r in rows)])
        table.add_column(cols[i].header, justify=cols[i].justify, no_wrap=True, min_width=width)
    for r in rows:
        table.add_row(*(r[i] for i in chosen))
    return table


def print_fitted(console: Console, title: str, cols: list[Col], rows: list[list[str]], keys: int = 1) -> None:
    """A table whose cells are never cut: printed whole when it fits the console, else split into
    parts of whole columns, each led by the first `keys` columns (the design names), one under the
    other. A squeezed table once truncated design names (`agos@syst…`) and hid whole columns."""

    def width(chosen: list[int] | None) -> int:  # the natural width, not clamped to the console's
        return Measurement.get(
            console, console.options.update_width(1 << 20), _table("", cols, rows, chosen)
        ).maximum

    if width(None) <= console.width:
        console.print(_table(title, cols, rows))
        return
    parts: list[list[int]] = []
    for i in range(keys, len(cols)):
        if parts and width([*range(keys), *parts[-1], i]) <= console.width:
            parts[-1].append(i)
        else:
            parts.append([i])
    console.print(f"{title} (in {len(parts)} parts: wider than the terminal)", markup=False, highlight=False)
    for part in parts:
        console.print(_table("", cols, rows, [*range(keys), *part]))


def print_density_notes(analysis, console: Console) -> None:
    """The density source's notes (a profile that leaves activations real, …) under every table
    computed on it."""
    density = analysis.density
    for note in density.notes if density is not None else []:
        console.print(f"note: density {density.spec}: {note}", markup=False, highlight=False, soft_wrap=True)


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
