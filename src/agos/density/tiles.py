"""Tile-level output sparsity: how much of a layer's data gradient a GPU kernel could skip whole.

A GPU computes BWD-D as an implicit GEMM: dX is a matrix of rows = the N·H·W input positions
(ordered n, h, w) and columns = the C input channels, and one program computes one BLOCK_M × BLOCK_N
tile of it. Element-level masking of the output does not pay on a GPU (sampled GEMMs lose 14–30× to
cuDNN, `../shared/anchors/`); a program can only save time by *not running*: that needs a tile every
element of which the needed-dX mask drops. This module measures, per layer and tile shape, the
fraction of such all-masked tiles and the BWD-D work they hold.

Counting rules (tested against a plain loop in `tests/test_tiles.py`):

- *Edge tiles.* When N·H·W or C is not a multiple of the tile, the last row/column of tiles is
  partial; each partial tile counts as one tile, and it is empty when all of its *existing* elements
  are masked (the kernel's bounds check leaves the rest alone).
- *Channel tiles* ("channel") are a position's whole channel vector: 1 × C.
- *Work* is BWD-D in scatter form with valid taps only, as everywhere in agos: element dX[n,c,h,w]
  costs taps(h, w) × K/groups MACs, taps(h, w) being the (p, q, r, s) that reach it. Summed over
  all elements this is the layer's dense MACs (`LayerGeometry.macs`); the skipped work is the sum
  over empty tiles; the element-level bound is the sum over every masked element.
- *Independent prediction.* With a fraction d of needed elements spread independently, a tile of e
  elements is empty with probability (1 − d)^e; the mean of that over the layer's tiles is printed
  beside the measurement. The seeded masks of the converged profiles (`profile:…`) are drawn this
  way — independently per element — so their empty fractions are this prediction, not a property
  of converged networks: real masks cluster (whole channels, whole regions go dark), and only real
  masks of converged networks can say how much.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks


@dataclass(frozen=True)
class TileShape:
    name: str
    rows: int  # positions per tile (BLOCK_M)
    cols: int | None  # channels per tile (BLOCK_N); None: all of the layer's channels

    def size(self, channels: int) -> tuple[int, int]:
        return self.rows, (self.cols if self.cols is not None else channels)


TILE_SHAPES: tuple[TileShape, ...] = (
    TileShape("16x16", 16, 16),
    TileShape("32x32", 32, 32),
    TileShape("64x64", 64, 64),
    TileShape("128x64", 128, 64),
    TileShape("channel", 1, None),
)


@dataclass(frozen=True)
class TileStats:
    shape: str
    tiles: int
    empty_tiles: int
    work_skipped: int  # BWD-D MACs inside empty tiles
    independent_empty: float  # expected empty fraction were the needed elements independent
    work_dense: int  # the layer's BWD-D MACs

    @property
    def empty_fraction(self) -> float:
        return self.empty_tiles / self.tiles if self.tiles else 0.0

    @property
    def work_skipped_fraction(self) -> float:
        return self.work_skipped / self.work_dense if self.work_dense else 0.0


@dataclass(frozen=True)
class LayerTiles:
    name: str
    rows: int  # N·H·W
    cols: int  # C
    needed_fraction: float  # share of dX elements the mask keeps
    all_needed: bool  # the conservative mask (no output sparsity recorded)
    work_dense: int  # BWD-D MACs, valid taps
    work_element_skip: int  # MACs of every masked element: the element-level output-skip bound
    shapes: tuple[TileStats, ...]

    def stats(self, shape: str) -> TileStats:
        return next(s for s in self.shapes if s.shape == shape)

    @property
    def by_shape(self) -> dict[str, TileStats]:
        return {s.shape: s for s in self.shapes}


def axis_taps(out: int, size: int, kernel: int, stride: int, pad: int, dil: int) -> np.ndarray:
    """Per input index along one axis: how many (output index, kernel index) pairs reach it."""
    idx = (np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dil - pad).ravel()
    return np.bincount(idx[(idx >= 0) & (idx < size)], minlength=size).astype(np.int64)


def position_taps(g: LayerGeometry) -> np.ndarray:
    """[H, W] int64: the taps that reach each input position in BWD-D (scatter form)."""
    th = axis_taps(g.p, g.h, g.r, g.stride[0], g.padding[0], g.dilation[0])
    tw = axis_taps(g.q, g.w, g.s, g.stride[1], g.padding[1], g.dilation[1])
    return th[:, None] * tw[None, :]


def gemm_view(dx_needed: torch.Tensor | np.ndarray) -> np.ndarray:
    """A [N, C, H, W] mask as the implicit GEMM's [N·H·W, C] matrix (rows ordered n, h, w)."""
    m = dx_needed.numpy() if isinstance(dx_needed, torch.Tensor) else np.asarray(dx_needed)
    n, c, h, w = m.shape
    return np.ascontiguousarray(m.transpose(0, 2, 3, 1)).reshape(n * h * w, c)


