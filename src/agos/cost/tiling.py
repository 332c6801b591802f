"""Buffer tiling of one pass and its DRAM transfers (docs/cost-model.md §6).

A tile is (position block i, channel block j). Each tile holds its share of the stream tensor A
(with the halo rows its positions read), of the operand tensor B and of the output O; every tile
must fit the buffer share. Among candidate blockings in both loop orders, the one with the least
pass time wins — compute and exposed transfers together, the first load and the last store
included — not the one with the least traffic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from agos.cost.layout import Tile
from agos.errors import AgosError
from agos.workload.layer import LayerGeometry


@dataclass(frozen=True)
class PassTensors:
    """Stored bytes of the pass's tensors (§6) and the share rules of its rows and units."""

    pass_: str
    geometry: LayerGeometry
    a_bytes: int  # A: X (FWD, BWD-W) or dY (BWD-D)
    b_bytes: int  # B: W (FWD, BWD-D) or dY (BWD-W)
    o_bytes: int  # O: Y, dX or dW
    o_partial_bytes: int  # O at ab: partial sums held in the buffer
    rows: int  # position rows
    units: int  # stream units per group (U)
    partial_always: bool  # O sits in the buffer as partial sums even with one stream block (rows)


def _axis_reach(out: int, size: int, kernel: int, stride: int, pad: int, dil: int):
    @lru_cache(maxsize=None)
    def forward(lo: int, hi: int) -> int:
        """Input indices read by outputs [lo, hi)."""
        o = np.arange(lo, hi)[:, None]
        idx = o * stride + np.arange(kernel)[None, :] * dil - pad
        return int(np.unique(idx[(idx >= 0) & (idx < size)]).size)

    @lru_cache(maxsize=None)
    def backward(lo: int, hi: int) -> int:
        """Output indices whose taps reach inputs [lo, hi)."""
        o = np.arange(out)[:, None]
        idx = o * stride + np.arange(kernel)[None, :] * dil - pad
        hit = ((idx >= lo) & (idx < hi)).any(axis=1)
        return int(hit.sum())

    return forward, backward


