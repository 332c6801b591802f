"""Compute cycles of a channel tile's items, per position block (docs/cost-model.md §3, §4):
lockstep folds on `systolic`, chunk-major dispatch to independent rows on `rows`. Each also
returns the buffer traffic of its folds or chunks, which bounds them (§5) and is priced (§9)."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from agos.arch.schema import Arch
from agos.cost.items import SlotSets, TileItems, lane_loads
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


def _folds(items, js, sel, block, a, arch, pass_, sets, p_reads, p_writes, out) -> None:
    """Folds of the dispatched items `sel` (execution order) of the stream blocks `js`, which all
    dispatch the same items, into `out` rows `js`."""
    o = arch.organisation
    rows, cols = o.pe_array.rows, o.pe_array.cols
    vb = o.precision.value_bytes
    bw = o.memory.bandwidth_bytes_per_cycle
    opts = arch.skipping.of(pass_)
    window = arch.skipping.window
    seg = _segment_starts([block, items.set_id[sel]])
    seg_of = np.repeat(np.arange(seg.size), np.diff(np.append(seg, sel.size)))
    rank = np.arange(sel.size) - seg[seg_of]
    opens = rank % rows == 0
    starts = np.flatnonzero(opens)
    fold_of = np.cumsum(opens) - 1
    sub = np.ix_(js, sel)
    f = np.maximum.reduceat(items.d[sub], starts, axis=1)  # [js, folds]
    t_max = np.maximum.reduceat(items.length[sub], starts, axis=1)
    reads = np.add.reduceat(items.stream_bytes[sub] + p_reads[sub], starts, axis=1)
    writes = np.add.reduceat(p_writes[sub], starts, axis=1)
    if sets is not None:
        union = np.zeros((items.tile.width, starts.size), bool)
        pos, slot = items.pos[sel], items.slot[sel]
        for sj in np.unique(slot):
            idx = np.flatnonzero(slot == sj)
            members = sets.members(items.tile, pos[idx], int(sj))  # [channels, n]
            cuts = _segment_starts([fold_of[idx]])
            union[:, fold_of[idx][cuts]] |= np.logical_or.reduceat(members, cuts, axis=1)
        width = union.sum(axis=0, dtype=np.int64)[None, :]
        load = lane_loads(union, cols)[None, :]
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


def _static(d: np.ndarray, block: np.ndarray, a: int, rows: int) -> np.ndarray:
    """[J, a] makespans with the i-th dispatched item-chunk of each (chunk, block) on row i mod R."""
    j_count = d.shape[0]
    disp = d > 0
    count = np.cumsum(disp, axis=1)
    bstart = np.searchsorted(block, np.arange(a))  # first item of each block (block is sorted)
    before = np.where(bstart > 0, count[:, np.maximum(bstart - 1, 0)], 0)  # [J, a]
    rank = count - before[:, block] - 1  # rank of each dispatched item-chunk in its unit
    row = np.mod(rank, rows)
    jj = np.broadcast_to(np.arange(j_count)[:, None], d.shape)
    flat = (jj * a + block[None, :]) * rows + row
    sums = np.bincount(flat[disp], weights=d[disp], minlength=j_count * a * rows)
    return np.rint(sums).astype(np.int64).reshape(j_count, a, rows).max(axis=2)


def _units(values: np.ndarray, block: np.ndarray, a: int) -> np.ndarray:
    """[J, n] → [J, a]: sums over the items of each block (`block` sorted)."""
    out = np.zeros((values.shape[0], a), np.int64)
    starts = _segment_starts([block])
    if starts.size:
        out[:, block[starts]] = np.add.reduceat(values.astype(np.int64, copy=False), starts, axis=1)
    return out


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
    reads, writes = partial_sums(items, arch, pass_)
    reads, writes = reads[:, order], writes[:, order]
    stream = disp * items.stream_bytes[:, order]
    unit_stream = _units(stream, block, a)  # [J, a]
    unit_reads = _units(reads, block, a)
    unit_writes = _units(writes, block, a)
    unit_items = _units(disp.astype(np.int64), block, a)
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
