"""docs/cost-model.md §3, §4, §5 and the per-item part of §9: one buffer tile on the PE array.

Each dispatched item (lockstep) or item-chunk (rows) becomes a `RowWork`: one work list per PE
column of its row, built from the mask bits — the row's walked stream (all taps, or its nonzero
taps under stream skip) for every column of a one-sided or dense row, the PE's own join (stream
and own dY both nonzero) for a two-sided row. The array is then stepped one cycle at a time: each
PE retires one entry of its work list per cycle. The spec's closed-form bounds (the window ⌈T/L⌉,
the broadcast ⌈s/B_w⌉, the store conflicts, the lane-conflict bound K and the buffer bandwidth
⌈bytes/BW⌉) are lower bounds on the stepped time of the item, fold or chunk they belong to.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

from agos.reference.mapping import ChannelTile, Item, PassMapping, Tap, ceil_div


@dataclass
class GroupCounts:
    group: int
    T: int  # stream length (valid taps) of the item's part: T, T_k of a stream block, T_j of a chunk
    s: int  # nonzero stream entries
    computing: tuple[int, ...]  # the local channels that compute in this group (§9)
    b: dict[int, int]  # BWD-W: entries where X and the PE's own dY are both nonzero, per local k


@dataclass
class RowWork:
    """What one row does for one item, or its part of one stream block (systolic) or chunk (rows)."""

    item: Item
    lists: list[list[Tap]]  # one work list per PE column of the row
    floor: int  # closed-form lower bound on the row's time: window, broadcast, store conflicts
    groups: list[GroupCounts]
    d: int | None = None  # its duration, once stepped

    @property
    def T(self) -> int:
        return max(gc.T for gc in self.groups)


@dataclass
class Tally:
    """The per-tile counts that §6 and §9 need."""

    cycles: int = 0
    items: int = 0
    mac_issued: int = 0
    mac_nonzero: int = 0
    stream_bytes: int = 0
    column_bytes: int = 0  # lockstep column operands (+ bitmaps)
    store_load_bytes: int = 0  # rows: operand store loads
    output_bytes: int = 0
    psum_read_bytes: int = 0
    psum_write_bytes: int = 0
    metadata_bits: int = 0
    folds: list[int] = field(default_factory=list)  # fold or chunk times, for inspection


# ---- stepping --------------------------------------------------------------------------------------


class RowState:
    """A row working on one item: how much of each PE's work list is left, and the cycles spent."""

    def __init__(self, work: RowWork):
        self.work = work
        self.left = [len(lst) for lst in work.lists]  # entries each PE has still to retire
        self.busy = sum(1 for n in self.left if n)  # PEs with work left
        self.elapsed = 0

    def finished(self) -> bool:
        return self.busy == 0 and self.elapsed >= self.work.floor

    def cycle(self) -> None:
        """One cycle: every PE with work left retires one entry of its work list."""
        for i, n in enumerate(self.left):
            if n:
                self.left[i] = n - 1
                if n == 1:
                    self.busy -= 1
        self.elapsed += 1


def step_lockstep(works: list[RowWork], floor: int = 0) -> int:
    """Lockstep rows: all start at cycle 0 and the compute phase ends when every row is done (its
    work lists retired, its own bounds elapsed) and the fold's bounds (K, bandwidth) have elapsed."""
    rows = [RowState(w) for w in works]
    cycle = 0
    while True:
        rows = [row for row in rows if not row.finished()]
        if not rows:
            return max(cycle, floor)
        for row in rows:
            row.cycle()
        cycle += 1


def duration(work: RowWork) -> int:
    """§2.3's d: the row stepped alone (computed once per item or item-chunk)."""
    if work.d is None:
        work.d = step_lockstep([work])
    return work.d


def step_rows(works: list[RowWork], rows: int, dispatch: str) -> int:
    """Independent rows (§4): the makespan of one chunk's item-chunks, in item order, all rows idle
    at the start. `static`: the i-th item-chunk goes to row i mod R. `greedy`: at every cycle boundary
    each free row, lowest first, takes the next item-chunk."""
    if dispatch == "static":
        queues = [deque(works[r::rows]) for r in range(rows)]
    else:
        shared = deque(works)
        queues = [shared] * rows
    current: list[RowState | None] = [None] * rows
    cycle = 0
    while True:
        for r in range(rows):  # at the boundary: finished rows free up, free rows take work
            row = current[r]
            if row is not None and row.finished():
                current[r] = row = None
            if row is None and queues[r]:
                current[r] = RowState(queues[r].popleft())
        if all(row is None for row in current):
            return cycle
        for row in current:
            if row is not None:
                row.cycle()
        cycle += 1


