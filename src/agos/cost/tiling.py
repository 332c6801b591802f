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
from itertools import pairwise

import numba
import numpy as np

from agos.cost.layout import Tile
from agos.errors import AgosError
from agos.workload.layer import LayerGeometry
from agos.workload.passes import mapping, tensor_shape


@dataclass(frozen=True)
class PassTensors:
    """Stored bytes of the pass's tensors (§6) and the share rules of its rows and units."""

    pass_: str
    geometry: LayerGeometry
    a_bytes: int  # A: the rows' shared stream (workload.passes): X (FWD, BWD-W) or dY (BWD-D)
    b_bytes: int  # B: the PEs' own operand: W (FWD, BWD-D) or dY (BWD-W)
    o_bytes: int  # O: the output, Y, dX or dW
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
    """A(i, j, k), B(j, k), O(i, j) of §6 for one pass, exactly (integer ceilings). What depends
    only on the layer's pass (position blocks, stream blocks) or only on the channel tiles (channel
    blocks) is kept in `shared`, when given, for every design of the layer that has the same."""

    def __init__(self, t: PassTensors, tiles: list[Tile], shared: dict | None = None):
        self.t, self.tiles = t, tiles
        g = t.geometry
        self.ch_total = sum(tile.width for tile in tiles)
        shared = {} if shared is None else shared
        rows_key = ("rows", t.pass_, g, t.rows)
        if rows_key not in shared:
            shared[rows_key] = _Rows(t.pass_, g, t.rows)
        self.rows: _Rows = shared[rows_key]
        cols_key = ("columns", tuple(tiles))
        if cols_key not in shared:
            shared[cols_key] = _ColumnBlocks(tiles)
        self._columns: _ColumnBlocks = shared[cols_key]
        self._grids: dict[tuple, _Grid] = {}
        a_n, a_ch, a_height, _ = tensor_shape(g, mapping(t.pass_).stream)  # A's rows, per channel of a group
        self.a_den = a_n * a_height * (a_ch // g.groups) * g.groups
        self.b_den = self.ch_total * t.units
        self.o_den = t.rows * self.ch_total

    def block_rows(self, a: int) -> np.ndarray:
        """Rows of A each of the `a` position blocks reads (halos included), int64 [a]."""
        return self.rows.block_rows(a)

    def columns(self, b: int) -> _Columns:
        """The b channel blocks: ranges of the tile list, their channels and groups."""
        return self._columns.of(b)

    def stream(self, sigma: int, ranges: list[tuple[int, int]]) -> _Stream:
        """The σ stream blocks: their units, and (BWD-W) the input rows their output rows read."""
        return self.rows.stream(sigma, ranges)

    def grid(self, a: int, cols: _Columns, stream: _Stream) -> _Grid:
        key = (a, cols.b, stream.key)
        if key not in self._grids:
            self._grids[key] = _Grid(self, a, cols, stream)
        return self._grids[key]

    def fits(self, a: int, cols: _Columns, stream: _Stream, capacity: int) -> bool:
        """Whether every tile (i, j, k) of the blocking holds A + B + O' ≤ capacity. Each share grows
        with its block's attributes (rows read and position rows; reach and units; groups and
        channels), so the largest tile is among the blocks no other block dominates on both: the
        check runs over those frontiers only, in Python integers (exact at any size)."""
        t = self.t
        o_fit = t.o_partial_bytes if t.partial_always or len(stream.ranges) > 1 else t.o_bytes
        for rows_read, span in self.rows.position_front(a):
            a_num = rows_read * t.a_bytes
            o_num = span * o_fit
            for reach, units_ in stream.front:
                b_num = units_ * t.b_bytes
                for groups, ch in cols.front:
                    total = (
                        -(-(a_num * reach * groups) // self.a_den)
                        + -(-(ch * b_num) // self.b_den)
                        + -(-(o_num * ch) // self.o_den)
                    )
                    if total > capacity:
                        return False
        return True


class _Rows:
    """The position blocks and stream blocks of one pass of a layer: the rows of A each reads."""

    def __init__(self, pass_: str, g: LayerGeometry, rows: int):
        self.pass_, self.geometry, self.rows = pass_, g, rows
        self.form = mapping(pass_).stream_sum
        self._fwd_rows, self._bwd_rows = _axis_reach(g.p, g.h, g.r, g.stride[0], g.padding[0], g.dilation[0])
        self._rows: dict[tuple[int, int], int] = {}
        self._unit_rows: dict[tuple[int, int], int] = {}
        self._block_rows: dict[int, np.ndarray] = {}
        self._front: dict[int, list[tuple[int, int]]] = {}
        self._streams: dict[tuple, _Stream] = {}

    def block_rows(self, a: int) -> np.ndarray:
        """Rows of A each of the `a` position blocks reads (halos included), int64 [a]."""
        if a not in self._block_rows:
            fast = self._vector_rows(a)
            self._block_rows[a] = (
                fast
                if fast is not None
                else np.array([self.position_rows(lo, hi) for lo, hi in split(self.rows, a)], np.int64)
            )
        return self._block_rows[a]

    def position_front(self, a: int) -> list[tuple[int, int]]:
        """(rows of A read, position rows) of the position blocks of `a` no other block dominates."""
        if a not in self._front:
            lo, hi = bounds(self.rows, a)
            self._front[a] = _frontier(self.block_rows(a), hi - lo)
        return self._front[a]

    def _vector_rows(self, a: int) -> np.ndarray | None:
        """`position_rows` of every block at once, for undilated kernels (each output row reads, and
        each input row is reached by, an interval): the exact same counts, without a Python loop."""
        g, form = self.geometry, self.form
        lo, hi = bounds(self.rows, a)
        if form == "taps":  # a position row (c) reads its own channel of A
            return hi - lo
        if g.dilation[0] != 1:
            return None
        s, r, pad = g.stride[0], g.r, g.padding[0]
        per = g.p if form == "box" else g.h  # position rows per image
        n0, n1 = lo // per, (hi - 1) // per
        if form == "box":
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
        return (head + tail + middle).astype(np.int64)

    def position_rows(self, lo: int, hi: int) -> int:
        """Rows of A the position rows [lo, hi) read (halos included)."""
        key = (lo, hi)
        if key not in self._rows:
            g, form = self.geometry, self.form
            if form == "box":  # output rows read the input rows their taps land on
                self._rows[key] = _per_image(lo, hi, g.p, self._fwd_rows)
            elif form == "scatter":  # input rows are reached by the dY rows whose taps land on them
                self._rows[key] = _per_image(lo, hi, g.h, self._bwd_rows)
            else:
                self._rows[key] = hi - lo
        return self._rows[key]

    def unit_rows(self, lo: int, hi: int) -> int:
        """BWD-W: input rows read by the output rows [lo, hi) of the batch."""
        key = (lo, hi)
        if key not in self._unit_rows:
            self._unit_rows[key] = _per_image(lo, hi, self.geometry.p, self._fwd_rows)
        return self._unit_rows[key]

    def stream(self, sigma: int, ranges: list[tuple[int, int]]) -> _Stream:
        """The σ stream blocks: their units, and (BWD-W) the input rows their output rows read."""
        key = (sigma, tuple(ranges))
        if key not in self._streams:
            units_ = [u1 - u0 for u0, u1 in ranges]
            by_rows = self.form == "taps"  # units are output rows: A rows via their taps
            reach = [self.unit_rows(u0, u1) for u0, u1 in ranges] if by_rows else units_
            front = _frontier(np.array(reach, np.int64), np.array(units_, np.int64))
            self._streams[key] = _Stream(sigma, ranges, units_, reach, key, front)
        return self._streams[key]


class _ColumnBlocks:
    """The channel blocks of one list of channel tiles, for each b."""

    def __init__(self, tiles: list[Tile]):
        self.tiles = tiles
        self._of: dict[int, _Columns] = {}

    def of(self, b: int) -> _Columns:
        if b not in self._of:
            starts = [lo for lo, _ in split(len(self.tiles), b)] + [len(self.tiles)]
            ch, groups = [], []
            for lo, hi in pairwise(starts):
                ch.append(sum(self.tiles[t].width for t in range(lo, hi)))
                groups.append(frozenset(gr for t in range(lo, hi) for gr in self.tiles[t].groups))
            ids: dict[frozenset, int] = {}
            group_id = np.array([ids.setdefault(gr, len(ids)) for gr in groups], np.int64)
            count = [len(gr) for gr in groups]
            front = _frontier(np.array(count, np.int64), np.array(ch, np.int64))
            self._of[b] = _Columns(b, np.array(starts, np.int64), ch, count, group_id, front)
        return self._of[b]


def _frontier(x: np.ndarray, y: np.ndarray) -> list[tuple[int, int]]:
    """The (x, y) pairs no other pair dominates (x' ≥ x and y' ≥ y), each once, as Python integers:
    a share that grows with both attributes is largest on one of them."""
    order = np.lexsort((-y, -x))  # x descending, then y descending
    ys = y[order]
    before = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], ys[:-1]]))
    keep = order[ys > before]  # a larger y than every pair of at least its x
    return [(int(x[i]), int(y[i])) for i in keep]


