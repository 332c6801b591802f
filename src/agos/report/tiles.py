"""`agos sparsity --tiles`: the share of all-masked tiles of each layer's needed-dX mask in the
implicit-GEMM layout a GPU kernel uses, and the BWD-D work a tile-skipping kernel would avoid
(the rules are in `agos.density.tiles`)."""

from __future__ import annotations

from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from agos.capture.trace import Trace
from agos.density.select import resolve_density
from agos.density.tiles import TILE_SHAPES, LayerTiles, network_tiles, totals
from agos.inputs.provenance import provenance_label
from agos.report.sparsity import wide_console

INDEPENDENT_NOTE = (
    "statistical masks are drawn independently per element, so their empty-tile fractions are the "
    "independence prediction (1 − d)^elements, ≈ 0 for any tile of 256+ elements; they say nothing "
    "about how converged networks cluster their zeros"
)


def summarise(trace: Trace, density: str = "real", seed: int = 0) -> dict:
    """Per-layer and network tile statistics, labelled with the trace's provenance and mask source."""
    source = resolve_density(trace, density, seed)
    label = source.label
    layers = network_tiles(source.masks(trace))
    names = [s.name for s in TILE_SHAPES]
    return {
        "label": provenance_label(trace.provenance, label),
        "provenance": trace.provenance,
        "density_source": label,
        "statistical": source.kind != "real",
        "layout": "implicit GEMM: rows = N·H·W input positions (n, h, w), columns = C input channels",
        "tile_shapes": [
            {"name": s.name, "rows": s.rows, "cols": s.cols if s.cols is not None else "C"}
            for s in TILE_SHAPES
        ],
        "layers": [_layer_dict(t) for t in layers],
        "totals": {name: totals(layers, name) for name in names},
        "element_skip_fraction": _element_fraction(layers),
    }


def _element_fraction(layers: list[LayerTiles]) -> float:
    work = sum(t.work_dense for t in layers)
    return sum(t.work_element_skip for t in layers) / work if work else 0.0


def _layer_dict(t: LayerTiles) -> dict:
    d = asdict(t)
    d["shapes"] = {
        s.shape: {
            "tiles": s.tiles,
            "empty_tiles": s.empty_tiles,
            "empty_fraction": s.empty_fraction,
            "work_skipped": s.work_skipped,
            "work_skipped_fraction": s.work_skipped / t.work_dense if t.work_dense else 0.0,
            "independent_empty": s.independent_empty,
        }
        for s in t.shapes
    }
    return d


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def print_table(summary: dict, console: Console | None = None) -> None:
    console = console or wide_console()
    names = [s["name"] for s in summary["tile_shapes"]]
    table = Table(
        title=f"All-masked dX tiles per layer (empty tiles / BWD-D work in them) — {summary['label']}",
        title_justify="left",
    )
    for col in ("layer", "N·H·W × C", "dX skip"):
        table.add_column(col, justify="left" if col == "layer" else "right", overflow="fold")
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("indep. 32x32", justify="right", no_wrap=True)
    for layer in summary["layers"]:
        skip = _pct(1 - layer["needed_fraction"]) + (" (all)" if layer["all_needed"] else "")
        shapes = layer["shapes"]
        cells = [
            f"{_pct(shapes[n]['empty_fraction'])} / {_pct(shapes[n]['work_skipped_fraction'])}" for n in names
        ]
        table.add_row(
            layer["name"],
            f"{layer['rows']} × {layer['cols']}",
            skip,
            *cells,
            _pct(layer["shapes"]["32x32"]["independent_empty"]),
        )
    table.add_section()
    t = summary["totals"]
    table.add_row(
        "total",
        "",
        _pct(summary["element_skip_fraction"]) + " work",
        *[f"{_pct(t[n]['empty_fraction'])} / {_pct(t[n]['work_skipped_fraction'])}" for n in names],
        "",
    )
    console.print(table)
    console.print(
        "dX skip: masked elements (the element-level bound on skippable BWD-D work, total MAC-weighted); "
        "tile cells: empty tiles / BWD-D MACs inside them; edge tiles count as tiles, empty when every "
        "element they have is masked; channel = one position's whole channel vector"
    )
    if summary["statistical"]:
        console.print(f"note: {INDEPENDENT_NOTE}")
