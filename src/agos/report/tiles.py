"""`agos sparsity --tiles`: the "tiles" section of an `Analysis` (computed in
`agos.analysis.tiles`) as a table: the share of all-masked tiles of each layer's needed-dX mask in
the implicit-GEMM layout a GPU kernel uses, and the BWD-D work a tile-skipping kernel would avoid."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agos.analysis.model import Analysis
from agos.analysis.tiles import Tiles
from agos.report.format import pct, print_density_notes, wide_console

INDEPENDENT_NOTE = (
    "statistical masks are drawn independently per element, so their empty-tile fractions are the "
    "independence prediction (1 − d)^elements, ≈ 0 for any tile of 256+ elements; they say nothing "
    "about how converged networks cluster their zeros"
)


def _pct(x: float | None) -> str:
    return pct(x, digits=2, width=0)


def _section(analysis: Analysis) -> Tiles:
    if analysis.tiles is None:
        raise ValueError("this analysis has no tiles section")
    return analysis.tiles


def print_table(analysis: Analysis, console: Console | None = None) -> None:
    section = _section(analysis)
    console = console or wide_console()
    names = [s.name for s in section.tile_shapes]
    table = Table(
        title=f"All-masked dX tiles per layer (empty tiles / BWD-D work in them) — {analysis.label}",
        title_justify="left",
    )
    for col in ("layer", "N·H·W × C", "dX skip"):
        table.add_column(col, justify="left" if col == "layer" else "right", overflow="fold")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("indep. 32x32", justify="right", no_wrap=True)
    for layer in section.layers:
        skip = _pct(1 - layer.needed_fraction) + (" (all)" if layer.all_needed else "")
        shapes = layer.shapes
        cells = [f"{_pct(shapes[n].empty_fraction)} / {_pct(shapes[n].work_skipped_fraction)}" for n in names]
        table.add_row(
            layer.name,
            f"{layer.rows} × {layer.cols}",
            skip,
            *cells,
            _pct(shapes["32x32"].independent_empty),
        )
    table.add_section()
    t = section.totals
    table.add_row(
        "total",
        "",
        _pct(section.element_skip_fraction) + " work",
        *[f"{_pct(t[n].empty_fraction)} / {_pct(t[n].work_skipped_fraction)}" for n in names],
        "",
    )
    console.print(table)
    console.print(
        "dX skip: masked elements (the element-level bound on skippable BWD-D work, total MAC-weighted); "
        "tile cells: empty tiles / BWD-D MACs inside them; edge tiles count as tiles, empty when every "
        "element they have is masked; channel = one position's whole channel vector"
    )
    if section.statistical:
        console.print(f"note: {INDEPENDENT_NOTE}")
    print_density_notes(analysis, console)
