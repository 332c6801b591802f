"""Buffer tiling of one pass and its DRAM transfers (docs/cost-model.md §6).

A tile is (position block i, channel block j). Each tile holds its share of the stream tensor A
(with the halo rows its positions read), of the operand tensor B and of the output O; every tile
must fit the buffer share. Among candidate blockings in both loop orders, the one with the least
pass time wins — compute and exposed transfers together, the first load and the last store
included — not the one with the least traffic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from functools import cache

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
    @cache
    def forward(lo: int, hi: int) -> int:
        """Input indices read by outputs [lo, hi)."""
        o = np.arange(lo, hi)[:, None]
        idx = o * stride + np.arange(kernel)[None, :] * dil - pad
        return int(np.unique(idx[(idx >= 0) & (idx < size)]).size)

    @cache
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
        self._block_rows: dict[int, list[int]] = {}
        self._grids: dict[tuple, _Grid] = {}

    def block_rows(self, a: int) -> list[int]:
        if a not in self._block_rows:
            fast = self._vector_rows(a)
            self._block_rows[a] = (
                fast if fast is not None else [self.position_rows(lo, hi) for lo, hi in split(self.t.rows, a)]
            )
        return self._block_rows[a]

    def _vector_rows(self, a: int) -> list[int] | None:
        """`position_rows` of every block at once, for undilated kernels (each output row reads, and
        each input row is reached by, an interval): the exact same counts, without a Python loop."""
        t, g = self.t, self.t.geometry
        if t.pass_ == "bwd_weight":
            return [hi - lo for lo, hi in split(t.rows, a)]
        if g.dilation[0] != 1:
            return None
        s, r, pad = g.stride[0], g.r, g.padding[0]
        per = g.p if t.pass_ == "fwd" else g.h
        lo = np.array([x for x, _ in split(t.rows, a)], np.int64)
        hi = np.array([y for _, y in split(t.rows, a)], np.int64)
        n0, n1 = lo // per, (hi - 1) // per
        if t.pass_ == "fwd":
            size = g.h

            def one(p0, p1):  # input rows read by output rows [p0, p1) of one image
                if s <= r:
                    first = np.maximum(0, p0 * s - pad)
                    last = np.minimum(size - 1, (p1 - 1) * s - pad + r - 1)
                    return np.maximum(0, last - first + 1)
                ps = np.arange(g.p)
                rows = np.minimum(size - 1, ps * s - pad + r - 1) - np.maximum(0, ps * s - pad) + 1
                prefix = np.concatenate([[0], np.cumsum(np.maximum(0, rows))])
                return prefix[p1] - prefix[p0]
        else:
            size = g.p

            def one(h0, h1):  # dY rows whose taps reach input rows [h0, h1) of one image
                first = np.maximum(0, -(-(h0 - r + 1 + pad) // s))
                last = np.minimum(size - 1, (h1 - 1 + pad) // s)
                return np.maximum(0, last - first + 1)

        single = n0 == n1
        head = one(lo - n0 * per, np.where(single, hi - n0 * per, per))
        tail = np.where(single, 0, one(np.zeros_like(lo), hi - n1 * per))
        full = one(np.zeros(1, np.int64), np.full(1, per))[0]
        middle = np.maximum(0, n1 - n0 - 1) * full
        return [int(v) for v in head + tail + middle]

    def grid(self, a: int, jinfo, ranges) -> _Grid:
        key = (a, tuple(c for c, _ in jinfo), tuple(ranges))
        if key not in self._grids:
            self._grids[key] = _Grid(self, a, jinfo, ranges)
        return self._grids[key]

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



@lru_cache(maxsize=4096)
def split(n: int, parts: int) -> tuple[tuple[int, int], ...]:
    return tuple((i * n // parts, (i + 1) * n // parts) for i in range(parts))


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
            if not _fits(shares, t.rows, jinfo, ranges, capacity):
                continue  # not even one position row per tile fits with these stream blocks
            # position blocks of powers of two nest, so fitting is monotone in a: bisect
            options = _powers(t.rows)
            lo, hi = 0, len(options) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if _fits(shares, options[mid], jinfo, ranges, capacity):
                    hi = mid
                else:
                    lo = mid + 1
            found = (sigma, ranges, options[lo])
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


def _ceil(num, den):
    return -(-num // den)


def _int_array(values, exact: bool) -> np.ndarray:
    """int64, or Python integers (`exact`) when products could reach 2^62."""
    return np.array(values, dtype=object if exact else np.int64)


class _Grid:
    """Byte shares of every tile (i, j, k) of one (a, b, σ) as arrays: A [a, K, b], B [K, b],
    O and O' [a, b] (exact integers: object arrays of Python ints)."""

    def __init__(self, shares: Shares, a: int, jinfo, ranges):
        t = shares.t
        g = t.geometry
        blocks = split(t.rows, a)
        self.blocks = blocks
        rows_read = shares.block_rows(a)
        if t.pass_ == "bwd_weight":
            unit_f = [shares.unit_rows(u0, u1) for u0, u1 in ranges]
        else:
            unit_f = [u1 - u0 for u0, u1 in ranges]
        limit = 2**62  # every numerator below stays under it in int64, or Python integers are used
        exact = (
            max(rows_read) * max(unit_f) * g.groups * t.a_bytes >= limit
            or shares.ch_total * max(t.units, 1) * t.b_bytes >= limit
            or t.rows * shares.ch_total * max(t.o_bytes, t.o_partial_bytes) >= limit
        )
        pos_rows = _int_array(rows_read, exact)  # [a]
        span = _int_array([hi - lo for lo, hi in blocks], exact)
        ch = _int_array([c for c, _ in jinfo], exact)  # [b]
        groups = _int_array([len(gr) for _, gr in jinfo], exact)
        unit_len = _int_array([u1 - u0 for u0, u1 in ranges], exact)  # [K]
        if t.pass_ == "fwd":
            num_k, den = unit_len, g.n * g.h * g.c_per_group
        elif t.pass_ == "bwd_data":
            num_k, den = unit_len, g.n * g.p * g.k_per_group
        else:
            num_k = _int_array(unit_f, exact)
            den = g.c_per_group * g.n * g.h
        self.a = _ceil(pos_rows[:, None, None] * num_k[None, :, None] * groups[None, None, :] * t.a_bytes, den * g.groups)
        self.b = _ceil(ch[None, :] * unit_len[:, None] * t.b_bytes, shares.ch_total * t.units)
        partial = t.partial_always or len(ranges) > 1
        o_den = t.rows * shares.ch_total
        self.o = _ceil(span[:, None] * ch[None, :] * t.o_bytes, o_den)
        self.o_fit = _ceil(span[:, None] * ch[None, :] * (t.o_partial_bytes if partial else t.o_bytes), o_den)
        ids: dict[frozenset, int] = {}
        self.group_id = np.array([ids.setdefault(gr, len(ids)) for _, gr in jinfo])

    def fits(self, capacity: int) -> bool:
        total = self.a + self.b[None, :, :] + self.o_fit[:, None, :]
        return bool((total <= capacity).all())