def _per_image(lo: int, hi: int, per: int, reach) -> int:
    """Σ over the images a flat row range [lo, hi) touches of reach(rows within the image)."""
    total = 0
    for n in range(lo // per, (hi - 1) // per + 1):
        total += reach(max(lo, n * per) - n * per, min(hi, (n + 1) * per) - n * per)
    return total


class Shares:
    """A(i, j, k), B(j, k), O(i, j) of §6 for one pass, exactly (integer ceilings)."""

    def __init__(self, t: PassTensors, tiles: list[Tile]):
        self.t, self.tiles = t, tiles
        g = t.geometry
        self.ch_total = sum(tile.width for tile in tiles)
        self._fwd_rows, self._bwd_rows = _axis_reach(g.p, g.h, g.r, g.stride[0], g.padding[0], g.dilation[0])
        self._rows: dict[tuple[int, int], int] = {}
        self._unit_rows: dict[tuple[int, int], int] = {}

    def position_rows(self, lo: int, hi: int) -> int:
        """Rows of A the position rows [lo, hi) read (halos included)."""
        key = (lo, hi)
        if key not in self._rows:
            g = self.t.geometry
            if self.t.pass_ == "fwd":
                self._rows[key] = _per_image(lo, hi, g.p, self._fwd_rows)
            elif self.t.pass_ == "bwd_data":
                self._rows[key] = _per_image(lo, hi, g.h, self._bwd_rows)
            else:
                self._rows[key] = hi - lo
        return self._rows[key]

    def unit_rows(self, lo: int, hi: int) -> int:
        """BWD-W: input rows read by the output rows [lo, hi) of the batch."""
        key = (lo, hi)
        if key not in self._unit_rows:
            self._unit_rows[key] = _per_image(lo, hi, self.t.geometry.p, self._fwd_rows)
        return self._unit_rows[key]

    def channels(self, j_tiles: range) -> tuple[int, frozenset]:
        ch = sum(self.tiles[t].width for t in j_tiles)
        groups = frozenset(gr for t in j_tiles for gr in self.tiles[t].groups)
        return ch, groups

    def a(self, pos_rows: int, unit_lo: int, unit_hi: int, groups: int) -> int:
        g, t = self.t.geometry, self.t
        if t.pass_ == "fwd":
            num, den = pos_rows * (unit_hi - unit_lo), g.n * g.h * g.c_per_group
        elif t.pass_ == "bwd_data":
            num, den = pos_rows * (unit_hi - unit_lo), g.n * g.p * g.k_per_group
        else:
            num = pos_rows * self.unit_rows(unit_lo, unit_hi)
            den = g.c_per_group * g.n * g.h
        return -(-(num * groups * t.a_bytes) // (den * g.groups))

    def b(self, ch: int, unit_lo: int, unit_hi: int) -> int:
        return -(-(ch * (unit_hi - unit_lo) * self.t.b_bytes) // (self.ch_total * self.t.units))

    def o(self, lo: int, hi: int, ch: int, partial: bool = False) -> int:
        total = self.t.o_partial_bytes if partial else self.t.o_bytes
        return -(-((hi - lo) * ch * total) // (self.t.rows * self.ch_total))


def split(n: int, parts: int) -> list[tuple[int, int]]:
    return [(i * n // parts, (i + 1) * n // parts) for i in range(parts)]


@dataclass
class Plan:
    order: str
    a: int
    b: int
    sigma: int
    cycles: int
    tile_compute: list[int]
    dram_a: int
    dram_b: int
    dram_o: int
    exposed: int  # transfer cycles not hidden behind compute (prologue and epilogue included)
    overhead_tiles: int = 0  # buffer tiles that paid the per-tile overhead

    @property
    def dram_bytes(self) -> int:
        return self.dram_a + self.dram_b + self.dram_o

    @property
    def tiles(self) -> int:
        return len(self.tile_compute)


def _powers(limit: int) -> list[int]:
    out, v = [], 1
    while v < limit:
        out.append(v)
        v *= 2
    return [*out, limit]


def choose_tiling(
    t: PassTensors,
    tiles: list[Tile],
    capacity: int,
    dram_per_cycle: float,
    double_buffering: bool,
    sigma_cap: int,
    stream_ranges: Callable[[int], list[tuple[int, int]]],
    compute_for: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    where: str,
    tile_overhead: int = 0,
) -> Plan:
    """The fitting candidate of least pass time (§6). `stream_ranges(σ)` gives the unit range of
    each stream block; `compute_for(a, σ)` the compute cycles of every (channel tile, stream block,
    position block), and their dispatched items, each int64 [tiles, σ, a]; `tile_overhead` is paid
    once by every buffer tile with work (fill/drain overlapped across its folds)."""
    shares = Shares(t, tiles)
    n_tiles = len(tiles)
    cache: dict[tuple[int, int], np.ndarray] = {}
    best: Plan | None = None
    best_key = None
    for b in _powers(n_tiles):
        jblocks = [range(lo, hi) for lo, hi in split(n_tiles, b)]
        jinfo = [shares.channels(r) for r in jblocks]
        found = None
        for sigma in _powers(sigma_cap):
            ranges = stream_ranges(sigma)
            a = next((a for a in _powers(t.rows) if _fits(shares, a, jinfo, ranges, capacity)), None)
            if a is not None:
                found = (sigma, ranges, a)
                break
        if found is None:
            continue
        sigma, ranges, a = found
        if (a, sigma) not in cache:
            cache[(a, sigma)] = compute_for(a, sigma)
        per = cache[(a, sigma)]
        for order in ("channels", "positions"):
            plan = _evaluate(
                shares, order, a, b, sigma, jblocks, jinfo, ranges, per, dram_per_cycle, double_buffering,
                tile_overhead,
            )  # fmt: skip
            key = (plan.cycles, plan.dram_bytes, plan.tiles, 0 if order == "channels" else 1, b)
            if best_key is None or key < best_key:
                best, best_key = plan, key
    if best is None:
        raise AgosError(
            f"{where}: the buffer share of {capacity} bytes cannot hold one position row, one channel "
            "tile and one stream unit of this pass; enlarge memory.global_buffer_bytes"
        )
    return best


def _fits(shares: Shares, a: int, jinfo, ranges, capacity: int) -> bool:
    t = shares.t
    partial = t.partial_always or len(ranges) > 1
    blocks = split(t.rows, a)
    pos_rows = [shares.position_rows(lo, hi) for lo, hi in blocks]
    for ch, groups in jinfo:
        b_of = [shares.b(ch, u0, u1) for u0, u1 in ranges]
        for (lo, hi), pr in zip(blocks, pos_rows, strict=True):
            o = shares.o(lo, hi, ch, partial)
            for (u0, u1), b in zip(ranges, b_of, strict=True):
                if shares.a(pr, u0, u1, len(groups)) + b + o > capacity:
                    return False
    return True


def _evaluate(
    shares, order, a, b, sigma, jblocks, jinfo, ranges, per, dram_per_cycle, double_buffering, tile_overhead
) -> Plan:
    blocks = split(shares.t.rows, a)
    pos_rows = [shares.position_rows(lo, hi) for lo, hi in blocks]
    ks = range(len(ranges))
    if order == "channels":
        seq = [(i, j, k) for j in range(b) for i in range(a) for k in ks]
    else:
        seq = [(i, j, k) for i in range(a) for j in range(b) for k in ks]
    last_k = len(ranges) - 1
    compute, items = per
    cuts = [r.start for r in jblocks]
    per_j = np.add.reduceat(compute, cuts, axis=0)  # [b, σ, a]
    per_j = per_j + tile_overhead * (np.add.reduceat(items, cuts, axis=0) > 0)
    loads, outs, computes = [], [], []
    da = db = do = 0
    prev = None
    for i, j, k in seq:
        lo, hi = blocks[i]
        ch, groups = jinfo[j]
        u0, u1 = ranges[k]
        load = 0
        if prev is None or (prev[0], prev[2], prev[3]) != (i, k, groups):
            x = shares.a(pos_rows[i], u0, u1, len(groups))
            load += x
            da += x
        if prev is None or (prev[1], prev[2]) != (j, k):
            x = shares.b(ch, u0, u1)
            load += x
            db += x
        out = shares.o(lo, hi, ch) if k == last_k else 0
        do += out
        loads.append(load)
        outs.append(out)
        computes.append(int(per_j[j, k, i]))
        prev = (i, j, k, groups)

    def cyc(nbytes: int) -> int:
        return int(np.ceil(nbytes / dram_per_cycle)) if nbytes else 0

    n = len(seq)
    if double_buffering:
        total = cyc(loads[0]) + cyc(outs[-1])
        for m in range(n):
            nxt = loads[m + 1] if m + 1 < n else 0
            prv = outs[m - 1] if m > 0 else 0
            total += max(computes[m], cyc(nxt + prv))
    else:
        total = sum(cyc(loads[m]) + computes[m] + cyc(outs[m]) for m in range(n))
    busy_tiles = int((np.add.reduceat(items, cuts, axis=0) > 0).sum()) if tile_overhead else 0
    return Plan(order, a, b, sigma, int(total), computes, da, db, do, int(total - sum(computes)), busy_tiles)
