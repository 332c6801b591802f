"""The "tiles" section: the share of all-masked tiles of each BWD-D layer's needed-dX mask in the
implicit-GEMM layout a GPU kernel uses, and the BWD-D work a tile-skipping kernel would avoid, per
layer and over the network (`agos sparsity --tiles`; the counting rules are in `agos.density.tiles`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, Field

from agos.analysis.base import Model

if TYPE_CHECKING:
    from agos.capture.trace import Trace
    from agos.density.select import DensitySource

LAYOUT = "implicit GEMM: rows = N·H·W input positions (n, h, w), columns = C input channels"


class TileShapeInfo(Model):
    name: str
    rows: int  # positions per tile (BLOCK_M)
    cols: int | Literal["C"]  # channels per tile (BLOCK_N); "C": all of the layer's channels


class ShapeTiles(Model):
    """One layer's tiles of one shape."""

    tiles: int
    empty_tiles: int
    empty_fraction: float
    work_skipped: int  # BWD-D MACs inside empty tiles
    work_skipped_fraction: float
    independent_empty: float  # expected empty fraction were the needed elements independent


class LayerTileStats(Model):
    name: str
    rows: int  # N·H·W
    cols: int  # C
    needed_fraction: float  # share of dX elements the mask keeps
    all_needed: bool  # the conservative mask (no output sparsity recorded)
    work_dense: int  # BWD-D MACs, valid taps
    work_element_skip: int  # MACs of every masked element: the element-level output-skip bound
    # by tile shape name (read from `density.tiles.LayerTiles.by_shape`)
    shapes: dict[str, ShapeTiles] = Field(validation_alias=AliasChoices("by_shape", "shapes"))


class TileTotals(Model):
    """The network's tiles of one shape: empty tiles over all tiles, skipped work over BWD-D work."""

    shape: str
    tiles: int
    empty_tiles: int
    empty_fraction: float
    work_dense: int
    work_skipped: int
    work_skipped_fraction: float
    share_of_element_skip: float | None  # None: no masked element at all
    max_speedup: float | None  # inf (null in JSON) when every BWD-D MAC sits in an empty tile


class Tiles(Model):
    density_source: str  # the mask source's label ("real masks", "uniform:0.6 (seed 0)", …)
    statistical: bool  # statistical masks: the empty fractions are the independence prediction
    layout: str
    tile_shapes: list[TileShapeInfo]
    layers: list[LayerTileStats]  # BWD-D layers only, in trace order
    totals: dict[str, TileTotals]  # by tile shape name
    element_skip_fraction: float  # element-level bound: masked BWD-D work over all BWD-D work


def compute_tiles(trace: Trace, source: DensitySource) -> Tiles:
    """Per-layer and network tile statistics of the masks `source` gives this trace."""
    from agos.density.tiles import TILE_SHAPES, network_tiles, totals

    layers = network_tiles(source.masks(trace))
    work = sum(t.work_dense for t in layers)
    return Tiles(
        density_source=source.label,
        statistical=source.kind != "real",
        layout=LAYOUT,
        tile_shapes=[
            TileShapeInfo(name=s.name, rows=s.rows, cols=s.cols if s.cols is not None else "C")
            for s in TILE_SHAPES
        ],
        layers=[LayerTileStats.model_validate(t, from_attributes=True) for t in layers],
        totals={s.name: TileTotals(**totals(layers, s.name)) for s in TILE_SHAPES},
        element_skip_fraction=sum(t.work_element_skip for t in layers) / work if work else 0.0,
    )