def _fits(shares: Shares, a: int, jinfo, ranges, capacity: int) -> bool:
    return shares.grid(a, jinfo, ranges).fits(capacity)


def _evaluate(
    shares, order, a, b, sigma, jblocks, jinfo, ranges, per, dram_per_cycle, double_buffering, tile_overhead
) -> Plan:
    grid = shares.grid(a, jinfo, ranges)
    kn = len(ranges)
    ii, jj, kk = np.meshgrid(np.arange(a), np.arange(b), np.arange(kn), indexing="ij")
    if order == "channels":  # for j: for i: for k
        ii, jj, kk = (x.transpose(1, 0, 2).reshape(-1) for x in (ii, jj, kk))
    else:  # for i: for j: for k
        ii, jj, kk = (x.reshape(-1) for x in (ii, jj, kk))
    gid = grid.group_id[jj]
    first = np.zeros(ii.size, bool)
    first[0] = True
    new_a = first.copy()
    new_b = first.copy()
    new_a[1:] = (ii[1:] != ii[:-1]) | (kk[1:] != kk[:-1]) | (gid[1:] != gid[:-1])
    new_b[1:] = (jj[1:] != jj[:-1]) | (kk[1:] != kk[:-1])
    a_load = np.where(new_a, grid.a[ii, kk, jj], 0)
    b_load = np.where(new_b, grid.b[kk, jj], 0)
    outs = np.where(kk == kn - 1, grid.o[ii, jj], 0)
    compute, items = per
    cuts = [r.start for r in jblocks]
    per_j = np.add.reduceat(compute, cuts, axis=0)  # [b, σ, a]
    busy_j = np.add.reduceat(items, cuts, axis=0) > 0
    computes = (per_j + tile_overhead * busy_j)[jj, kk, ii].astype(np.int64)
    loads = a_load + b_load

    def cyc(nbytes):
        return np.ceil(np.asarray(nbytes, dtype=np.float64) / dram_per_cycle).astype(np.int64)

    if double_buffering:
        nxt = np.append(loads[1:], 0)
        prv = np.insert(outs[:-1], 0, 0)
        total = int(cyc(loads[0])) + int(cyc(outs[-1])) + int(np.maximum(computes, cyc(nxt + prv)).sum())
    else:
        total = int((cyc(loads) + computes + cyc(outs)).sum())
    busy_tiles = int(busy_j.sum()) if tile_overhead else 0
    return Plan(
        order, a, b, sigma, total, [int(c) for c in computes], int(a_load.sum()), int(b_load.sum()),
        int(outs.sum()), total - int(computes.sum()), busy_tiles,
    )  # fmt: skip
