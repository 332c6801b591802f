"""The cycle-stepping reference simulator: the specification of the timing rules (DESIGN.md §4).

It builds every work item from the masks themselves — enumerating the taps of each position, the
operand bits of each PE — and then advances the PE array one cycle at a time: each PE retires one
entry of its work list per cycle, a row's item ends when all its PEs are done (and, under a
lookahead window, not before ⌈stream length / window⌉ cycles), a work group ends when all its rows
are done plus the fill/drain, and groups reach units by the arch's dispatch policy. Plain Python;
tiny layers only. The fast model (model.py) must give the same compute cycles, tile by tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agos.arch.schema import Arch
from agos.cost.items import tile_widths
from agos.cost.model import pass_operands
from agos.cost.traffic import plan_tiles
from agos.density.masks import LayerMasks


@dataclass
class Item:
    work: list[int]  # entries each active PE must retire
    min_cycles: int  # lookahead bound
    stream_length: int


@dataclass
class ReferenceResult:
    tile_compute: list[int]
    issued_macs: int
    items: int


def _taps_fwd(g, n, p, q, grp):
    for c in range(grp * g.c_per_group, (grp + 1) * g.c_per_group):
        for r in range(g.r):
            for s in range(g.s):
                h = p * g.stride[0] + r * g.dilation[0] - g.padding[0]
                w = q * g.stride[1] + s * g.dilation[1] - g.padding[1]
                if 0 <= h < g.h and 0 <= w < g.w:
                    yield c, h, w


def _taps_bwd_data(g, n, h, w, grp):
    for k in range(grp * g.k_per_group, (grp + 1) * g.k_per_group):
        for r in range(g.r):
            for s in range(g.s):
                ph = h + g.padding[0] - r * g.dilation[0]
                pw = w + g.padding[1] - s * g.dilation[1]
                if ph % g.stride[0] or pw % g.stride[1]:
                    continue  # a hole of the transposed convolution: never work
                p, q = ph // g.stride[0], pw // g.stride[1]
                if 0 <= p < g.p and 0 <= q < g.q:
                    yield k, p, q


def _taps_bwd_weight(g, c, r, s):
    for n in range(g.n):
        for p in range(g.p):
            for q in range(g.q):
                h = p * g.stride[0] + r * g.dilation[0] - g.padding[0]
                w = q * g.stride[1] + s * g.dilation[1] - g.padding[1]
                if 0 <= h < g.h and 0 <= w < g.w:
                    yield n, p, q, h, w


class _Builder:
    """Work items of one pass, enumerated literally from the masks."""

    def __init__(self, pass_: str, masks: LayerMasks, arch: Arch):
        self.pass_, self.m, self.arch = pass_, masks, arch
        self.g = masks.geometry
        self.x = masks.x_nonzero.numpy()
        self.dy = masks.dy_nonzero.numpy()
        self.needed = masks.dx_needed.numpy()
        self.opts = arch.skipping.of(pass_)
        self.look = arch.skipping.lookahead
        self.cols = arch.pe_array.cols

    def positions(self) -> list[tuple]:
        g = self.g
        if self.pass_ == "fwd":
            return [(n, p, q) for n in range(g.n) for p in range(g.p) for q in range(g.q)]
        if self.pass_ == "bwd_data":
            return [(n, h, w) for n in range(g.n) for h in range(g.h) for w in range(g.w)]
        return [(c, r, s) for c in range(g.c_per_group) for r in range(g.r) for s in range(g.s)]

    def channels(self) -> int:
        return self.g.c_per_group if self.pass_ == "bwd_data" else self.g.k_per_group

    def _min_cycles(self, length: int) -> int:
        return math.ceil(length / self.look) if (self.opts.stream and self.look > 0) else 0

    def item(self, grp: int, pos: tuple, pe_channels: list[int]) -> Item:
        """The item of one position for the given PE channels (indices within the group)."""
        g = self.g
        if self.pass_ == "fwd":
            stream = [bool(self.x[pos[0], c, h, w]) for c, h, w in _taps_fwd(g, *pos, grp)]
            own = None
        elif self.pass_ == "bwd_data":
            stream = [bool(self.dy[pos[0], k, p, q]) for k, p, q in _taps_bwd_data(g, *pos, grp)]
            own = None
        else:
            c = grp * g.c_per_group + pos[0]
            taps = list(_taps_bwd_weight(g, c, pos[1], pos[2]))
            stream = [bool(self.x[n, c, h, w]) for n, _, _, h, w in taps]
            own = {
                k: [bool(self.dy[n, grp * g.k_per_group + k, p, q]) for n, p, q, _, _ in taps]
                for k in pe_channels
            }
        work = []
        for k in pe_channels:
            if own is not None and self.opts.pe_operand:
                work.append(sum(1 for sx, sd in zip(stream, own[k], strict=True) if sx and sd))
            elif self.opts.stream:
                work.append(sum(stream))
            else:
                work.append(len(stream))
        return Item(work=work, min_cycles=self._min_cycles(len(stream)), stream_length=len(stream))

    def slots(self, grp: int, tile: int, pos: tuple) -> list[Item]:
        """Items of (group, tile) at one position; for compacted passes `tile` is a slot index."""
        cols, ch = self.cols, self.channels()
        if self.pass_ == "bwd_data" and self.opts.outputs == "compacted":
            n, h, w = pos
            needed = [c for c in range(ch) if self.needed[n, grp * ch + c, h, w]]
            chosen = needed[tile * cols : (tile + 1) * cols]
            return [self.item(grp, pos, chosen)] if chosen else []
        members = list(range(tile * cols, min(ch, (tile + 1) * cols)))
        if self.pass_ == "bwd_data" and self.opts.outputs == "static":
            n, h, w = pos
            members = [c for c in members if self.needed[n, grp * ch + c, h, w]]
            if not members:
                return []
        return [self.item(grp, pos, members)]


def _exists(item: Item) -> bool:
    return any(item.work) or item.min_cycles > 0


def _busy(row: dict) -> bool:
    return row["overhead"] > 0 or any(x > 0 for x in row["left"]) or row["elapsed"] < row["min"]


def _step(row: dict) -> None:
    """One cycle of one row: the fixed overhead first, then every PE retires one entry."""
    if row["overhead"] > 0:
        row["overhead"] -= 1
    elif _busy(row):
        row["left"] = [x - 1 if x > 0 else 0 for x in row["left"]]
        row["elapsed"] += 1


def _run_items(segments: list[list[Item]], arch: Arch) -> int:
    """Cycle-step the array over one tile's items (all rows idle at the start). Work groups take
    consecutive items of one segment (one conv group and channel tile)."""
    sched = arch.scheduling
    size, units = sched.sync_rows, arch.units
    groups = [seg[i : i + size] for seg in segments for i in range(0, len(seg), size)]
    if not groups:
        return 0
    queues: list[list[int]] = [[] for _ in range(units)]  # indices into `groups`
    next_group = 0
    if sched.dispatch == "static":
        for i in range(len(groups)):
            queues[i % units].append(i)
        next_group = len(groups)
    depth = sched.queue_depth

    state: list[dict | None] = [None] * units  # the running group of each unit
    finished = 0
    cycle = 0
    while finished < len(groups):
        if sched.dispatch == "dynamic":  # serve free slots at this cycle boundary, slot-major
            for _round in range(depth):
                for u in range(units):
                    held = len(queues[u]) + (1 if state[u] is not None else 0)
                    if held < depth and next_group < len(groups):
                        queues[u].append(next_group)
                        next_group += 1
        for u in range(units):
            if state[u] is None and queues[u]:
                gi = queues[u].pop(0)
                state[u] = {
                    "rows": [
                        {
                            "left": list(it.work),
                            "elapsed": 0,
                            "min": it.min_cycles,
                            "overhead": sched.item_overhead_cycles,
                        }
                        for it in groups[gi]
                    ],
                    "drain": sched.fill_drain_cycles,
                }
        # one cycle: rows with work advance one entry; a group with none left drains
        for u in range(units):
            st = state[u]
            if st is None:
                continue
            if any(_busy(row) for row in st["rows"]):
                for row in st["rows"]:
                    _step(row)
            else:
                st["drain"] -= 1
            if st["drain"] == 0 and not any(_busy(row) for row in st["rows"]):
                state[u] = None
                finished += 1
        cycle += 1
    return cycle


def reference_pass(pass_: str, masks: LayerMasks, arch: Arch) -> ReferenceResult:
    """Compute cycles of every tile, by stepping cycles; the tiling is the traffic model's."""
    if arch.ideal:
        raise ValueError("the ideal design has no items to step")
    b = _Builder(pass_, masks, arch)
    g = masks.geometry
    if pass_ == "bwd_data" and not masks.needs_bwd_data:
        return ReferenceResult([0], 0, 0)
    compacted = pass_ == "bwd_data" and b.opts.outputs == "compacted"
    ch = b.channels()
    widths = np.array([ch]) if compacted else tile_widths(ch, b.cols)
    positions = b.positions()
    plan = plan_tiles(pass_operands(pass_, masks, arch), widths, len(positions), arch)
    slot_range = range(1)
    if compacted:
        most = max(
            (
                sum(1 for c in range(ch) if b.needed[n, grp * ch + c, h, w])
                for grp in range(g.groups)
                for n, h, w in positions
            ),
            default=0,
        )
        slot_range = range(max(1, math.ceil(most / b.cols)))
    tiles: list[list[list[Item]]] = []  # tile → segments → items
    if plan.order == "positions":
        for grp in range(g.groups):
            for lo, hi in plan.position_chunks:
                segs = [
                    [it for pos in positions[lo:hi] for it in b.slots(grp, t, pos)]
                    for t in (slot_range if compacted else range(widths.size))
                ]
                tiles.append([[it for seg in segs for it in seg]] if compacted else segs)
    else:
        per_group = 1 if compacted else widths.size
        for chunk in plan.channel_chunks:
            segments = []
            for pair in chunk:
                grp, t = divmod(int(pair), per_group)
                tiles_here = slot_range if compacted else [t]
                segments.append(
                    [it for tt in tiles_here for pos in positions for it in b.slots(grp, tt, pos)]
                )
            tiles.append(segments)
    tiles = [[[it for it in seg if _exists(it)] for seg in tile] for tile in tiles]
    issued = sum(sum(it.work) for tile in tiles for seg in tile for it in seg)
    count = sum(len(seg) for tile in tiles for seg in tile)
    if arch.scheduling.tile_barrier:
        return ReferenceResult([_run_items(t, arch) for t in tiles], issued, count)
    return ReferenceResult([_run_items([seg for t in tiles for seg in t], arch)], issued, count)
