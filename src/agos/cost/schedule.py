"""Compute cycles of a channel tile's items, per position block (docs/cost-model.md §3, §4):
lockstep folds on `systolic`, chunk-major dispatch to independent rows on `rows`. Each also
returns the buffer traffic of its folds or chunks, which bounds them (§5) and is priced (§9)."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from agos.arch.schema import Arch
from agos.cost.items import SlotSets, TileItems
from agos.cost.layout import ceil_div


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

    @classmethod
    def zeros(cls, j: int, a: int) -> BlockCompute:
        return cls(*(np.zeros((j, a), np.int64) for _ in range(7)))


def _segment_starts(keys: list[np.ndarray]) -> np.ndarray:
    """Indices where any key changes (index 0 included)."""
    n = keys[0].size
    change = np.zeros(n, bool)
    if n:
        change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, np.int64)
    np.add.at(out, index, values.astype(np.int64, copy=False))
    return out


def partial_sums(items: TileItems, arch: Arch, pass_: str) -> tuple[np.ndarray, np.ndarray]:
    """Buffer bytes an item-block reads and writes for its partial sums and outputs (§5): written
    at every dispatched block but the last, read at every one but the first, outputs at the last."""
    vb, ab = arch.precision.value_bytes, arch.precision.accumulate_bytes
    ob = ab if pass_ == "bwd_weight" else vb
    disp = items.d > 0
    if disp.shape[0] == 1:
        return np.zeros(disp.shape, np.int64), disp * items.channels[None, :] * ob
    j_count = disp.shape[0]
    first = np.argmax(disp, axis=0)
    last = j_count - 1 - np.argmax(disp[::-1], axis=0)
    jj = np.arange(j_count)[:, None]
    ch = items.channels[None, :]
    reads = disp * (jj != first[None, :]) * ch * ab
    writes = disp * ((jj != last[None, :]) * ch * ab + (jj == last[None, :]) * ch * ob)
    return reads, writes


def lockstep(
    items: TileItems,
    block_of_row: np.ndarray,
    a: int,
    arch: Arch,
    pass_: str,
    sets: SlotSets | None,
) -> BlockCompute:
    """§3: folds of R dispatched items, per (stream block, position block, work set)."""
    j_count = items.d.shape[0]
    out = BlockCompute.zeros(j_count, a)
    block_all = block_of_row[items.row]
    order = np.argsort(block_all, kind="stable") if a > 1 else np.arange(block_all.size)
    disp = items.d[:, order] > 0
    same = bool((disp == disp[:1]).all())
    groups = [np.arange(j_count)] if same else [np.array([j]) for j in range(j_count)]
    p_reads, p_writes = partial_sums(items, arch, pass_)
    for js in groups:
        sel = order[disp[js[0]]]
        if sel.size:
            _folds(items, js, sel, block_all[sel], a, arch, pass_, sets, p_reads, p_writes, out)
    return out


@numba.njit(cache=True)
def _fold_scan(d, length, reads, writes, block, set_id, rows):
    """One pass over dispatched items (execution order) of J' stream blocks that dispatch alike:
    folds are R consecutive items of one (position block, work set). Per fold: its first item,
    F = max d, T_max, and summed reads and writes, each [J', folds]."""
    jn, n = d.shape
    starts = np.empty(n, np.int64)
    folds = 0
    count = 0
    for i in range(n):
        if i == 0 or block[i] != block[i - 1] or set_id[i] != set_id[i - 1] or count == rows:
            starts[folds] = i
            folds += 1
            count = 0
        count += 1
    starts = starts[:folds]
    f = np.zeros((jn, folds), np.int64)
    t = np.zeros((jn, folds), np.int64)
    rd = np.zeros((jn, folds), np.int64)
    wr = np.zeros((jn, folds), np.int64)
    for j in range(jn):
        k = -1
        for i in range(n):
            if k + 1 < folds and starts[k + 1] == i:
                k += 1
            if d[j, i] > f[j, k]:
                f[j, k] = d[j, i]
            if length[j, i] > t[j, k]:
                t[j, k] = length[j, i]
            rd[j, k] += reads[j, i]
            wr[j, k] += writes[j, i]
    return starts, f, t, rd, wr


@numba.njit(cache=True)
def _fold_unions(indptr, indices, width_dom, pos, slot, starts, cols):
    """Compacted folds: the union U of the items' channel sets (slot `slot[i]` of position
    `pos[i]`), as its size and its largest lane load (channel c on lane c mod C)."""
    folds = starts.size
    n = pos.size
    width = np.zeros(folds, np.int64)
    load = np.zeros(folds, np.int64)
    stamp = np.full(width_dom, -1, np.int64)
    lanes = np.zeros(cols, np.int64)
    for k in range(folds):
        lo_i = starts[k]
        hi_i = starts[k + 1] if k + 1 < folds else n
        lanes[:] = 0
        w = 0
        for i in range(lo_i, hi_i):
            lo = indptr[pos[i]] + slot[i] * cols
            hi = min(indptr[pos[i] + 1], lo + cols)
            for c in indices[lo:hi]:
                if stamp[c] != k:
                    stamp[c] = k
                    w += 1
                    lanes[c % cols] += 1
        width[k] = w
        load[k] = lanes.max()
    return width, load


def _folds(items, js, sel, block, a, arch, pass_, sets, p_reads, p_writes, out) -> None:
    """Folds of the dispatched items `sel` (execution order) of the stream blocks `js`, which all
    dispatch the same items, into `out` rows `js`."""
    o = arch.organisation
    rows, cols = o.pe_array.rows, o.pe_array.cols
    vb = o.precision.value_bytes
    bw = o.memory.bandwidth_bytes_per_cycle
    opts = arch.skipping.of(pass_)
    window = arch.skipping.window
    sub = np.ix_(js, sel)
    starts, f, t_max, reads, writes = _fold_scan(
        items.d[sub], items.length[sub], items.stream_bytes[sub] + p_reads[sub], p_writes[sub],
        block, items.set_id[sel], rows,
    )  # fmt: skip
    if sets is not None:
        indptr, indices = sets.csr(items.tile)
        w, load = _fold_unions(indptr, indices, items.tile.width, items.pos[sel], items.slot[sel], starts, cols)
        width, load = w[None, :], load[None, :]
        if not opts.stream:
            k = t_max * load
        elif window is None:
            k = np.zeros_like(t_max)
        else:
            k = ceil_div(t_max * load, window)
    else:
        width = np.full((1, starts.size), items.tile.width, np.int64)
        k = None
    column = t_max * width * vb
    if pass_ == "bwd_weight" and opts.pe_operand:
        column = column + width * ceil_div(t_max, 8)
    fold_bytes = reads + writes + column
    busy = np.maximum(f, ceil_div(fold_bytes, bw))
    if k is not None:
        busy = np.maximum(busy, k)
    fd = o.fd if o.fill_drain == "per_fold" else 0
    fold_block = block[starts]
    count = np.bincount(fold_block, minlength=a).astype(np.int64)
    out.compute[js] = _sum_rows(fold_block, busy, a) + fd * count
    out.fill_drain[js] = fd * count
    out.reads[js] = _sum_rows(fold_block, reads + column, a)
    out.writes[js] = _sum_rows(fold_block, writes, a)
    out.work[js] = _sum_rows(fold_block, f, a)
    out.items[js] = np.bincount(block, minlength=a).astype(np.int64)


def _sum_rows(index: np.ndarray, values: np.ndarray, a: int) -> np.ndarray:
    """[J', folds] summed into [J', a] by each fold's position block (`index` sorted)."""
    out = np.zeros((values.shape[0], a), np.int64)
    cuts = _segment_starts([index])
    out[:, index[cuts]] = np.add.reduceat(values, cuts, axis=1)
    return out


@numba.njit(cache=True)
def _greedy(d: np.ndarray, block: np.ndarray, a: int, rows: int) -> np.ndarray:
    """[J, a] makespans: item-chunks of each (chunk, block) in order, each to the row that frees
    first (ties: the lowest row), all rows idle at the start of every (chunk, block)."""
    j_count, n = d.shape
    out = np.zeros((j_count, a), np.int64)
    finish = np.zeros(rows, np.int64)
    for j in range(j_count):
        current = -1
        for i in range(n):
            if block[i] != current:
                if current >= 0:
                    out[j, current] = finish.max()
                current = block[i]
                finish[:] = 0
            if d[j, i] > 0:
                best = 0
                for r in range(1, rows):
                    if finish[r] < finish[best]:
                        best = r
                finish[best] += d[j, i]
        if current >= 0:
            out[j, current] = finish.max()
    return out


@numba.njit(cache=True)
def _static(d: np.ndarray, block: np.ndarray, a: int, rows: int) -> np.ndarray:
    """[J, a] makespans with the i-th dispatched item-chunk of each (chunk, block) on row i mod R."""
    j_count, n = d.shape
    out = np.zeros((j_count, a), np.int64)
    sums = np.zeros(rows, np.int64)
    for j in range(j_count):
        current = -1
        rank = 0
        for i in range(n):
            if block[i] != current:
                if current >= 0:
                    out[j, current] = sums.max()
                current = block[i]
                sums[:] = 0
                rank = 0
            if d[j, i] > 0:
                sums[rank % rows] += d[j, i]
                rank += 1
        if current >= 0:
            out[j, current] = sums.max()
    return out


@numba.njit(cache=True)
def _unit_sums(d, stream, channels, block, a, ab, ob):
    """Per (chunk, block): dispatched item-chunks, stream bytes, and partial-sum and output bytes
    read and written by §5's rule (each item's dispatched chunks e_1 < … < e_m)."""
    j_count, n = d.shape
    items = np.zeros((j_count, a), np.int64)
    st = np.zeros((j_count, a), np.int64)
    rd = np.zeros((j_count, a), np.int64)
    wr = np.zeros((j_count, a), np.int64)
    for i in range(n):
        first = -1
        last = -1
        for j in range(j_count):
            if d[j, i] > 0:
                if first < 0:
                    first = j
                last = j
        if first < 0:
            continue
        b = block[i]
        ch = channels[i]
        for j in range(first, last + 1):
            if d[j, i] > 0:
                items[j, b] += 1
                st[j, b] += stream[j, i]
                if j != first:
                    rd[j, b] += ch * ab
                if j != last:
                    wr[j, b] += ch * ab
                else:
                    wr[j, b] += ch * ob
    return items, st, rd, wr


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
    rows = o.pe_array.rows
    bw = o.memory.bandwidth_bytes_per_cycle
    block = block_of_row[items.row]
    order = np.argsort(block, kind="stable") if a > 1 else np.arange(block.size)
    block = block[order]
    d = items.d[:, order]
    disp = d > 0
    j_count = d.shape[0]
    if not disp.any():
        return BlockCompute.zeros(j_count, a)
    makespan = (_greedy if o.dispatch == "greedy" else _static)(np.ascontiguousarray(d), block, a, rows)
    vb, ab = o.precision.value_bytes, o.precision.accumulate_bytes
    ob = ab if pass_ == "bwd_weight" else vb
    unit_items, unit_stream, unit_reads, unit_writes = _unit_sums(
        d, np.ascontiguousarray(items.stream_bytes[:, order]), items.channels[order], block, a, ab, ob
    )
    active = unit_items > 0
    unit_load = store_load[:, None] * active
    unit_bytes = unit_stream + unit_reads + unit_writes + unit_load
    busy = np.maximum(makespan, ceil_div(unit_bytes, bw))
    return BlockCompute(
        compute=(o.fd + busy) * active,
        reads=unit_stream + unit_reads + unit_load,
        writes=unit_writes,
        work=makespan * active,
        fill_drain=o.fd * active,
        items=unit_items,
        store_loads=unit_load,
    )
