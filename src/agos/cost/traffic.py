"""DRAM traffic and buffer tiling of one pass (DESIGN.md §4 "Memory").

Each pass reads a streamed operand A (X in FWD and BWD-W, dY in BWD-D), a PE operand B (W in FWD
and BWD-D, dY in BWD-W) and writes an output O (Y, dX, dW). Partial sums never leave the PEs
(output-stationary), so O is written once. With double buffering half the buffer holds the tile in
use; when A, B and O do not fit there together, one operand is held in blocks of a quarter of the
buffer and the other is streamed past each block once: blocks of B are ranges of channel tiles
(channels outer), blocks of A are ranges of positions (positions outer). The order with less
traffic wins. A tile is one block; transfers of a tile overlap the compute of the previous one.
Halo re-reads of overlapping conv windows are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agos.arch.schema import Arch


@dataclass(frozen=True)
class PassOperands:
    """Bytes of the pass's operands, whole layer (all groups)."""

    streamed: float  # A
    pe: float  # B
    output: float  # O
    groups: int
    channels_per_group: int  # the pass's channel dimension (K for FWD/BWD-W, C for BWD-D)


@dataclass(frozen=True)
class TilePlan:
    order: str  # "single" | "channels" | "positions"
    # channels order: chunks of the flattened (group, channel tile) list; positions order: the
    # position ranges every group is cut into.
    channel_chunks: list[np.ndarray]
    position_chunks: list[tuple[int, int]]
    tile_bytes: np.ndarray  # DRAM bytes moved for each tile, in execution order

    @property
    def dram_bytes(self) -> float:
        return float(self.tile_bytes.sum())

    @property
    def tiles(self) -> int:
        return int(self.tile_bytes.size)


def plan_tiles(ops: PassOperands, widths: np.ndarray, positions: int, arch: Arch) -> TilePlan:
    """Choose the loop order and blocking of one pass. `widths` are the channel tiles of a group
    (one tile of all channels for a compacted pass); `positions` is per group."""
    g, ch = ops.groups, ops.channels_per_group
    t = widths.size
    capacity = arch.memory.global_buffer_bytes / (2 if arch.memory.double_buffering else 1)
    a_g, b_g, o_g = ops.streamed / g, ops.pe / g, ops.output / g
    pairs = np.arange(g * t)  # flattened (group, channel tile)
    pair_frac = np.tile(widths / ch, g)  # share of its group's channels
    pair_group = pairs // t

    def channel_plan(blocks: int) -> TilePlan:
        chunks = np.array_split(pairs, blocks)
        tb = np.array(
            [
                b_g * pair_frac[c].sum() + a_g * np.unique(pair_group[c]).size + o_g * pair_frac[c].sum()
                for c in chunks
            ]
        )
        return TilePlan("channels" if blocks > 1 else "single", chunks, [(0, positions)], tb)

    if ops.streamed + ops.pe + ops.output <= capacity:
        return channel_plan(1)
    block = capacity / 2
    by_channels = channel_plan(int(min(g * t, max(1, math.ceil(ops.pe / block)))))
    na = int(min(positions, max(1, math.ceil(a_g / block))))
    bounds = np.linspace(0, positions, na + 1).round().astype(np.int64)
    ranges = [(int(bounds[i]), int(bounds[i + 1])) for i in range(na)]
    fracs = np.array([(hi - lo) / positions for lo, hi in ranges])
    tb = np.concatenate([a_g * fracs + b_g + o_g * fracs for _ in range(g)])
    by_positions = TilePlan("positions", [pairs], ranges, tb)
    return by_positions if by_positions.dram_bytes < by_channels.dram_bytes else by_channels


def compressed_bytes(numel: int, nonzero: int, value_bytes: int) -> float:
    """Nonzero values plus a one-bit-per-element bitmap."""
    return nonzero * value_bytes + math.ceil(numel / 8)
