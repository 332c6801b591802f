"""docs/cost-model.md §6: buffer tiling, the loop order, DRAM transfers and the pass time.

A tile is (position block i, channel block j, stream block k). The candidates are enumerated as
the spec lists them, each candidate's tiles are computed on the array (`array.lockstep_tile`,
`array.rows_tile`, stepped), and the candidate of least pass time wins (then least DRAM bytes,
fewer tiles, `channels` before `positions`, smaller b).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from agos.reference.array import Tally
from agos.reference.mapping import ChannelTile, PassMapping, ReferenceModelError, ceil_div, split


@dataclass
class BufferTile:
    i: int
    j: int
    k: int
    rows: range  # its position rows
    tiles: list[ChannelTile]  # its channel tiles (a contiguous range of the tile list)
    groups: frozenset[int]
    units: range  # its stream block, as stream units
    chunks: range  # rows: the chunks of its stream block
    A: int  # bytes of its stream-tensor share
    B: int  # bytes of its operand-tensor share
    O: int  # bytes of its output share (written after its last stream block)  # noqa: E741
    O_fit: int  # the output share as it sits in the buffer (partial sums at ab on rows or σ > 1)


@dataclass
class Plan:
    a: int
    b: int
    sigma: int
    order: str
    sequence: list[BufferTile]  # in loop order
    tallies: list[Tally]
    time: int
    dram_a: int
    dram_b: int
    dram_o: int

    @property
    def dram(self) -> int:
        return self.dram_a + self.dram_b + self.dram_o


def doubling(limit: int) -> list[int]:
    """{1, 2, 4, …} below `limit`, then `limit`."""
    out, v = [], 1
    while v < limit:
        out.append(v)
        v *= 2
    return [*out, limit]


class Tensors:
    """The stored bytes of A, B and O of one pass, and the element count of O (§6)."""

    def __init__(self, mp: PassMapping):
        g, arch = mp.geometry, mp.arch
        vb, ab = mp.vb, mp.ab
        st = arch.storage

        def count(bits) -> int:
            return sum(1 for a in bits for b in a for c in b for v in c if v)

        def stored(numel: int, nonzero: int, mode: str) -> int:
            return nonzero * vb + ceil_div(numel, 8) if mode == "compressed" else numel * vb

        x_numel = g.n * g.c * g.h * g.w
        y_numel = g.n * g.k * g.p * g.q
        w_numel = g.k * g.c_per_group * g.r * g.s
        if mp.pass_ == "fwd":
            self.A = stored(x_numel, count(mp.x), st.activations)
            self.B = w_numel * vb
            self.O, self.O_ab = y_numel * vb, y_numel * ab
            self.channels = g.k
        elif mp.pass_ == "bwd_data":
            self.A = stored(y_numel, count(mp.dy), st.gradients)
            self.B = w_numel * vb
            elements = x_numel
            if mp.opts.outputs != "none" and st.data_gradients == "compressed":
                elements = count(mp.needed)  # the ReLU bitmap is the mask: needed values only
            self.O, self.O_ab = elements * vb, elements * ab
            self.channels = g.c
        else:
            self.A = stored(x_numel, count(mp.x), st.activations)
            self.B = stored(y_numel, count(mp.dy), st.gradients)
            self.O = self.O_ab = w_numel * ab
            self.channels = g.k


def input_rows_read(mp: PassMapping, out_rows) -> int:
    """|{(n, h) : ∃ p with (n, p) in out_rows, r: h = p·S_h + r·D_h − pad_h, 0 ≤ h < H}| (halos)."""
    g = mp.geometry
    (sh, _), (ph, _), (dh, _) = g.stride, g.padding, g.dilation
    reached = set()
    for row in out_rows:
        n, p = divmod(row, g.p)
        for r in range(g.r):
            h = p * sh + r * dh - ph
            if 0 <= h < g.h:
                reached.add((n, h))
    return len(reached)


def dy_rows_reaching(mp: PassMapping, in_rows) -> int:
    """|{(n, p) : ∃ h with (n, h) in in_rows, r: h = p·S_h + r·D_h − pad_h, 0 ≤ p < P}|."""
    g = mp.geometry
    (sh, _), (ph, _), (dh, _) = g.stride, g.padding, g.dilation
    reached = set()
    for row in in_rows:
        n, h = divmod(row, g.h)
        for r in range(g.r):
            num = h + ph - r * dh
            if num % sh == 0 and 0 <= num // sh < g.p:
                reached.add((n, num // sh))
    return len(reached)


def a_share(mp: PassMapping, rows: range, units: range) -> tuple[int, int]:
    """The share of the stream tensor a (position block, stream block) reads, before the groups,
    as (numerator, denominator)."""
    g = mp.geometry
    key = ("a_share", rows.start, rows.stop, units.start, units.stop)
    if key not in mp.memo:
        if mp.pass_ == "fwd":  # input rows read by the block's output rows, × the block's channels
            share = (input_rows_read(mp, rows) * len(units), g.n * g.h * mp.Cg)
        elif mp.pass_ == "bwd_data":  # dY rows reaching the block's input rows, × its out-channels
            share = (dy_rows_reaching(mp, rows) * len(units), g.n * g.p * mp.Kg)
        else:  # BWD-W: the block's channels, × the input rows its unit rows (n, p) read
            share = (len(rows) * input_rows_read(mp, units), mp.Cg * g.n * g.h)
        mp.memo[key] = share
    return mp.memo[key]


def stream_blocks(mp: PassMapping, sigma: int) -> tuple[list[range], list[range]]:
    """The σ stream blocks, as (unit ranges, chunk ranges). `systolic`: [k·⌈U/σ⌉, (k+1)·⌈U/σ⌉)
    (clipped to U; empty trailing blocks dropped); `rows`: runs of ⌈J/σ⌉ chunks."""
    if not mp.rows:
        size = ceil_div(mp.units, sigma)
        units = [range(k * size, min(mp.units, (k + 1) * size)) for k in range(sigma) if k * size < mp.units]
        return units, [range(0) for _ in units]
    chunk_units = mp.chunk_units()
    J = len(chunk_units)
    size = ceil_div(J, sigma)
    chunks = [range(k * size, min(J, (k + 1) * size)) for k in range(sigma) if k * size < J]
    units = [
        range(chunk_units[c.start].start, chunk_units[c.stop - 1].stop) if len(c) else range(0)
        for c in chunks
    ]
    return units, chunks


def buffer_grid(mp: PassMapping, tensors: Tensors, a: int, b: int, sigma: int) -> dict:
    """The a × b × σ tiles with their byte shares, keyed (i, j, k)."""
    n_tiles = len(mp.tiles)
    units, chunks = stream_blocks(mp, sigma)
    O_fit = tensors.O_ab if (mp.rows or sigma > 1) else tensors.O
    grid = {}
    for i in range(a):
        rows = split(mp.position_rows, a, i)
        for j in range(b):
            tiles = [mp.tiles[t] for t in split(n_tiles, b, j)]
            groups = frozenset(grp for t in tiles for grp in t.groups)
            width = sum(t.width for t in tiles)
            # O(i, j): position-row share × channel share
            out_num, out_den = len(rows) * width, mp.position_rows * tensors.channels
            for k in range(len(units)):
                a_num, a_den = a_share(mp, rows, units[k])
                grid[i, j, k] = BufferTile(
                    i,
                    j,
                    k,
                    rows,
                    tiles,
                    groups,
                    units[k],
                    chunks[k],
                    # shares rounded up to a byte: ⌈numerator · bytes / denominator⌉, × groups / G
                    A=ceil_div(a_num * len(groups) * tensors.A, a_den * mp.G),
                    B=ceil_div(width * len(units[k]) * tensors.B, tensors.channels * mp.units),
                    O=ceil_div(out_num * tensors.O, out_den),
                    O_fit=ceil_div(out_num * O_fit, out_den),
                )
    return grid


def pass_time(computes: list[int], loaded: list[int], written: list[int], D: Fraction, double: bool) -> int:
    """§6: written[t] is o_t, the bytes of O written after tile t (0 if none)."""
    n = len(computes)
    if not double:
        return sum(ceil_div(loaded[t], D) + computes[t] + ceil_div(written[t], D) for t in range(n))
    time = ceil_div(loaded[0], D)  # the prologue: the first load is exposed
    for t in range(n):
        nxt = loaded[t + 1] if t + 1 < n else 0
        prev = written[t - 1] if t >= 1 else 0
        time += max(computes[t], ceil_div(nxt + prev, D))
    return time + ceil_div(written[n - 1], D)  # the epilogue: the last store is exposed


def choose_tiling(
    mp: PassMapping, compute: Callable[[BufferTile, int], Tally], twin: tuple[int, int, int] | None = None
) -> Plan:
    """`compute(tile, σ)` is the stepped compute of one buffer tile of a tiling with σ stream blocks.
    `twin` (a, b, σ): the dense twin's tiling, one more candidate when it fits."""
    org = mp.arch.organisation
    mem = org.memory
    cap = Fraction(mem.global_buffer_bytes, 2 if mem.double_buffering else 1)
    D = Fraction(mem.dram_gbps) / Fraction(org.clock_ghz)
    tensors = Tensors(mp)
    sigma_cap = len(mp.chunk_units()) if mp.rows else mp.units
    best: tuple | None = None
    tried = []
    for b in doubling(len(mp.tiles)):
        found = None
        for sigma in doubling(sigma_cap):
            for a in doubling(mp.position_rows):
                grid = buffer_grid(mp, tensors, a, b, sigma)
                if all(t.A + t.B + t.O_fit <= cap for t in grid.values()):
                    found = (a, b, sigma, grid)
                    break
            if found:
                break
        if found:
            tried.append(found)  # else no σ and a fit this b
    if twin is not None:
        a, b, sigma = twin
        if b <= len(mp.tiles) and sigma <= sigma_cap and a <= mp.position_rows:
            grid = buffer_grid(mp, tensors, a, b, sigma)
            if all(t.A + t.B + t.O_fit <= cap for t in grid.values()):
                tried.append((a, b, sigma, grid))
    for a, b, sigma, grid in tried:
        blocks = 1 + max(key[2] for key in grid)  # stream blocks (empty ones dropped)
        for rank, order in enumerate(("channels", "positions")):
            if order == "channels":
                keys = [(i, j, k) for j in range(b) for i in range(a) for k in range(blocks)]
            else:
                keys = [(i, j, k) for i in range(a) for j in range(b) for k in range(blocks)]
            sequence = [grid[key] for key in keys]
            loaded_a, loaded_b = [], []
            for t, tile in enumerate(sequence):
                prev = sequence[t - 1] if t else None
                keep_a = prev is not None and (prev.i, prev.k, prev.groups) == (tile.i, tile.k, tile.groups)
                keep_b = prev is not None and (prev.j, prev.k) == (tile.j, tile.k)
                loaded_a.append(0 if keep_a else tile.A)
                loaded_b.append(0 if keep_b else tile.B)
            loaded = [x + y for x, y in zip(loaded_a, loaded_b, strict=True)]
            written = [tile.O if tile.k == blocks - 1 else 0 for tile in sequence]
            tallies = [compute(tile, sigma) for tile in sequence]
            time = pass_time([t.cycles for t in tallies], loaded, written, D, mem.double_buffering)
            plan = Plan(
                a, b, sigma, order, sequence, tallies, time, sum(loaded_a), sum(loaded_b), sum(written)
            )
            key = (time, plan.dram, a * b * blocks, rank, b)
            if best is None or key < best[0]:
                best = (key, plan)
    if best is None:
        raise ReferenceModelError(
            f"layer {mp.masks.name}, pass {mp.pass_}: no buffer tiling fits {mem.global_buffer_bytes} bytes"
        )
    return best[1]