def _starts(length: int, block: int) -> np.ndarray:
    return np.arange(0, length, block)


def tile_any(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[⌈M/rows⌉, ⌈C/cols⌉] bool: does the tile hold any needed element? Partial edge tiles are
    reduced over the elements they have (the padding added to fill them is all False)."""
    m, c = matrix.shape
    tm, tc = -(-m // rows), -(-c // cols)
    if (tm * rows, tc * cols) != (m, c):
        matrix = np.pad(matrix, ((0, tm * rows - m), (0, tc * cols - c)))
    return matrix.reshape(tm, rows, tc, cols).any(axis=(1, 3))


def _tile_any_from(
    grids: dict[tuple[int, int], np.ndarray], matrix: np.ndarray, bm: int, bn: int
) -> np.ndarray:
    """`tile_any(matrix, bm, bn)`, reduced from a finer grid already computed when its tiles divide
    these (tile starts are multiples of the finer size, so edge tiles come out the same): the full
    mask is read once for 16×16, not again for 32×32, 64×64 and 128×64."""
    for (fm, fn), grid in grids.items():
        if bm % fm == 0 and bn % fn == 0 and (fm, fn) != (bm, bn):
            return tile_any(grid, bm // fm, bn // fn)
    return tile_any(matrix, bm, bn)


def _block_sums(values: np.ndarray, block: int) -> np.ndarray:
    return np.add.reduceat(values, _starts(len(values), block))


def layer_tiles(masks: LayerMasks, shapes: Iterable[TileShape] = TILE_SHAPES) -> LayerTiles | None:
    """Tile statistics of one layer's needed-dX mask; None for a layer that runs no BWD-D."""
    if not masks.needs_bwd_data:
        return None
    g = masks.geometry
    matrix = gemm_view(masks.dx_needed.reshape(g.x_shape))
    m, c = matrix.shape
    k_per_group = g.k // g.groups
    row_taps = np.tile(position_taps(g).ravel(), g.n)  # per GEMM row
    needed_per_row = matrix.sum(axis=1, dtype=np.int64)
    work_dense = int(row_taps.sum()) * c * k_per_group
    work_needed = int((row_taps * needed_per_row).sum()) * k_per_group
    needed = int(needed_per_row.sum())
    density = needed / matrix.size if matrix.size else 0.0
    stats = []
    grids: dict[tuple[int, int], np.ndarray] = {}  # tile "any" grids already reduced, by tile size
    for shape in shapes:
        bm, bn = shape.size(c)
        nonempty = _tile_any_from(grids, matrix, bm, bn)
        grids[(bm, bn)] = nonempty
        rows_in = _block_sums(np.ones(m, dtype=np.int64), bm)
        cols_in = _block_sums(np.ones(c, dtype=np.int64), bn)
        tile_work = _block_sums(row_taps, bm)[:, None] * cols_in[None, :] * k_per_group
        elements = (rows_in[:, None] * cols_in[None, :]).astype(np.float64)
        stats.append(
            TileStats(
                shape=shape.name,
                tiles=int(nonempty.size),
                empty_tiles=int(nonempty.size - np.count_nonzero(nonempty)),
                work_skipped=int(tile_work[~nonempty].sum()),
                independent_empty=float(np.mean((1.0 - density) ** elements)) if nonempty.size else 0.0,
                work_dense=work_dense,
            )
        )
    return LayerTiles(
        name=masks.name,
        rows=m,
        cols=c,
        needed_fraction=density,
        all_needed=masks.dx_all_needed,
        work_dense=work_dense,
        work_element_skip=work_dense - work_needed,
        shapes=tuple(stats),
    )


def network_tiles(
    layers: Iterable[LayerMasks], shapes: Iterable[TileShape] = TILE_SHAPES
) -> list[LayerTiles]:
    """Every BWD-D layer's tile statistics, in trace order (layers without BWD-D left out)."""
    shapes = tuple(shapes)
    return [t for t in (layer_tiles(lm, shapes) for lm in layers) if t is not None]


def totals(layers: list[LayerTiles], shape: str) -> dict:
    """Network totals for one tile shape: empty tiles over all tiles, skipped work over BWD-D work."""
    tiles = sum(t.stats(shape).tiles for t in layers)
    empty = sum(t.stats(shape).empty_tiles for t in layers)
    work = sum(t.work_dense for t in layers)
    skipped = sum(t.stats(shape).work_skipped for t in layers)
    element = sum(t.work_element_skip for t in layers)
    return {
        "shape": shape,
        "tiles": tiles,
        "empty_tiles": empty,
        "empty_fraction": empty / tiles if tiles else 0.0,
        "work_dense": work,
        "work_skipped": skipped,
        "work_skipped_fraction": skipped / work if work else 0.0,
        "share_of_element_skip": skipped / element if element else None,
        "max_speedup": work / (work - skipped) if work > skipped else (math.inf if work else 1.0),
    }
