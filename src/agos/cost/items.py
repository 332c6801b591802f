"""Work items of one pass for one design (docs/cost-model.md §2.3, §5, §9): per channel tile, the
dispatched items in execution order with their durations, stream and output bytes, and the
design's action counts. Lockstep items carry whole-stream counts; on independent rows every count
is per chunk ([J, items]) and an item-chunk is dispatched where its duration is positive."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba.extending import intrinsic

from agos.arch.schema import Arch
from agos.cost.layout import NeededChannels, PassLayout, Tile, ceil_div
from agos.workload.passes import mapping


@dataclass
class TileItems:
    """The items of one channel tile, in execution order (work set, slot, position)."""

    tile: Tile
    pos: np.ndarray  # work-set-ordered position of each item
    slot: np.ndarray  # compaction slot (0 otherwise)
    set_id: np.ndarray
    row: np.ndarray  # position row (§6)
    channels: np.ndarray  # output channels of the item (tile width, or |S| when compacted)
    d: np.ndarray  # duration per stream block, [J, items] (0: not dispatched)
    length: np.ndarray  # T, [J, items]
    stream_bytes: np.ndarray  # [J, items]
    load: np.ndarray | None  # compacted on rows: store conflicts per item
    # action totals over dispatched items (or item-chunks)
    mac_issued: int
    mac_nonzero: int
    metadata_bits: int

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.d))


def _stream_time(nonzero: np.ndarray, length: np.ndarray, window: int | None) -> np.ndarray:
    return nonzero if window is None else np.maximum(nonzero, ceil_div(length, window))


class SlotSets:
    """The compaction slots of every domain (§2.3), the same for every design on `cols` columns
    with the same slot rule: at each position, the needed channels of the domain cut into slots —
    by rank (slot j holds those of rank [jC, (j+1)C)) or, with `by_store`, by store (slot j holds
    the j-th needed channel of each store c mod C, so no two channels of a slot share a store).
    Per domain, cached for all the designs that compact (and all their stream blockings): the
    items the slots make, their channel sets and their store conflicts."""

    def __init__(self, needed: NeededChannels, set_id: np.ndarray, cols: int, by_store: bool = False):
        self.needed, self.set_id, self.cols, self.by_store = needed, set_id, cols, by_store
        self._slots: dict[Tile, tuple[np.ndarray, ...]] = {}

    def _of(self, tile: Tile) -> tuple[np.ndarray, ...]:
        if tile not in self._slots:
            rows = self.needed.rows[tile.groups[0]].view(np.uint8)  # [pos, C_g]
            if 64 % self.cols == 0:  # lanes are bit positions of 64-bit words: slots by word operations
                words = self.needed.words(tile.groups[0], tile.lo, tile.hi)
                words = words if words is not None else _packed(rows, tile.lo, tile.hi)
                self._slots[tile] = _slot_words(words, self.set_id, self.cols, self.by_store)
            else:
                mask = rows[:, tile.lo : tile.hi]
                self._slots[tile] = _slot_items(mask, self.set_id, self.cols, self.by_store)
        return self._slots[tile]

    def items(self, tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, slot, |S|) of the domain's items in execution order."""
        return self._of(tile)[:3]

    def bitmaps(self, tile: Tile) -> np.ndarray:
        """Each item's channel set S within the domain, as a bitmap of 64-bit words [items, words]."""
        return self._of(tile)[3]

    def loads(self, tile: Tile) -> np.ndarray:
        """Store conflicts of each item's own channel set (§4): its largest lane load."""
        return self._of(tile)[4]


