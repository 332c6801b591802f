"""Work counts per stream block (docs/cost-model.md §4, §6): every pass's stream is a sequence of
units — one input channel (FWD), one output channel (BWD-D), one output row (n, p) (BWD-W) — and
the per-PE stores of `rows` and the buffer tiling of both organisations cut it into blocks of units.
Each block needs the counts of `agos.workload.counts` restricted to it: T_j and s_j per position.

All counts are exact integers (box sums of bool masks); the two-sided BWD-W counts per block, needed
only when a row broadcasts more than one entry per cycle, are matrix products of 0/1 floats whose
partial sums never exceed a block's entries (exact in fp32; checked)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import torch

from agos.errors import AgosError
from agos.workload.boxsum import axes_of, box_scatter, box_sum, exact_arithmetic, from_full, to_full
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import mapping


def units(pass_: str, g: LayerGeometry) -> int:
    """Stream units per group (workload.passes): C_g (FWD), K_g (BWD-D), N·P output rows (BWD-W)."""
    return mapping(pass_).units(g)


@dataclass(frozen=True)
class Partition:
    """Stream blocks: unit ranges [starts[j], stops[j]) covering the units in order."""

    starts: tuple[int, ...]
    stops: tuple[int, ...]
    entries: tuple[int, ...]  # ε_j: full-enumeration entries of each block

    @property
    def count(self) -> int:
        return len(self.starts)

    def sizes(self) -> np.ndarray:
        return np.array(self.stops, np.int64) - np.array(self.starts, np.int64)


def _partition(pass_: str, g: LayerGeometry, ranges: list[tuple[int, int]]) -> Partition:
    per_unit = mapping(pass_).unit_entries(g)  # R·S taps of a channel, or Q pixels of an output row
    return Partition(
        tuple(lo for lo, _ in ranges),
        tuple(hi for _, hi in ranges),
        tuple((hi - lo) * per_unit for lo, hi in ranges),
    )


def uniform_blocks(pass_: str, g: LayerGeometry, sigma: int) -> Partition:
    """σ stream blocks of ⌈U/σ⌉ units (the last shorter): the buffer tiling's split (§6)."""
    u = units(pass_, g)
    size = -(-u // sigma)
    return _partition(pass_, g, [(lo, min(u, lo + size)) for lo in range(0, u, size)])


def store_chunks(pass_: str, masks: LayerMasks, per_channel_entries: int) -> Partition:
    """§4's chunks for a store of `per_channel_entries` entries per channel."""
    g = masks.geometry
    e = per_channel_entries
    u = units(pass_, g)
    if mapping(pass_).units_are_channels:
        size = e // (g.r * g.s)
        if size == 0:
            raise AgosError(
                f"layer {masks.name} {pass_}: a PE store of {e} entries per channel cannot hold the "
                f"{g.r * g.s} kernel taps of one channel; raise organisation.pe_store_entries"
            )
        return _partition(pass_, g, [(lo, min(u, lo + size)) for lo in range(0, u, size)])
    plane = g.p * g.q
    if plane <= e:
        size = (e // plane) * g.p  # whole images
        return _partition(pass_, g, [(lo, min(u, lo + size)) for lo in range(0, u, size)])
    size = e // g.q
    if size == 0:
        raise AgosError(
            f"layer {masks.name} {pass_}: a PE store of {e} entries per channel cannot hold one "
            f"output row of {g.q}; raise organisation.pe_store_entries"
        )
    return _partition(
        pass_,
        g,
        [(n * g.p + lo, n * g.p + min(g.p, lo + size)) for n in range(g.n) for lo in range(0, g.p, size)],
    )


@dataclass
class BlockCounts:
    """T_j and s_j of every position (raster order within a group), per stream block."""

    partition: Partition
    length: np.ndarray  # T_j, int64 [J, pos]
    nonzero: np.ndarray  # s_j, int64 [J, G, pos]
    _both: dict = field(default_factory=dict, repr=False)


@dataclass
class RowCounts:
    """BWD-W per output row (n, p): s [N·P, C, R·S] and T [N·P, R·S]; any partition sums them —
    s as differences of its prefix sums over the rows (`prefix`: [N·P + 1, C, R·S])."""

    length: np.ndarray
    prefix: np.ndarray

    @property
    def nonzero(self) -> np.ndarray:
        """s per output row, [N·P, C, R·S]."""
        return np.diff(self.prefix, axis=0)


def row_counts(masks: LayerMasks) -> RowCounts:
    g = masks.geometry
    ah, aw = axes_of(g)
    x = masks.x_nonzero.reshape(g.x_shape).numpy().view(np.uint8)
    xf = to_full(x, ah, aw)  # [N, C, full_h, full_w], zeros where padded
    s = np.zeros((g.n, g.p, g.c, g.r, g.s), np.int32)
    for si, rowsum in enumerate(_tap_column_sums(xf, aw)):  # [N, C, full_h] each
        for ri in range(g.r):
            rows = slice(ri * ah.dil, ri * ah.dil + (ah.out - 1) * ah.stride + 1, ah.stride)
            s[:, :, :, ri, si] = rowsum[:, :, rows].transpose(0, 2, 1)
    p = np.arange(g.p)[:, None] * ah.stride + np.arange(g.r)[None, :] * ah.dil - ah.pad
    valid_r = ((p >= 0) & (p < ah.size)).astype(np.int64)  # [P, R]
    taps_q = aw.outputs_per_tap.numpy()  # [S]
    length = (valid_r[:, :, None] * taps_q[None, None, :]).reshape(g.p, -1)
    # a prefix never exceeds N·P·Q (each output pixel meets a tap's input once): int32 below 2^31
    prefix = np.zeros((g.n * g.p + 1, g.c, g.r * g.s), np.int32 if g.n * g.p * g.q < 2**31 else np.int64)
    np.cumsum(s.reshape(g.n * g.p, g.c, -1), axis=0, out=prefix[1:])
    return RowCounts(np.tile(length, (g.n, 1)), prefix)


def _tap_column_sums(xf: np.ndarray, aw) -> list[np.ndarray]:
    """Per kernel column s, Σ_q xf[.., s·dil + q·stride] over padded xf [.., full_w] (int32). The
    columns of one s are a run of one residue class mod the stride: each class is summed once, and
    each s takes its class's sum less the few columns of the class outside its run."""
    classes: dict[int, np.ndarray] = {}
    out = []
    for si in range(aw.kernel):
        start = si * aw.dil
        stop = start + (aw.out - 1) * aw.stride + 1
        first = start % aw.stride
        if first not in classes:
            classes[first] = xf[..., first :: aw.stride].sum(axis=-1, dtype=np.int32)
        total = classes[first].copy()
        last = stop - 1  # the run's last column
        for col in (*range(first, start, aw.stride), *range(last + aw.stride, xf.shape[-1], aw.stride)):
            total -= xf[..., col]
        out.append(total)
    return out


def block_counts(
    pass_: str, masks: LayerMasks, part: Partition, rows: RowCounts | None = None
) -> BlockCounts:
    g = masks.geometry
    form = mapping(pass_).stream_sum
    with exact_arithmetic(g.macs):
        if form == "box":
            return _fwd(masks, part)
        if form == "scatter":
            return _bwd_data(masks, part)
        return _bwd_weight(masks, part, rows or row_counts(masks))


@numba.njit(cache=True)
def _unit_sums(mask, starts, stops):
    """Nonzero entries of each block of units: [N, G, U, plane] 0/1 → int32 [N, G, J, plane]
    (one pass in memory order; numpy's reduceat along a middle axis is many times slower)."""
    n, groups, _, plane = mask.shape
    out = np.zeros((n, groups, starts.size, plane), np.int32)
    for a in range(n):
        for b in range(groups):
            for j in range(starts.size):
                for u in range(starts[j], stops[j]):
                    for q in range(plane):
                        out[a, b, j, q] += mask[a, b, u, q]
    return out


def _block_sums(mask: np.ndarray, part: Partition) -> np.ndarray:
    """[N, G, U, H, W] 0/1 → int32 [N, G, J, H, W]: the units of each stream block summed."""
    n, groups, units_, h, w = mask.shape
    flat = np.ascontiguousarray(mask).reshape(n, groups, units_, h * w)
    starts, stops = np.array(part.starts, np.int64), np.array(part.stops, np.int64)
    return _unit_sums(flat, starts, stops).reshape(n, groups, part.count, h, w)


def _fwd(masks: LayerMasks, part: Partition) -> BlockCounts:
    g = masks.geometry
    ah, aw = axes_of(g)
    x = masks.x_nonzero.reshape(g.x_shape).numpy().view(np.uint8)
    blocks = _block_sums(x.reshape(g.n, g.groups, g.c_per_group, g.h, g.w), part)  # [N, G, J, H, W]
    s = box_sum(to_full(blocks, ah, aw), ah, aw)  # [N, G, J, P, Q]
    s = s.transpose(2, 1, 0, 3, 4).reshape(part.count, g.groups, -1).astype(np.int64)
    taps = np.outer(ah.taps_per_output.numpy(), aw.taps_per_output.numpy()).reshape(-1)
    length = part.sizes()[:, None] * np.tile(taps, g.n)[None, :]
    return BlockCounts(part, length.astype(np.int64), s)


def _bwd_data(masks: LayerMasks, part: Partition) -> BlockCounts:
    g = masks.geometry
    ah, aw = axes_of(g)
    dy = masks.dy_nonzero.reshape(g.y_shape).numpy().view(np.uint8)
    blocks = _block_sums(dy.reshape(g.n, g.groups, g.k_per_group, g.p, g.q), part)  # [N, G, J, P, Q]
    s = from_full(box_scatter(blocks, ah, aw), ah, aw)  # [N, G, J, H, W]
    s = s.transpose(2, 1, 0, 3, 4).reshape(part.count, g.groups, -1).astype(np.int64)
    reach = np.outer(ah.reach.numpy(), aw.reach.numpy()).reshape(-1)
    length = part.sizes()[:, None] * np.tile(reach, g.n)[None, :]
    return BlockCounts(part, length.astype(np.int64), s)


def _bwd_weight(masks: LayerMasks, part: Partition, rows: RowCounts) -> BlockCounts:
    g = masks.geometry
    starts = list(part.starts)
    s = (rows.prefix[list(part.stops)] - rows.prefix[starts]).astype(np.int64)  # [J, C, R·S]: blocks' rows
    nonzero = s.reshape(part.count, g.groups, -1)
    length = np.add.reduceat(rows.length, starts, axis=0)  # [J, R·S]
    return BlockCounts(part, np.tile(length, (1, g.c_per_group)).astype(np.int64), nonzero)


def block_both_max(masks: LayerMasks, counts: BlockCounts, tiles) -> np.ndarray:
    """BWD-W two-sided counts per block, the max over each tile's (group, channel) pairs:
    int64 [J, tiles, C_g·R·S]. Only a row broadcasting more than one entry per cycle needs it."""
    key = tuple(tiles)
    if key in counts._both:
        return counts._both[key]
    g = masks.geometry
    both = _both_per_block(masks, counts.partition)  # [J, G, Kg, pos]
    mx = np.zeros((counts.partition.count, len(tiles), both.shape[3]), np.int64)
    for t, tile in enumerate(tiles):
        for grp in tile.groups:
            mx[:, t] = np.maximum(mx[:, t], both[:, grp, tile.lo : tile.hi, :].max(axis=1))
    del g
    counts._both[key] = mx
    return mx


def _both_per_block(masks: LayerMasks, part: Partition) -> np.ndarray:
    """b_{k,j} for every block, group and output channel: dY (0/1) times the im2col of X (0/1)
    over the block's output rows."""
    g = masks.geometry
    ah, aw = axes_of(g)
    x = masks.x_nonzero.reshape(g.x_shape).to(torch.float32)
    dy = masks.dy_nonzero.reshape(g.y_shape).to(torch.float32)
    cgrs = g.c_per_group * g.r * g.s
    out = np.zeros((part.count, g.groups, g.k_per_group, cgrs), np.int64)
    unfold = torch.nn.Unfold((g.r, g.s), dilation=g.dilation, padding=0, stride=g.stride)
    with torch.no_grad():
        for n in range(g.n):
            lo_u, hi_u = n * g.p, (n + 1) * g.p
            pieces = [
                (j, max(lo, lo_u) - lo_u, min(hi, hi_u) - lo_u)
                for j, (lo, hi) in enumerate(zip(part.starts, part.stops, strict=True))
                if lo < hi_u and hi > lo_u
            ]
            if not pieces:
                continue
            xs = torch.from_numpy(to_full(x[n : n + 1].numpy(), ah, aw))
            cols = unfold(xs).reshape(g.groups, cgrs, g.p, g.q)
            d = dy[n].reshape(g.groups, g.k_per_group, g.p, g.q)
            for j, p0, p1 in pieces:
                c = cols[:, :, p0:p1, :].reshape(g.groups, cgrs, -1)
                dd = d[:, :, p0:p1, :].reshape(g.groups, g.k_per_group, -1)
                prod = torch.matmul(dd, c.transpose(-1, -2))
                rounded = prod.round()
                if not torch.equal(rounded, prod):  # 0/1 products summed over ≤ E entries: exact
                    raise RuntimeError(f"{masks.name}: inexact two-sided block count")
                out[j] += rounded.to(torch.int64).numpy()
    return out
