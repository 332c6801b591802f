"""Work items of one pass for one design (docs/cost-model.md §2.3, §5, §9): per channel tile, the
dispatched items in execution order with their durations, stream and output bytes, and the
design's action counts. Lockstep items carry whole-stream counts; on independent rows every count
is per chunk ([J, items]) and an item-chunk is dispatched where its duration is positive."""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from agos.arch.schema import Arch
from agos.cost.layout import NeededChannels, PassLayout, Tile, ceil_div


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
    """The channel set of every compaction slot (§2.3): at each position, the needed channels of
    the domain in ascending order (a CSR list); slot j holds those of rank [jC, (j+1)C)."""

    def __init__(self, needed: NeededChannels, cols: int):
        self.needed, self.cols = needed, cols
        self._csr: dict[Tile, tuple[np.ndarray, np.ndarray]] = {}

    def csr(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """(indptr [pos + 1], channel indices within the domain) of the needed channels."""
        if tile not in self._csr:
            mask = self.needed.rows[tile.groups[0], :, tile.lo : tile.hi]  # [pos, ch]
            self._csr[tile] = _csr(mask.view(np.uint8))
        return self._csr[tile]

    def loads(self, tile: Tile, pos: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Store conflicts of each item's own channel set (§4): its largest lane load."""
        indptr, indices = self.csr(tile)
        return _item_loads(indptr, indices, pos, slot, self.cols)


@numba.njit(cache=True)
def _csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, ch = mask.shape
    indptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        c = 0
        for j in range(ch):
            c += mask[i, j]
        indptr[i + 1] = indptr[i] + c
    indices = np.empty(indptr[n], np.int32)
    k = 0
    for i in range(n):
        for j in range(ch):
            if mask[i, j]:
                indices[k] = j
                k += 1
    return indptr, indices


@numba.njit(cache=True)
def _item_loads(indptr, indices, pos, slot, cols):
    out = np.zeros(pos.size, np.int64)
    lanes = np.zeros(cols, np.int64)
    for i in range(pos.size):
        lo = indptr[pos[i]] + slot[i] * cols
        hi = min(indptr[pos[i] + 1], lo + cols)
        lanes[:] = 0
        for c in indices[lo:hi]:
            lanes[c % cols] += 1
        out[i] = lanes.max()
    return out


def lane_loads(members: np.ndarray, cols: int) -> np.ndarray:
    """Largest number of channels of a set on one lane (channel c on lane c mod C), for each row
    of a bool [sets, channels] array."""
    n, cg = members.shape
    lanes = ceil_div(cg, cols)
    pad = lanes * cols - cg
    m = np.concatenate([members, np.zeros((n, pad), bool)], axis=1) if pad else members
    return m.reshape(n, lanes, cols).sum(axis=1, dtype=np.int64).max(axis=1, initial=0)


def build_items(
    pass_: str,
    lay: PassLayout,
    tiles: list[Tile],
    arch: Arch,
    needed: NeededChannels | None,
    counts: tuple[np.ndarray, np.ndarray],
    both_sum: np.ndarray | None,
    both_max: np.ndarray | None,
    sets: SlotSets | None = None,
    per_store_loads: bool = False,
) -> list[TileItems]:
    """Items of every channel tile. `counts` is (T_j [J, pos], s_j [J, G, pos]) per stream block,
    in work-set order; BWD-W needs `both_sum`, the two-sided products over each tile's channels
    [tiles, pos], and, when a row broadcasts more than one entry per cycle, `both_max`, their
    per-block maximum over the tile's channels [J, tiles, pos]. `per_store_loads`: compacted items
    pay store conflicts (independent rows, §4)."""
    opts = arch.skipping.of(pass_)
    window = arch.skipping.window if opts.stream else None
    vb = arch.precision.value_bytes
    cols = arch.pe_array.cols
    compacted = pass_ == "bwd_data" and opts.outputs == "compacted" and lay.ch >= cols
    static = pass_ == "bwd_data" and (opts.outputs == "static" or (opts.outputs == "compacted" and not compacted))
    length_all, nonzero_all = counts
    if compacted and sets is None:
        sets = SlotSets(needed, cols)
    channel_specific = static or compacted or (pass_ == "bwd_weight" and (opts.pe_operand or arch.skipping.zero_gating))
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
        # which positions (and slots) have items
        if compacted:
            m = needed.count(tile.groups[0], tile.lo, tile.hi)
            slots = int(ceil_div(int(m.max(initial=0)), cols))
            pos_list, slot_list, chan_list = [], [], []
            for ws in np.unique(lay.set_id):
                in_set = np.flatnonzero(lay.set_id == ws)
                for j in range(slots):
                    sel = in_set[m[in_set] > j * cols]
                    pos_list.append(sel)
                    slot_list.append(np.full(sel.size, j, np.int64))
                    chan_list.append(np.minimum(cols, m[sel] - j * cols))
            pos = np.concatenate(pos_list) if pos_list else np.zeros(0, np.int64)
            slot = np.concatenate(slot_list) if slot_list else np.zeros(0, np.int64)
            channels = np.concatenate(chan_list) if chan_list else np.zeros(0, np.int64)
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
        every = not (compacted or static)  # all positions, in order: no gather needed
        length = length_all if every else length_all[:, pos]  # [J', items]
        s_items = s_tile if every else s_tile[:, :, pos]  # [J', |Γ|, items]
        if opts.stream:
            per_group = _stream_time(s_items, length[:, None, :], window)
            walked = s_items
            sbytes = (s_items * vb).sum(axis=1) + len(gl) * ceil_div(length, 8)
        else:
            per_group = np.broadcast_to(length[:, None, :], s_items.shape)
            walked = per_group
            sbytes = len(gl) * length * vb
        d = per_group.max(axis=1)
        if pass_ == "bwd_weight":
            nonzero_total = int(both_sum[ti, pos].sum())
            if opts.pe_operand:
                bw = arch.skipping.broadcast_width
                d = ceil_div(s_items.max(axis=1), bw)
                if bw > 1:  # with one entry per cycle the join never outpaces the broadcast (b ≤ s)
                    d = np.maximum(d, both_max[:, ti][:, pos])
                if window is not None:
                    d = np.maximum(d, ceil_div(length, window))
                issued_total = nonzero_total  # every product with both operands nonzero, once
            else:
                issued_total = int((walked * computing[None]).sum())
        else:
            issued_total = int((walked * computing[None]).sum())
            nonzero_total = int((s_items * computing[None]).sum())
        load = None
        if compacted and per_store_loads:  # two channels on one store serialise: §4
            load = sets.loads(tile, pos, slot)
            d = np.maximum(d, walked.max(axis=1) * load[None, :])
        dispatched = d > 0
        meta = 0
        if opts.stream:
            meta += int((length * len(gl) * dispatched).sum())
        if pass_ == "bwd_weight" and opts.pe_operand:
            meta += int((length * tile.width * dispatched).sum())
        if compacted or static:
            meta += int(tile.width * n_pos)
        out.append(
            TileItems(
                tile=tile,
                pos=pos,
                slot=slot,
                set_id=lay.set_id[pos],
                row=lay.row[pos],
                channels=channels,
                d=d,
                length=length,
                stream_bytes=sbytes,
                load=load,
                mac_issued=issued_total,
                mac_nonzero=nonzero_total,
                metadata_bits=meta,
            )
        )
        seen[key] = out[-1]
    return out