@numba.njit(cache=True)
def _slot_items(mask, set_id, cols, by_store):
    """Compacted items (§2.3) of a domain's needed-channel mask [pos, ch], in execution order:
    work sets in order (`set_id` non-decreasing), within each slot-major, positions ascending.
    Per item: its position, slot j, channel count, channel set (bitmap of words) and largest lane
    load (channel c on lane c mod C). Slots by rank: ⌈m / C⌉ of them, slot j the needed channels
    of rank [jC, (j+1)C); by store: as many as the busiest store's needed channels, slot j the j-th
    needed channel of every store (a lane load of 1).

    Each position's needed channels are listed once (without a branch per channel) and only they
    are visited; lanes come from a table and a slot's bitmap word is built in a register: the
    per-channel divisions and read-modify-writes of a plain loop cost 3x more."""
    n, ch = mask.shape
    lane_of = np.empty(ch, np.int64)
    for c in range(ch):
        lane_of[c] = c % cols
    idx = np.empty(ch, np.int64)  # a position's needed channels, ascending
    count = np.zeros(cols, np.int64)
    nslots = np.zeros(n, np.int64)
    for p in range(n):
        m = 0
        if by_store:
            for c in range(ch):
                idx[m] = c
                m += mask[p, c]
            most = 0
            for r in range(m):
                lane = lane_of[idx[r]]
                count[lane] += 1
                most = max(most, count[lane])
            for r in range(m):
                count[lane_of[idx[r]]] = 0
            nslots[p] = most
        else:
            for c in range(ch):
                m += mask[p, c]
            nslots[p] = (m + cols - 1) // cols
    total = 0
    for p in range(n):
        total += nslots[p]
    pos = np.empty(total, np.int64)
    slot = np.empty(total, np.int64)
    channels = np.zeros(total, np.int64)
    bits = np.zeros((total, (ch + 63) // 64), np.uint64)
    load = np.zeros(total, np.int64)
    most = (ch + cols - 1) // cols + 2
    start = np.zeros(most, np.int64)
    item_of = np.zeros(most, np.int64)
    k = 0
    lo = 0
    while lo < n:
        hi = lo
        while hi < n and set_id[hi] == set_id[lo]:
            hi += 1
        start[:] = 0
        for p in range(lo, hi):
            start[nslots[p]] += 1
        for j in range(most - 2, -1, -1):
            start[j] += start[j + 1]
        for j in range(most - 1):
            k, start[j] = k + start[j + 1], k
        for p in range(lo, hi):
            ns = nslots[p]
            if ns == 0:
                continue
            for j in range(ns):
                item_of[j] = start[j]
                start[j] += 1
                pos[item_of[j]], slot[item_of[j]] = p, j
            m = 0
            for c in range(ch):
                idx[m] = c
                m += mask[p, c]
            if by_store:  # slot j: the j-th needed channel of every lane
                for r in range(m):
                    c = idx[r]
                    lane = lane_of[c]
                    item = item_of[count[lane]]
                    count[lane] += 1
                    bits[item, c >> 6] |= np.uint64(1) << np.uint64(c & 63)
                    channels[item] += 1
                    load[item] = 1
                for r in range(m):
                    count[lane_of[idx[r]]] = 0
                continue
            for j in range(ns):  # slot j: the needed channels of rank [jC, (j+1)C)
                item = item_of[j]
                r0 = j * cols
                r1 = min(m, r0 + cols)
                channels[item] = r1 - r0
                word = idx[r0] >> 6
                acc = np.uint64(0)
                best = 0
                for r in range(r0, r1):
                    c = idx[r]
                    if c >> 6 != word:
                        bits[item, word] |= acc
                        acc = np.uint64(0)
                        word = c >> 6
                    acc |= np.uint64(1) << np.uint64(c & 63)
                    lane = lane_of[c]
                    count[lane] += 1
                    best = max(best, count[lane])
                bits[item, word] |= acc
                load[item] = best
                for r in range(r0, r1):
                    count[lane_of[idx[r]]] = 0
        lo = hi
    return pos, slot, channels, bits, load


@intrinsic
def _popcount(typingctx, x):
    """Set bits of an unsigned integer (LLVM's ctpop: one instruction)."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@numba.njit(inline="always")
def _select(x, k):
    """Bit index of the k-th set bit (from 0) of the 64-bit word x, k < its set bits."""
    at = np.uint64(0)
    for shift in (32, 16, 8, 4, 2, 1):
        below = np.int64(_popcount(x & ((np.uint64(1) << np.uint64(shift)) - np.uint64(1))))
        if k >= below:
            k -= below
            x >>= np.uint64(shift)
            at += np.uint64(shift)
    return at


@numba.njit(inline="always")
def _count_lanes(planes, lanes):
    """Adds one to the bit-sliced count (planes[i]: bit i of each lane's count) of every lane set in
    `lanes`."""
    carry = lanes
    i = 0
    while carry:
        both = planes[i] & carry
        planes[i] ^= carry
        carry = both
        i += 1


@numba.njit(inline="always")
def _busiest(planes, lanes):
    """The largest bit-sliced count among `lanes`; the counts are cleared."""
    candidates = lanes
    most = 0
    for i in range(planes.size - 1, -1, -1):
        with_bit = candidates & planes[i]
        if with_bit:
            candidates = with_bit
            most |= 1 << i
        planes[i] = 0
    return most


@numba.njit(cache=True)
def _packed(rows, lo, hi):
    """The needed-channel mask of a domain, channels [lo, hi) of a group's rows [pos, C_g] (0/1
    bytes), as 64-bit words [pos, ⌈(hi − lo) / 64⌉]: channel lo + c at bit c & 63 of word c >> 6,
    the layout of the slots' bitmaps."""
    n = rows.shape[0]
    ch = hi - lo
    nw = (ch + 63) // 64
    out = np.zeros((n, nw), np.uint64)
    for p in range(n):
        for w in range(nw):
            word = np.uint64(0)
            for b in range(min(64, ch - w * 64)):
                word |= np.uint64(rows[p, lo + w * 64 + b]) << np.uint64(b)
            out[p, w] = word
    return out


@numba.njit(cache=True)
def _slot_words(words, set_id, cols, by_store):
    """`_slot_items` for C dividing 64, on the needed channels packed in words (`_packed`): channel
    c's lane c mod C is then its bit position mod C, so a word holds 64 / C chunks of one bit per
    lane. A slot by rank takes the set bits of its ranks, cut where needed at the k-th set bit, and
    its load is the largest of the lanes' counts, kept bit-sliced (a few word operations per chunk,
    not a table look-up and a counter per channel); slots by store deal each chunk's lanes to the
    slot of their count so far. The same items, bitmaps and loads as `_slot_items`, 3-5x faster."""
    n, nw = words.shape
    chunks = 64 // cols
    lanes = ~np.uint64(0) if cols == 64 else (np.uint64(1) << np.uint64(cols)) - np.uint64(1)
    depth = 1
    while (1 << depth) <= nw * chunks:  # a lane's count is at most the chunks it appears in
        depth += 1
    planes = np.zeros(depth, np.uint64)
    nslots = np.zeros(n, np.int64)
    for p in range(n):
        if by_store:
            for w in range(nw):
                for k in range(chunks):
                    chunk = (words[p, w] >> np.uint64(k * cols)) & lanes
                    if chunk:
                        _count_lanes(planes, chunk)
            nslots[p] = _busiest(planes, lanes)
        else:
            m = 0
            for w in range(nw):
                m += np.int64(_popcount(words[p, w]))
            nslots[p] = (m + cols - 1) // cols
    total = 0
    for p in range(n):
        total += nslots[p]
    pos = np.empty(total, np.int64)
    slot = np.empty(total, np.int64)
    channels = np.zeros(total, np.int64)
    bits = np.zeros((total, nw), np.uint64)
    load = np.zeros(total, np.int64)
    most = (nw * chunks if by_store else (64 * nw + cols - 1) // cols) + 2
    start = np.zeros(most, np.int64)
    item_of = np.zeros(most, np.int64)
    k = 0
    lo = 0
    while lo < n:  # as `_slot_items`: work sets in order, slot-major within each
        hi = lo
        while hi < n and set_id[hi] == set_id[lo]:
            hi += 1
        start[:] = 0
        for p in range(lo, hi):
            start[nslots[p]] += 1
        for j in range(most - 2, -1, -1):
            start[j] += start[j + 1]
        for j in range(most - 1):
            k, start[j] = k + start[j + 1], k
        for p in range(lo, hi):
            ns = nslots[p]
            if ns == 0:
                continue
            for j in range(ns):
                item_of[j] = start[j]
                start[j] += 1
                pos[item_of[j]], slot[item_of[j]] = p, j
            if by_store:  # slot j: the j-th needed channel of every lane
                for w in range(nw):
                    for c in range(chunks):
                        chunk = (words[p, w] >> np.uint64(c * cols)) & lanes
                        if not chunk:
                            continue
                        for j in range(ns):  # the lanes counted j times so far take slot j
                            equal = lanes
                            for i in range(depth):
                                equal &= planes[i] if (j >> i) & 1 else ~planes[i]
                            dealt = chunk & equal
                            if dealt:
                                item = item_of[j]
                                bits[item, w] |= dealt << np.uint64(c * cols)
                                channels[item] += np.int64(_popcount(dealt))
                                load[item] = 1
                        _count_lanes(planes, chunk)
                planes[:] = 0
                continue
            j = 0  # slot j: the needed channels of rank [jC, (j+1)C)
            item = item_of[0]
            room = cols
            for w in range(nw):
                word = words[p, w]
                while word:
                    taken = np.int64(_popcount(word))
                    if taken <= room:
                        part = word
                        word = np.uint64(0)
                    else:
                        below = (np.uint64(1) << _select(word, room)) - np.uint64(1)
                        part = word & below
                        word &= ~below
                        taken = room
                    bits[item, w] |= part
                    for c in range(chunks):
                        chunk = (part >> np.uint64(c * cols)) & lanes
                        if chunk:
                            _count_lanes(planes, chunk)
                    room -= taken
                    if room == 0:
                        channels[item] = cols
                        load[item] = _busiest(planes, lanes)
                        j += 1
                        room = cols
                        if j < ns:
                            item = item_of[j]
            if room < cols:
                channels[item] = cols - room
                load[item] = _busiest(planes, lanes)
        lo = hi
    return pos, slot, channels, bits, load


def lane_loads(members: np.ndarray, cols: int) -> np.ndarray:
    """Largest number of channels of a set on one lane (channel c on lane c mod C), for each row
    of a bool [sets, channels] array."""
    n, cg = members.shape
    lanes = ceil_div(cg, cols)
    pad = lanes * cols - cg
    m = np.concatenate([members, np.zeros((n, pad), bool)], axis=1) if pad else members
    return m.reshape(n, lanes, cols).sum(axis=1, dtype=np.int64).max(axis=1, initial=0)


@dataclass(frozen=True)
class _Walk:
    """Items at every position of one set of groups: their durations, stream bytes and the sums their
    totals need — the same for every tile on those groups whatever its width, and for every design
    with the same stream features, so made once per layer and stream blocking."""

    d: np.ndarray  # [J, pos]
    stream_bytes: np.ndarray  # [J, pos]
    walked: int  # Σ entries walked, over groups, blocks and positions
    nonzero: int  # Σ s_j over groups, blocks and positions (one-sided passes)
    dispatched_length: int  # Σ T_j over the dispatched (block, position)


def _walk(s_items: np.ndarray, length: np.ndarray, stream: bool, window: int | None, vb: int):
    """Per (block, item): the slowest group's walk and the stream bytes; and each group's walked
    entries [J, |Γ|, items]."""
    if stream:
        per_group = _stream_time(s_items, length[:, None, :], window)
        walked = s_items
        # per group, values + bitmap, or the plain values when shorter (a format bit per item)
        packed = s_items * vb + ceil_div(length, 8)[:, None, :]
        sbytes = np.minimum(packed, length[:, None, :] * vb).sum(axis=1)
    else:
        per_group = np.broadcast_to(length[:, None, :], s_items.shape)
        walked = per_group
        sbytes = s_items.shape[1] * length * vb
    return per_group.max(axis=1), sbytes, walked


def _join_time(s_items: np.ndarray, length: np.ndarray, bw: int, window: int | None) -> np.ndarray:
    """A two-sided join's walk: bw stream entries broadcast per cycle, at least ⌈T / L⌉ cycles (with
    more than one entry per cycle the slowest PE's join, `both_max`, bounds it too: the caller's)."""
    d = ceil_div(s_items.max(axis=1), bw)
    if window is not None:
        d = np.maximum(d, ceil_div(length, window))
    return d


def build_items(
    pass_: str,
    lay: PassLayout,
    tiles: list[Tile],
    arch: Arch,
    needed: NeededChannels | None,
    counts: tuple[np.ndarray, np.ndarray],
    both_totals: np.ndarray | None,
    both_max: np.ndarray | None,
    sets: SlotSets | None = None,
    per_store_loads: bool = False,
    memo: tuple[dict, object] | None = None,
) -> list[TileItems]:
    """Items of every channel tile. `counts` is (T_j [J, pos], s_j [J, G, pos]) per stream block,
    in work-set order; BWD-W needs `both_totals`, the two-sided products of each tile's channels
    over every position [tiles] (BWD-W skips no outputs: each position is an item), and, when a
    row broadcasts more than one entry per cycle, `both_max`, their per-block maximum over the
    tile's channels [J, tiles, pos]. `per_store_loads`: compacted items pay store conflicts
    (independent rows, §4). `memo`: (a layer's dictionary, what identifies `counts`), which keeps
    the walks of items at every position for the layer's other tiles and designs."""
    m = mapping(pass_)
    opts = arch.skipping.of(pass_)
    window = arch.skipping.window if opts.stream else None
    vb = arch.precision.value_bytes
    cols = arch.pe_array.cols
    bw = arch.skipping.broadcast_width
    join = m.two_sided and opts.pe_operand
    compacted = m.output_skip and opts.outputs == "compacted" and lay.ch >= cols
    static = m.output_skip and (opts.outputs == "static" or (opts.outputs == "compacted" and not compacted))
    length_all, nonzero_all = counts
    if compacted and sets is None:
        sets = SlotSets(needed, lay.set_id, cols, not arch.lockstep and arch.skipping.lanes == "matched")
    channel_specific = static or compacted or (m.two_sided and (opts.pe_operand or arch.skipping.zero_gating))
    every = not (compacted or static)  # all positions, in order: no gather needed
    cache, counts_key = memo if memo is not None else ({}, ())
    out: list[TileItems] = []
    seen: dict[tuple, TileItems] = {}
    for ti, tile in enumerate(tiles):
        key = (tile.groups, tile.lo, tile.hi) if channel_specific else (tile.groups, tile.width)
        if key in seen:  # identical work on identical groups: share the items
            out.append(seen[key])
            continue
        gl = list(tile.groups)
        s_tile = nonzero_all[:, gl, :] if len(gl) < nonzero_all.shape[1] else nonzero_all  # [J', |Γ|, pos]
        n_pos = lay.positions
        if every and not (join and bw > 1):  # the walk of the tile's groups, shared
            features = (opts.stream, window, vb, join, bw, m.two_sided)
            walk = _every_walk(cache, (counts_key, tile.groups), s_tile, length_all, *features)
            out.append(_every_items(cache, walk, tile, ti, lay, length_all, m, opts, both_totals))
            seen[key] = out[-1]
            continue
        # which positions (and slots) have items
        if compacted:
            pos, slot, channels = sets.items(tile)
            computing = channels[None, :]  # [1 group, items]
        else:
            if static:
                per_group_needed = np.stack([needed.count(gr, tile.lo, tile.hi) for gr in gl])
                exists = per_group_needed.sum(axis=0) > 0
                pos = np.flatnonzero(exists)
                computing = per_group_needed[:, pos]
            else:
                pos = np.arange(n_pos, dtype=np.int64)
                computing = np.full((len(gl), 1), tile.per_group, np.int64)
            slot = np.zeros(pos.size, np.int64)
            channels = np.full(pos.size, tile.width, np.int64)
        length = length_all if every else length_all[:, pos]  # [J', items]
        s_items = s_tile if every else s_tile[:, :, pos]  # [J', |Γ|, items]
        d, sbytes, walked = _walk(s_items, length, opts.stream, window, vb)
        if m.two_sided:  # a product is nonzero where the PE's own operand is nonzero too
            nonzero_total = int(both_totals[ti])
            if opts.pe_operand:
                d = _join_time(s_items, length, bw, window)
                if bw > 1:  # with one entry per cycle the join never outpaces the broadcast (b ≤ s)
                    d = np.maximum(d, both_max[:, ti][:, pos])
                issued_total = nonzero_total  # every product with both operands nonzero, once
            else:
                issued_total = int((walked * computing[None]).sum())
        else:
            issued_total = int((walked * computing[None]).sum())
            nonzero_total = int((s_items * computing[None]).sum())
        load = None
        if compacted and per_store_loads:  # two channels on one store serialise: §4
            load = ceil_div(sets.loads(tile), arch.skipping.lane_ports or 1)
            d = np.maximum(d, walked.max(axis=1) * load[None, :])
        dispatched = d > 0
        meta = 0
        if opts.stream:
            meta += int((length * len(gl) * dispatched).sum())
        if join:  # each PE reads its own operand's bitmap
            meta += int((length * tile.width * dispatched).sum())
        if compacted or static:
            meta += int(tile.width * n_pos)
        c = np.ascontiguousarray  # one layout for the schedule kernels (gathers may be column-major)
        out.append(
            TileItems(
                tile=tile,
                pos=pos,
                slot=slot,
                set_id=lay.set_id[pos],
                row=lay.row[pos],
                channels=channels,
                d=c(d),
                length=c(length),
                stream_bytes=c(sbytes),
                load=load,
                mac_issued=issued_total,
                mac_nonzero=nonzero_total,
                metadata_bits=meta,
            )
        )
        seen[key] = out[-1]
    return out


def _every_walk(cache: dict, where: tuple, s_tile, length, stream, window, vb, join, bw, two_sided) -> _Walk:
    """`_walk` (or the join's) of a tile's groups at every position, with the sums of its totals;
    kept in `cache` by `where` (the counts and the groups) and the features it depends on (the join
    here has bw = 1: a wider one also waits for each tile's slowest PE)."""
    key = ("walk", where, stream, window, vb, join)
    if key not in cache:
        d, sbytes, walked = _walk(s_tile, length, stream, window, vb)
        if join:
            d = _join_time(s_tile, length, bw, window)
        nonzero = 0 if two_sided else int(s_tile.sum())
        c = np.ascontiguousarray  # one layout for the schedule kernels
        cache[key] = _Walk(c(d), c(sbytes), int(walked.sum()), nonzero, int((length * (d > 0)).sum()))
    return cache[key]


def _every_items(cache: dict, walk: _Walk, tile: Tile, ti: int, lay: PassLayout, length, m, opts, totals):
    """A tile's items at every position of the pass, from its groups' walk: each walked entry is
    computed by the tile's channels of its group, so the totals are the walk's sums times them."""
    n = lay.positions
    if ("index", lay.pass_) not in cache:
        cache[("index", lay.pass_)] = (np.arange(n, dtype=np.int64), np.zeros(n, np.int64))
    pos, slot = cache[("index", lay.pass_)]
    if ("channels", lay.pass_, tile.width) not in cache:
        cache[("channels", lay.pass_, tile.width)] = np.full(n, tile.width, np.int64)
    if m.two_sided:  # a product is nonzero where the PE's own operand is nonzero too
        nonzero_total = int(totals[ti])
        issued_total = nonzero_total if opts.pe_operand else tile.per_group * walk.walked
    else:
        issued_total = tile.per_group * walk.walked
        nonzero_total = tile.per_group * walk.nonzero
    meta = 0
    if opts.stream:
        meta += len(tile.groups) * walk.dispatched_length
    if m.two_sided and opts.pe_operand:  # each PE reads its own operand's bitmap
        meta += tile.width * walk.dispatched_length
    return TileItems(
        tile=tile,
        pos=pos,
        slot=slot,
        set_id=lay.set_id,
        row=lay.row,
        channels=cache[("channels", lay.pass_, tile.width)],
        d=walk.d,
        length=length,
        stream_bytes=walk.stream_bytes,
        load=None,
        mac_issued=issued_total,
        mac_nonzero=nonzero_total,
        metadata_bits=meta,
    )