# ---- building the work of a row --------------------------------------------------------------------


def row_work(mp: PassMapping, item: Item, part: range) -> RowWork:
    """The work lists of an item's part of the stream: the entries whose unit (§6) lies in `part`
    (a stream block on `systolic`, a chunk on `rows`; all units when the stream is not cut). Built
    once per item and part."""
    key = (id(item), part.start, part.stop)
    if key not in mp.memo:
        mp.memo[key] = _row_work(mp, item, part)
    return mp.memo[key]


def _row_work(mp: PassMapping, item: Item, part: range) -> RowWork:
    lists: list[list[Tap]] = []
    floor = 0
    groups = []
    columns = item.columns()
    whole = part.start == 0 and part.stop >= mp.units
    for grp in item.tile.groups:
        taps = mp.stream(grp, item.position)
        if not whole:  # the stream is ordered by unit (its outermost index): the part is a slice
            units = mp.stream_units(grp, item.position)
            taps = taps[bisect_left(units, part.start) : bisect_left(units, part.stop)]
        T = len(taps)
        nonzero = [t for t in taps if t.nonzero]
        s = len(nonzero)
        walk = nonzero if mp.stream_skip else taps
        if mp.stream_skip and mp.L is not None:
            floor = max(floor, ceil_div(T, mp.L))  # the window: at least ⌈T / L⌉
        if mp.two_sided:
            floor = max(floor, ceil_div(s, mp.Bw))  # the broadcast: at least ⌈s / B_w⌉
        b: dict[int, int] = {}
        for g2, k in columns:
            if g2 != grp:
                continue
            if mp.two_sided:
                lists.append([t for t in nonzero if t.operand[k]])  # the PE's own join
            else:
                lists.append(walk)  # all PEs of a one-sided row advance together along its stream
            if mp.pass_ == "bwd_weight":
                b[k] = sum(1 for t in nonzero if t.operand[k])
        if item.channel_set is not None and mp.arch.skipping.lanes == "modulo":
            # §2.3: compacted items pay their lane conflicts on their row's crossbar; channel c lives
            # on lane (store) c mod C, whose `lane_ports` ports serve that many of them per cycle
            load = max(sum(1 for c in item.channel_set if c % mp.C == lane) for lane in range(mp.C))
            ports = mp.arch.skipping.lane_ports or 1
            floor = max(floor, len(walk) * ceil_div(load, ports))
        groups.append(GroupCounts(grp, T, s, item.computing[grp], b))
    return RowWork(item, lists, floor, groups)


def dispatched_parts(mp: PassMapping, item: Item, parts: list[range]) -> list[int]:
    """The parts (stream blocks or chunks) in which the item is dispatched: e_1 < … < e_m (§5)."""
    key = ("parts", id(item), *((part.start, part.stop) for part in parts))
    if key not in mp.memo:
        mp.memo[key] = [e for e, part in enumerate(parts) if duration(row_work(mp, item, part)) > 0]
    return mp.memo[key]


def partial_sums(mp: PassMapping, work: RowWork, e: int, dispatched: list[int]) -> tuple[int, int, int]:
    """§5: (partial sums written, partial sums read, outputs written) by an item in its part e."""
    ob = mp.ab if mp.pass_ == "bwd_weight" else mp.vb
    width = work.item.width
    write = width * mp.ab if e != dispatched[-1] else 0
    read = width * mp.ab if e != dispatched[0] else 0
    outputs = width * ob if e == dispatched[-1] else 0
    return write, read, outputs


def stream_bytes(mp: PassMapping, work: RowWork) -> int:
    """§5: values and bitmap under stream skip (or the plain values, when shorter), values only
    without, summed over the groups."""
    total = 0
    for gc in work.groups:
        plain = gc.T * mp.vb
        # under stream skip the buffer sends values + bitmap, or the plain values when that is shorter
        total += min(gc.s * mp.vb + ceil_div(gc.T, 8), plain) if mp.stream_skip else plain
    return total


def tally_macs(mp: PassMapping, work: RowWork, tally: Tally) -> None:
    """§9: issued and nonzero MACs and the metadata bits of one dispatched item or item-part."""
    for gc in work.groups:
        joined = sum(gc.b[k] for k in gc.computing) if mp.pass_ == "bwd_weight" else 0
        walked = gc.s if mp.stream_skip else gc.T
        tally.mac_issued += joined if mp.two_sided else walked * len(gc.computing)
        tally.mac_nonzero += joined if mp.pass_ == "bwd_weight" else gc.s * len(gc.computing)
        if mp.stream_skip:
            tally.metadata_bits += gc.T
        if mp.two_sided:
            tally.metadata_bits += gc.T * len(gc.computing)


