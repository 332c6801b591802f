"""`agos sparsity --structure`: the "structure" section of an `Analysis` (computed in
`agos.analysis.structure`) as tables — one for X's zeros, one for the skippable dX — and the pooled
figures of dY beneath (its per-layer figures are in the JSON)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agos.analysis.model import Analysis
from agos.analysis.structure import MaskStructure, Structure, StructureTotals
from agos.report.format import wide_console

TITLES = {"x": "zeros of X", "dx": "skippable dX (not needed)", "dy": "zeros of dY"}
COLUMNS = (
    "zero",
    "dead ch",
    "dead planes",
    "dead pos",
    "F ch/planes",
    "pos",
    "plane",
    "nbr",
    "spatial",
    "aligned",
)
LEGEND = (
    "dead ch: channels zero over the whole batch; dead planes: one image's channel all zero; dead pos: "
    "an (image, pixel) zero in every channel (each over its units; in parentheses what independent "
    "zeros at this density give, where that is 0.05% or more). F ch/planes: the share of the zeros in "
    "dead channels / dead planes (the F of structure=channels:F, planes:F). pos, plane, nbr: "
    "P(partner zero | zero) for another channel at the same position, another pixel of the same "
    "image's channel, a 4-neighbour, as lift over independent zeros (×1.00: independent; uneven "
    "channel densities alone raise plane and nbr). spatial: neighbour pairs over those of each "
    "plane's zeros placed at random in it (above ×1: blobs); aligned: same-position pairs over those "
    "of each plane's zeros placed independently (above ×1: channels zero at the same pixels)"
)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _dead(found: float | None, independent: float | None) -> str:
    text = _pct(found)
    if independent is not None and independent >= 5e-4:
        text += f" ({_pct(independent)})"
    return text


def _f(share: float | None) -> str:
    return "—" if share is None else f"{share:.2f}"


def _lift(lift: float | None) -> str:
    return "—" if lift is None else f"×{lift:.2f}"


def _cells(m: MaskStructure | StructureTotals) -> list[str]:
    indep = isinstance(m, MaskStructure)
    return [
        _pct(m.zero_fraction),
        _dead(m.dead_channels, m.independent_dead_channels if indep else None),
        _dead(m.dead_planes, m.independent_dead_planes if indep else None),
        _dead(m.dead_positions, m.independent_dead_positions if indep else None),
        f"{_f(m.zeros_in_dead_channels)}/{_f(m.zeros_in_dead_planes)}",
        _lift(m.same_position.lift),
        _lift(m.same_plane.lift),
        _lift(m.neighbour.lift),
        _lift(m.spatial),
        _lift(m.aligned),
    ]


def _section(analysis: Analysis) -> Structure:
    if analysis.structure is None:
        raise ValueError("this analysis has no structure section")
    return analysis.structure


def print_table(analysis: Analysis, console: Console | None = None) -> None:
    section = _section(analysis)
    console = console or wide_console()
    for kind in ("x", "dx"):
        title = f"Structure of the {TITLES[kind]} per layer — {analysis.label}"
        table = Table(title=title, title_justify="left")
        table.add_column("layer", overflow="fold")
        table.add_column("N×C×H×W", justify="right", no_wrap=True)
        for col in COLUMNS:
            table.add_column(col, justify="right", no_wrap=True)
        for layer in section.layers:
            m = getattr(layer, kind)
            if m is None:
                continue
            table.add_row(layer.name, "×".join(map(str, layer.shape)), *_cells(m))
        total = section.totals.get(kind)
        if total is not None:
            table.add_section()
            table.add_row(f"pooled ({total.layers} layers)", "", *_cells(total))
        console.print(table)
        if total is not None and total.left_out:
            console.print(f"pooled over maps with H·W > 1; per layer only: {', '.join(total.left_out)}")
    dy = section.totals.get("dy")
    if dy is not None:
        console.print(
            "dY pooled (per layer in --json): "
            + ", ".join(f"{c} {v}" for c, v in zip(COLUMNS, _cells(dy), strict=True))
        )
    console.print(LEGEND)