@dataclass(frozen=True)
class _Columns:
    """Channel blocks of one b: block j is channel tiles [starts[j], starts[j + 1])."""

    b: int
    starts: np.ndarray  # int64 [b + 1]
    ch: list[int]  # channels of each block
    groups: list[int]  # groups each block touches
    group_id: np.ndarray  # blocks with the same set of groups share an id (A is reused between them)
    front: list[tuple[int, int]]  # (groups, channels) of the blocks no other block dominates


@dataclass(frozen=True)
class _Stream:
    """Stream blocks of one σ: unit ranges, units, and the units' share numerator of A."""

    sigma: int
    ranges: list[tuple[int, int]]
    units: list[int]
    reach: list[int]  # BWD-W: input rows read by the block's output rows; else its units
    key: tuple  # (σ, the unit ranges): what the blocks are
    front: list[tuple[int, int]]  # (reach, units) of the blocks no other block dominates


@lru_cache(maxsize=4096)
def split(n: int, parts: int) -> tuple[tuple[int, int], ...]:
    return tuple((i * n // parts, (i + 1) * n // parts) for i in range(parts))


def bounds(n: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    """`split` as int64 arrays (lo, hi), for blockings into many parts."""
    edges = np.arange(parts + 1, dtype=np.int64) * n // parts
    return edges[:-1], edges[1:]


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
    shared: dict | None = None,
    extra: tuple[int, int, int] | None = None,
) -> Plan:
    """The fitting candidate of least pass time (§6). `stream_ranges(σ)` gives the unit range of
    each stream block; `compute_for(a, σ)` the compute cycles of every (channel tile, stream block,
    position block), and their dispatched items, each int64 [tiles, σ, a]; `tile_overhead` is paid
    once by every buffer tile with work (fill/drain overlapped across its folds). `shared` keeps
    the byte shares of each (pass tensors, channel tiles), and their position, stream and channel
    blocks, for the next design of the layer that has the same (they depend on nothing else).
    `extra` is one more candidate (a, b, σ), tried when it fits: a skipping design's dense twin's
    tiling."""
    shares = _shares(t, tiles, shared)
    ranges: dict[int, list[tuple[int, int]]] = {}
    found: list[tuple[int, _Columns, _Stream, int]] = []
    for b in _powers(len(tiles)):
        cols = shares.columns(b)
        for sigma in _powers(sigma_cap):
            if sigma not in ranges:
                ranges[sigma] = stream_ranges(sigma)
            stream = shares.stream(sigma, ranges[sigma])
            if not shares.fits(t.rows, cols, stream, capacity):
                continue  # not even one position row per tile fits with these stream blocks
            # position blocks of powers of two nest, so fitting is monotone in a: bisect
            options = _powers(t.rows)
            lo, hi = 0, len(options) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if shares.fits(options[mid], cols, stream, capacity):
                    hi = mid
                else:
                    lo = mid + 1
            found.append((b, cols, stream, options[lo]))
            break
    if extra is not None:
        a, b, sigma = extra
        if b <= len(tiles) and sigma <= sigma_cap and a <= t.rows:
            if sigma not in ranges:
                ranges[sigma] = stream_ranges(sigma)
            cols, stream = shares.columns(b), shares.stream(sigma, ranges[sigma])
            if shares.fits(a, cols, stream, capacity):
                found.append((b, cols, stream, a))
    if not found:
        raise AgosError(
            f"{where}: the buffer share of {capacity} bytes cannot hold one position row, one channel "
            "tile and one stream unit of this pass; enlarge memory.global_buffer_bytes"
        )
    best: Plan | None = None
    best_key = None
    computed: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for b, cols, stream, a in found:
        if (a, stream.sigma) not in computed:
            computed[(a, stream.sigma)] = compute_for(a, stream.sigma)
        compute, items = computed[(a, stream.sigma)]
        grid = shares.grid(a, cols, stream)
        for order in ("channels", "positions"):
            plan = _evaluate(
                grid, order, cols, stream.sigma, compute, items, dram_per_cycle, double_buffering,
                tile_overhead,
            )  # fmt: skip
            key = (plan.cycles, plan.dram_bytes, plan.tiles, 0 if order == "channels" else 1, b)
            if best_key is None or key < best_key:
                best, best_key = plan, key
    assert best is not None
    return best


def _shares(t: PassTensors, tiles: list[Tile], shared: dict | None) -> Shares:
    if shared is None:
        return Shares(t, tiles)
    key = ("shares", t, tuple(tiles))
    if key not in shared:
        shared[key] = Shares(t, tiles, shared)
    return shared[key]


def _ceil(num, den):
    return -(-num // den)


class _Grid:
    """Byte shares of every tile (i, j, k) of one (a, b, σ) as arrays: A [a, K, b], B [K, b],
    O [a, b]. The numerators are products that could reach 2^63 on huge layers: then they are
    taken in Python integers (object arrays); the shares themselves fit int64."""

    def __init__(self, shares: Shares, a: int, cols: _Columns, stream: _Stream):
        t = shares.t
        g = t.geometry
        self.a_count = a
        rows_read = shares.block_rows(a)
        lo, hi = bounds(t.rows, a)
        limit = 2**62  # every numerator below stays under it in int64, or Python integers are used
        exact = (
            int(rows_read.max()) * max(stream.reach) * g.groups * t.a_bytes >= limit
            or shares.ch_total * max(t.units, 1) * t.b_bytes >= limit
            or t.rows * shares.ch_total * max(t.o_bytes, t.o_partial_bytes) >= limit
        )
        self.group_id = cols.group_id
        if not exact:
            self.a, self.b, self.o = _share_arrays(
                rows_read, hi - lo, np.array(stream.reach, np.int64), np.array(stream.units, np.int64),
                np.array(cols.ch, np.int64), np.array(cols.groups, np.int64), t.a_bytes, shares.a_den,
                t.b_bytes, shares.b_den, t.o_bytes, shares.o_den,
            )  # fmt: skip
            return
        kind = object
        pos_rows = rows_read.astype(kind)  # [a]
        span = (hi - lo).astype(kind)
        ch = np.array(cols.ch, kind)  # [b]
        groups = np.array(cols.groups, kind)
        unit_len = np.array(stream.units, kind)  # [K]
        num_k = np.array(stream.reach, kind)
        a_num = pos_rows[:, None, None] * num_k[None, :, None] * groups[None, None, :] * t.a_bytes
        self.a = _ceil(a_num, shares.a_den).astype(np.int64)
        self.b = _ceil(ch[None, :] * unit_len[:, None] * t.b_bytes, shares.b_den).astype(np.int64)
        self.o = _ceil(span[:, None] * ch[None, :] * t.o_bytes, shares.o_den).astype(np.int64)


@numba.njit(cache=True)
def _share_arrays(rows_read, span, reach, units, ch, groups, a_bytes, a_den, b_bytes, b_den, o_bytes, o_den):
    """_Grid's shares in int64 (every numerator under 2^62): A [a, K, b], B [K, b], O [a, b]."""
    a, kn, b = rows_read.size, reach.size, ch.size
    a_share = np.empty((a, kn, b), np.int64)
    b_share = np.empty((kn, b), np.int64)
    o_share = np.empty((a, b), np.int64)
    for i in range(a):
        for k in range(kn):
            for j in range(b):
                a_share[i, k, j] = -(-(rows_read[i] * reach[k] * groups[j] * a_bytes) // a_den)
        for j in range(b):
            o_share[i, j] = -(-(span[i] * ch[j] * o_bytes) // o_den)
    for k in range(kn):
        for j in range(b):
            b_share[k, j] = -(-(ch[j] * units[k] * b_bytes) // b_den)
    return a_share, b_share, o_share


@numba.njit(cache=True)
def _pass_time(
    channels_first, a_share, b_share, o_share, group_id, starts, compute, items, overhead, dpc, double
):
    """§6's pass time of one tiling in one loop order (`channels_first`: for j: for i: for k,
    else for i: for j: for k). A tile loads A unless the previous one had the same i, k and
    groups, B unless it had the same j and k, and writes O after its last stream block; its
    compute is that of its channel block's tiles (`compute` [tiles, σ, a], block j being tiles
    [starts[j], starts[j + 1])), + `overhead` when they dispatch anything. Returns the pass time,
    the tiles' compute, the A, B and O bytes and the tiles that paid the overhead."""
    a, kn, b = a_share.shape
    n = a * b * kn
    tile_compute = np.zeros(n, np.int64)
    loads = np.zeros(n, np.int64)
    outs = np.zeros(n, np.int64)
    a_bytes = 0
    b_bytes = 0
    busy_tiles = 0
    t = 0
    pi, pj, pk = -1, -1, -1
    for outer in range(b if channels_first else a):
        for inner in range(a if channels_first else b):
            i, j = (inner, outer) if channels_first else (outer, inner)
            for k in range(kn):
                if t == 0 or i != pi or k != pk or group_id[j] != group_id[pj]:
                    loads[t] += a_share[i, k, j]
                    a_bytes += a_share[i, k, j]
                if t == 0 or j != pj or k != pk:
                    loads[t] += b_share[k, j]
                    b_bytes += b_share[k, j]
                if k == kn - 1:
                    outs[t] = o_share[i, j]
                work = 0
                dispatched = 0
                for tile in range(starts[j], starts[j + 1]):
                    work += compute[tile, k, i]
                    dispatched += items[tile, k, i]
                if dispatched > 0:
                    work += overhead
                    busy_tiles += 1
                tile_compute[t] = work
                pi, pj, pk = i, j, k
                t += 1
    total = 0
    if double:
        total = np.int64(np.ceil(loads[0] / dpc)) + np.int64(np.ceil(outs[n - 1] / dpc))
        for t in range(n):
            nxt = loads[t + 1] if t + 1 < n else 0
            prv = outs[t - 1] if t > 0 else 0
            total += max(tile_compute[t], np.int64(np.ceil((nxt + prv) / dpc)))
    else:
        for t in range(n):
            total += np.int64(np.ceil(loads[t] / dpc)) + tile_compute[t] + np.int64(np.ceil(outs[t] / dpc))
    return total, tile_compute, a_bytes, b_bytes, outs.sum(), busy_tiles


def _evaluate(
    grid: _Grid, order, cols: _Columns, sigma, compute, items, dram_per_cycle, double_buffering, tile_overhead
) -> Plan:
    total, tile_compute, a_bytes, b_bytes, o_bytes, busy_tiles = _pass_time(
        order == "channels", grid.a, grid.b, grid.o,
        grid.group_id, cols.starts, compute, items, tile_overhead, dram_per_cycle, double_buffering,
    )  # fmt: skip
    return Plan(
        order, grid.a_count, cols.b, sigma, int(total), tile_compute.tolist(), int(a_bytes), int(b_bytes),
        int(o_bytes), int(total) - int(tile_compute.sum()), int(busy_tiles) if tile_overhead else 0,
    )  # fmt: skip