# ---- §3: lockstep ----------------------------------------------------------------------------------




def lockstep_tile(
    mp: PassMapping, tiles: list[ChannelTile], rows: range, blocks: list[range], k: int
) -> Tally:
    """One buffer tile on the lockstep array: stream block k of `blocks`, its channel tiles in order,
    each work set in order, folds of R consecutive dispatched items (item-blocks when σ > 1)."""
    org = mp.arch.organisation
    bw = org.memory.bandwidth_bytes_per_cycle
    fd = org.fd if org.fill_drain == "per_fold" else 0
    tally = Tally()
    for tile in tiles:
        for work_set in mp.items[tile.index]:
            works = []
            for item in work_set:
                if item.row not in rows:
                    continue
                work = row_work(mp, item, blocks[k])
                if duration(work) > 0:  # d = 0: not dispatched, removed before folds are formed
                    works.append(work)
            for start in range(0, len(works), mp.R):
                fold = works[start : start + mp.R]
                t_max = max(w.T for w in fold)
                # the union of the items' channel sets: the fold's column operands (compacted)
                union: set[int] = set()
                for w in fold:
                    union.update(w.item.channel_set or ())
                # the fold's buffer bytes Bf (§5)
                width = len(union) if mp.compacted else tile.width
                columns = t_max * width * mp.vb + (width * ceil_div(t_max, 8) if mp.two_sided else 0)
                streams = sum(stream_bytes(mp, w) for w in fold)
                sums = [partial_sums(mp, w, k, dispatched_parts(mp, w.item, blocks)) for w in fold]
                psum_write = sum(x[0] for x in sums)
                psum_read = sum(x[1] for x in sums)
                outputs = sum(x[2] for x in sums)
                bf = streams + psum_write + psum_read + outputs + columns
                floor = ceil_div(bf, bw)
                key = ("fold", *(id(w) for w in fold), floor)
                if key not in mp.memo:  # the same fold recurs in other candidate tilings
                    mp.memo[key] = step_lockstep(fold, floor)
                time = fd + mp.memo[key]
                tally.folds.append(time)
                tally.cycles += time
                tally.items += len(fold)
                tally.stream_bytes += streams
                tally.psum_write_bytes += psum_write
                tally.psum_read_bytes += psum_read
                tally.output_bytes += outputs
                tally.column_bytes += columns
                for w in fold:
                    tally_macs(mp, w, tally)
    if org.fill_drain == "overlapped" and tally.folds:
        tally.cycles += org.fd
    return tally


# ---- §4: independent rows --------------------------------------------------------------------------


def rows_tile(mp: PassMapping, tiles: list[ChannelTile], rows: range, chunks: range) -> Tally:
    """One buffer tile on independent rows: the chunks `chunks` (its stream block), per channel tile,
    chunk-major with a barrier per chunk."""
    org = mp.arch.organisation
    bw = org.memory.bandwidth_bytes_per_cycle
    all_chunks = mp.chunk_units()
    tally = Tally()
    for tile in tiles:
        items = [item for work_set in mp.items[tile.index] for item in work_set if item.row in rows]
        for j in chunks:
            works = [w for w in (row_work(mp, item, all_chunks[j]) for item in items) if duration(w) > 0]
            if not works:
                continue  # no dispatched item-chunk: the chunk takes no time and loads nothing
            eps = mp.chunk_entries(all_chunks[j])
            store = eps * mp.vb * tile.width + (tile.width * ceil_div(eps, 8) if mp.two_sided else 0)
            streams = sum(stream_bytes(mp, w) for w in works)
            sums = [partial_sums(mp, w, j, dispatched_parts(mp, w.item, all_chunks)) for w in works]
            psum_write = sum(x[0] for x in sums)
            psum_read = sum(x[1] for x in sums)
            outputs = sum(x[2] for x in sums)
            bc = streams + psum_write + psum_read + outputs + store
            time = org.fd + max(step_rows(works, mp.R, org.dispatch), ceil_div(bc, bw))
            tally.folds.append(time)
            tally.cycles += time
            tally.items += len(works)
            tally.stream_bytes += streams
            tally.store_load_bytes += store
            tally.psum_read_bytes += psum_read
            tally.psum_write_bytes += psum_write
            tally.output_bytes += outputs
            for w in works:
                tally_macs(mp, w, tally)
    return tally
