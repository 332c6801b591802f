"""Compute cycles of a channel tile's items, per position block (docs/cost-model.md §3, §4):
lockstep folds on `systolic`, chunk-major dispatch to independent rows on `rows`. Each also
returns the buffer traffic of its folds or chunks, which bounds them (§5) and is priced (§9).

Both are single numba passes over the tile's [stream blocks, items] arrays: they are called once
per channel tile and candidate blocking, so gathers and [J, items] temporaries would dominate."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from agos.arch.schema import Arch
from agos.cost.items import SlotSets, TileItems
from agos.cost.layout import output_bytes
from agos.workload.passes import mapping


@dataclass
class BlockCompute:
    """Per stream block and position block: compute cycles and the buffer traffic of the folds
    or chunks, all int64 [J, a]."""

    compute: np.ndarray
    reads: np.ndarray  # buffer bytes read
    writes: np.ndarray  # buffer bytes written
    work: np.ndarray  # cycles the array's own timing rule needs (Σ F, Σ makespans)
    fill_drain: np.ndarray
    items: np.ndarray  # dispatched items / item-chunks
    store_loads: np.ndarray  # bytes loaded into the PE stores (rows)


@numba.njit(cache=True)
def _first_last(d):
    """Each item's first and last dispatched stream block (−1 when never dispatched): §5's
    partial sums leave at every dispatched block but the last and return at all but the first."""
    j_count, n = d.shape
    first = np.full(n, -1, np.int32)
    last = np.full(n, -1, np.int32)
    for i in range(n):
        for j in range(j_count):
            if d[j, i] > 0:
                if first[i] < 0:
                    first[i] = j
                last[i] = j
    return first, last


@numba.njit(cache=True)
def _union_size(union):
    """Size of a channel set held as a bitmap of 64-bit words; the bitmap is cleared for the next
    fold."""
    size = 0
    for word in range(union.size):
        bits = union[word]
        while bits:
            size += 1
            bits &= bits - np.uint64(1)
        union[word] = 0
    return size


# the per-block sums _lockstep returns, and what it keeps of each block's open fold
COMPUTE, READS, WRITES, WORK, FOLDS, ITEMS = range(6)
COUNT, LONGEST, T_MAX, READ, WRITTEN, SET = range(6)


@numba.njit(cache=True)
def _close_fold(
    out, j, b, longest, t_max, read, written, union, own, closed, sizes, width, vb, bw, two_sided, compacted
):  # fmt: skip
    """Adds a fold of block b in stream block j to the sums `out` (§3): its time less fd is
    max(F, ⌈Bf / BW⌉), Bf its items' bytes (`read` + `written`) plus the column operands
    T_max·W·vb (+ W·⌈T_max/8⌉ bitmaps for two-sided joins). W is the tile width or, compacted,
    the size of the union of the items' channel sets (the bitmap `union`, measured when `own`,
    else taken from the same fold of stream block 0: the `closed`-th). Returns the count of
    folds closed so far."""
    size = width
    if compacted:
        if own:
            sizes[closed] = _union_size(union)
        size = sizes[closed]
    column = t_max * size * vb
    if two_sided:
        column += size * ((t_max + 7) // 8)
    out[COMPUTE, j, b] += max(longest, (read + written + column + bw - 1) // bw)
    out[READS, j, b] += read + column
    out[WRITES, j, b] += written
    out[WORK, j, b] += longest
    out[FOLDS, j, b] += 1
    return closed + 1


@numba.njit(cache=True)
def _lockstep(
    d, length, stream, channels, set_id, pos_row, block_of_row, a, rows, vb, ab, ob, bw, two_sided, compacted,
    width, bitmaps,
):  # fmt: skip
    """§3 per (stream block j, position block): folds are R consecutive dispatched items of one
    (position block, work set) in execution order (blocks in order, items in order within each).

    Items are visited in their own order, each block keeping its open fold (in locals while
    consecutive items stay in one block): a block's items arrive in execution order, and the
    block sums do not depend on the order of blocks (an item's block is that of its position row,
    `block_of_row[pos_row[i]]`). Returns [COMPUTE … ITEMS, J, a], compute
    without fill/drain."""
    j_count, n = d.shape
    single = j_count == 1  # one stream block: no partial sums leave or return
    if j_count > 1:
        first, last = _first_last(d)
    else:
        first = last = np.zeros(0, np.int32)
    same = True  # every stream block dispatches the same items: their folds (and unions) alike
    for i in range(n):
        for j in range(1, j_count):
            if (d[j, i] > 0) != (d[0, i] > 0):
                same = False
    out = np.zeros((6, j_count, a), np.int64)
    held = np.zeros((6, a), np.int64)  # the open fold of each block not in the locals
    union = np.zeros((a, bitmaps.shape[1]), np.uint64)  # the open folds' channel sets
    sizes = np.zeros(n if compacted else 0, np.int64)  # per fold of block 0, in closing order
    for j in range(j_count):
        own = j == 0 or not same  # measures its folds' unions; else reuses block 0's
        closed = 0
        cur = -1
        count = longest = t_max = read = written = work_set = 0
        items = 0  # of the current block, added to its sums when another block's item comes
        for i in range(n):
            if d[j, i] <= 0:
                continue
            block = block_of_row[pos_row[i]]
            if block != cur:
                if cur >= 0:
                    held[COUNT, cur], held[LONGEST, cur], held[T_MAX, cur] = count, longest, t_max
                    held[READ, cur], held[WRITTEN, cur], held[SET, cur] = read, written, work_set
                    out[ITEMS, j, cur] += items
                items = 0
                cur = block
                count, longest, t_max = held[COUNT, cur], held[LONGEST, cur], held[T_MAX, cur]
                read, written, work_set = held[READ, cur], held[WRITTEN, cur], held[SET, cur]
            if count and (set_id[i] != work_set or count == rows):
                closed = _close_fold(
                    out, j, cur, longest, t_max, read, written, union[cur], own, closed, sizes, width, vb, bw,
                    two_sided, compacted,
                )  # fmt: skip
                count = longest = t_max = read = written = 0
            work_set = set_id[i]
            count += 1
            items += 1
            longest = max(longest, d[j, i])
            t_max = max(t_max, length[j, i])
            ch = channels[i]
            if single:
                read += stream[j, i]
                written += ch * ob
            else:
                read += stream[j, i] + (ch * ab if j != first[i] else 0)
                written += ch * ab if j != last[i] else ch * ob
            if compacted and own:
                for w in range(union.shape[1]):
                    union[cur, w] |= bitmaps[i, w]
        if cur >= 0:
            held[COUNT, cur], held[LONGEST, cur], held[T_MAX, cur] = count, longest, t_max
            held[READ, cur], held[WRITTEN, cur] = read, written
            out[ITEMS, j, cur] += items
        for b in range(a):
            if held[COUNT, b]:
                closed = _close_fold(
                    out, j, b, held[LONGEST, b], held[T_MAX, b], held[READ, b], held[WRITTEN, b], union[b],
                    own, closed, sizes, width, vb, bw, two_sided, compacted,
                )  # fmt: skip
        held[:] = 0
    return out


def lockstep(
    items: TileItems,
    block_of_row: np.ndarray,
    a: int,
    arch: Arch,
    pass_: str,
    sets: SlotSets | None,
) -> BlockCompute:
    """§3: folds of R dispatched items, per (stream block, position block, work set)."""
    o = arch.organisation
    m = mapping(pass_)
    opts = arch.skipping.of(pass_)
    bitmaps = np.zeros((items.d.shape[1], 0), np.uint64) if sets is None else sets.bitmaps(items.tile)
    sums = _lockstep(
        items.d, items.length, items.stream_bytes, items.channels, items.set_id, items.row, block_of_row,
        a, o.pe_array.rows, o.precision.value_bytes, o.precision.accumulate_bytes,
        output_bytes(arch, m.output), o.memory.bandwidth_bytes_per_cycle, m.two_sided and opts.pe_operand,
        sets is not None, items.tile.width, bitmaps,
    )  # fmt: skip
    fill_drain = (o.fd if o.fill_drain == "per_fold" else 0) * sums[FOLDS]
    return BlockCompute(
        sums[COMPUTE] + fill_drain, sums[READS], sums[WRITES], sums[WORK], fill_drain, sums[ITEMS],
        np.zeros_like(fill_drain),
    )  # fmt: skip


@numba.njit(cache=True)
def _independent(d, stream, channels, pos_row, block_of_row, a, rows, greedy, ab, ob, fd, bw, store_load):
    """§4 per (chunk j, position block): the dispatched item-chunks in execution order go to the
    R rows — `greedy`: each to the row that frees first (ties: the lowest row); else the i-th to
    row i mod R — all rows idle at the start of every (chunk, block); makespan M. The chunk's
    bytes Bc are its item-chunks' stream bytes, their partial sums and outputs (§5) and the store
    load; its time is fd + max(M, ⌈Bc / BW⌉) when it dispatches anything.

    Items are visited in their own order, each block keeping its rows' state: a block's items
    arrive in execution order. Returns compute, reads, writes, work, fill/drain, items and store
    loads, each [J, a]."""
    j_count, n = d.shape
    if j_count > 1:
        first, last = _first_last(d)
    else:
        first = last = np.zeros(n, np.int32)
    makespan = np.zeros((j_count, a), np.int64)
    items = np.zeros((j_count, a), np.int64)
    traffic = np.zeros((j_count, a), np.int64)  # stream and partial-sum bytes read
    writes = np.zeros((j_count, a), np.int64)
    finish = np.zeros((a, rows), np.int64)  # each block's rows, in this chunk
    nxt = np.zeros(a, np.int64)  # static: the row of each block's next item-chunk
    for j in range(j_count):
        finish[:] = 0
        nxt[:] = 0
        for i in range(n):
            if d[j, i] <= 0:
                continue
            b = block_of_row[pos_row[i]]
            if greedy:
                row = 0
                for r in range(1, rows):
                    if finish[b, r] < finish[b, row]:
                        row = r
            else:
                row = nxt[b]
                nxt[b] = row + 1 if row + 1 < rows else 0
            finish[b, row] += d[j, i]
            ch = channels[i]
            items[j, b] += 1
            traffic[j, b] += stream[j, i] + (ch * ab if j != first[i] else 0)
            writes[j, b] += ch * ab if j != last[i] else ch * ob
        for b in range(a):
            makespan[j, b] = finish[b].max()
    compute = np.zeros((j_count, a), np.int64)
    reads = np.zeros((j_count, a), np.int64)
    work = np.zeros((j_count, a), np.int64)
    fill = np.zeros((j_count, a), np.int64)
    loads = np.zeros((j_count, a), np.int64)
    for j in range(j_count):
        for b in range(a):
            if items[j, b] > 0:
                load = store_load[j]
                busy = max(makespan[j, b], (traffic[j, b] + writes[j, b] + load + bw - 1) // bw)
                compute[j, b] = fd + busy
                reads[j, b] = traffic[j, b] + load
                work[j, b] = makespan[j, b]
                fill[j, b] = fd
                loads[j, b] = load
    return compute, reads, writes, work, fill, items, loads


def independent(
    items: TileItems,
    block_of_row: np.ndarray,
    a: int,
    arch: Arch,
    pass_: str,
    store_load: np.ndarray,
) -> BlockCompute:
    """Chunk-major rows (§4); `store_load` is the buffer bytes that load each chunk's stores."""
    o = arch.organisation
    ab = o.precision.accumulate_bytes
    ob = output_bytes(arch, mapping(pass_).output)
    out = _independent(
        items.d, items.stream_bytes, items.channels, items.row, block_of_row, a, o.pe_array.rows,
        o.dispatch == "greedy", ab, ob, o.fd, o.memory.bandwidth_bytes_per_cycle, store_load,
    )  # fmt: skip
    return BlockCompute(*out)
