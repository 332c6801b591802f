"""The "tiles" section: the share of all-masked tiles of each BWD-D layer's needed-dX mask in the
implicit-GEMM layout a GPU kernel uses, and the BWD-D work a tile-skipping kernel would avoid, per
layer and over the network (`agos sparsity --tiles`; the counting rules are in `agos.density.tiles`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field

from agos.analysis.base import Count, Fraction, Model, Ratio

if TYPE_CHECKING:
    from agos.capture.trace import Trace
    from agos.density.select import DensitySource

LAYOUT = "implicit GEMM: rows = N·H·W input positions (n, h, w), columns = C input channels"


class TileShapeInfo(Model):
    name: str
    rows: Count  # positions per tile (BLOCK_M)
    cols: Count | Literal["C"]  # channels per tile (BLOCK_N); "C": all of the layer's channels


class ShapeTiles(Model):
    """One layer's tiles of one shape."""

    tiles: Count
    empty_tiles: Count
    empty_fraction: Fraction
    work_skipped: Count  # BWD-D MACs inside empty tiles
    work_skipped_fraction: Fraction
    independent_empty: Fraction  # expected empty fraction were the needed elements independent


class LayerTileStats(Model):
    name: str
    rows: Count  # N·H·W
    cols: Count  # C
    needed_fraction: Fraction  # share of dX elements the mask keeps
    all_needed: bool  # the conservative mask (no output sparsity recorded)
    work_dense: Count  # BWD-D MACs, valid taps
    work_element_skip: Count  # MACs of every masked element: the element-level output-skip bound
    # by tile shape name (read from `density.tiles.LayerTiles.by_shape`)
    shapes: dict[str, ShapeTiles] = Field(validation_alias=AliasChoices("by_shape", "shapes"))


class TileTotals(Model):
    """The network's tiles of one shape: empty tiles over all tiles, skipped work over BWD-D work."""

    shape: str
    tiles: Count
    empty_tiles: Count
    empty_fraction: Fraction
    work_dense: Count
    work_skipped: Count
    work_skipped_fraction: Fraction
    share_of_element_skip: Fraction | None  # None: no masked element at all
    max_speedup: Ratio  # None (unbounded) when every BWD-D MAC sits in an empty tile


class Tiles(Model):
    density_source: str  # the mask source's label ("real masks", "uniform:0.6 (seed 0)", …)
    statistical: bool  # statistical masks drawn independently per element (no structure= but
    # independent): the empty fractions are the independence prediction
    layout: str
    tile_shapes: list[TileShapeInfo]
    layers: list[LayerTileStats]  # BWD-D layers only, in trace order
    totals: dict[str, TileTotals]  # by tile shape name
    element_skip_fraction: Fraction  # element-level bound: masked BWD-D work over all BWD-D work


def _bounded(figures: dict) -> dict:
    """An unbounded speedup (every BWD-D MAC in an empty tile) is None, as in the JSON."""
    unbounded = figures["max_speedup"] is not None and math.isinf(figures["max_speedup"])
    return {**figures, "max_speedup": None if unbounded else figures["max_speedup"]}


def compute_tiles(trace: Trace, source: DensitySource) -> Tiles:
    """Per-layer and network tile statistics of the masks `source` gives this trace."""
    from agos.density.tiles import TILE_SHAPES, network_tiles, totals

    layers = network_tiles(source.masks(trace))
    work = sum(t.work_dense for t in layers)
    return Tiles(
        density_source=source.label,
        statistical=source.kind != "real"
        and (source.spec.structure is None or source.spec.structure.kind == "independent"),
        layout=LAYOUT,
        tile_shapes=[
            TileShapeInfo(name=s.name, rows=s.rows, cols=s.cols if s.cols is not None else "C")
            for s in TILE_SHAPES
        ],
        layers=[LayerTileStats.model_validate(t, from_attributes=True) for t in layers],
        totals={s.name: TileTotals(**_bounded(totals(layers, s.name))) for s in TILE_SHAPES},
        element_skip_fraction=sum(t.work_element_skip for t in layers) / work if work else 0.0,
    )
