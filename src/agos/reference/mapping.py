"""docs/cost-model.md §2, literally: positions, streams, channel tiles, work sets and items.

Everything here is enumerated from the geometry and the mask bits: the taps of every position
(valid taps only; BWD-D in scatter form, so stride holes and padding never appear), the channel
tiles of §2.1, the work sets of §2.2 and the items of §2.3. Nothing is counted in closed form.

The per-pass mapping (what a position, a channel and a stream are in each pass) is written out here
again on purpose, not taken from the fast model's table (agos.workload.passes.MAPPINGS): the
reference must share no code with what it checks (DESIGN.md §4, Validation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import NamedTuple

from agos.arch.schema import Arch, PassSkipping
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks


class ReferenceModelError(ValueError):
    """A layer the rules cannot map (a chunk of 0 entries, no fitting buffer tiling)."""


def ceil_div(a, b):
    """⌈a / b⌉ of an exact rational (ints or Fractions)."""
    return -(-a // b)


def split(count: int, parts: int, i: int) -> range:
    """The split rule of §6: block i of `parts` is [⌊i·count/parts⌋, ⌊(i+1)·count/parts⌋)."""
    return range(i * count // parts, (i + 1) * count // parts)


class Tap(NamedTuple):
    """One entry of a position's stream, in enumeration order."""

    outer: int  # the stream's outermost index, local to the group: c (FWD), k (BWD-D), n (BWD-W)
    row: int  # BWD-W: the output row p of the entry (row-block chunks, §4); 0 otherwise
    nonzero: bool  # the stream value is nonzero: X (FWD, BWD-W) or dY (BWD-D)
    operand: tuple[bool, ...] | None  # BWD-W: dY[n, k, p, q] ≠ 0 for each local k; None otherwise


@dataclass(frozen=True)
class ChannelTile:
    """§2.1: a tile of channels, one PE column per (group, channel) pair."""

    index: int
    groups: tuple[int, ...]
    channels: tuple[int, ...]  # the local channels each of its groups brings (same for every group)
    compacted: bool = False  # §2.3 compacted outputs (ch ≥ C): one tile per group, items carry sets

    @property
    def width(self) -> int:
        return len(self.groups) * len(self.channels)


@dataclass
class Item:
    """§2.3: one position × one slot of a channel tile; it occupies one PE row."""

    tile: ChannelTile
    work_set: int
    position: tuple[int, int, int]
    row: int  # the position row of §6 (FWD (n, p), BWD-D (n, h), BWD-W c)
    computing: dict[int, tuple[int, ...]]  # group → the local channels that compute (§9)
    width: int  # its channels: the tile width, or |S| when compacted (§5)
    channel_set: tuple[int, ...] | None = None  # compacted: the slot's channel set S
    slot: int = 0

    def columns(self) -> list[tuple[int, int]]:
        """The PE columns the item occupies, as (group, local channel): all the tile's columns,
        masked ones included (they walk the row's stream idle), or the slot's set when compacted."""
        if self.channel_set is not None:
            return [(self.tile.groups[0], c) for c in self.channel_set]
        return [(g, c) for g in self.tile.groups for c in self.tile.channels]


@dataclass
class PassMapping:
    """The per-pass mapping of one layer onto an R × C array (§2)."""

    pass_: str
    masks: LayerMasks
    arch: Arch
    geometry: LayerGeometry = field(init=False)
    opts: PassSkipping = field(init=False)

    def __post_init__(self) -> None:
        g = self.geometry = self.masks.geometry
        self.opts = self.arch.skipping.of(self.pass_)
        self.R = self.arch.organisation.pe_array.rows
        self.C = self.arch.organisation.pe_array.cols
        self.vb = self.arch.organisation.precision.value_bytes
        self.ab = self.arch.organisation.precision.accumulate_bytes
        self.L = self.arch.skipping.window  # None: unbounded
        self.Bw = self.arch.skipping.broadcast_width
        self.G = g.groups
        self.Cg, self.Kg = g.c_per_group, g.k_per_group
        self.rows = self.arch.organisation.sync == "independent"
        self.stream_skip = self.opts.stream
        self.two_sided = self.opts.pe_operand
        # channels per group of the pass (one PE column each)
        self.ch = self.Cg if self.pass_ == "bwd_data" else self.Kg
        # §2.3: compaction is active only with ch ≥ C; with ch < C compacted behaves as static
        self.compacted = self.opts.outputs == "compacted" and self.ch >= self.C
        self.static = self.opts.outputs == "static" or (
            self.opts.outputs == "compacted" and not self.compacted
        )
        # the mask bits, as nested lists [n][c][h][w]
        self.x = self.masks.x_nonzero.tolist()
        self.dy = self.masks.dy_nonzero.tolist()
        self.needed = self.masks.dx_needed.tolist()
        self.positions = self._positions()
        self.position_rows = {"fwd": g.n * g.p, "bwd_data": g.n * g.h, "bwd_weight": self.Cg}[self.pass_]
        self._streams: dict[tuple[int, tuple[int, int, int]], list[Tap]] = {}
        self.tiles = self.channel_tiles(compacted=self.compacted)
        self.items = [self._items_of(tile) for tile in self.tiles]
        self.memo: dict = {}  # the stepped work of items and folds, shared by the candidate tilings

    # ---- §2: positions and their streams -------------------------------------------------------

    def _positions(self) -> list[tuple[tuple[int, int, int], int, int]]:
        """(position, position row, work set) in work-set order, each work set in raster order."""
        g = self.geometry
        if self.pass_ == "fwd":
            return [((n, p, q), n * g.p + p, 0) for n in range(g.n) for p in range(g.p) for q in range(g.q)]
        if self.pass_ == "bwd_weight":
            return [((c, r, s), c, 0) for c in range(self.Cg) for r in range(g.r) for s in range(g.s)]
        # BWD-D: one work set per stride phase (φ_h, φ_w), phases in raster order (§2.2)
        (sh, sw), (ph, pw) = g.stride, g.padding
        out = []
        for phi_h in range(sh):
            for phi_w in range(sw):
                for n in range(g.n):
                    for h in range(g.h):
                        for w in range(g.w):
                            if (h + ph) % sh == phi_h and (w + pw) % sw == phi_w:
                                out.append(((n, h, w), n * g.h + h, phi_h * sw + phi_w))
        return out

    def stream(self, group: int, position: tuple[int, int, int]) -> list[Tap]:
        """The stream of a position for one group: its valid taps in enumeration order (§2)."""
        key = (group, position)
        if key not in self._streams:
            self._streams[key] = getattr(self, f"_stream_{self.pass_}")(group, *position)
        return self._streams[key]

    def _stream_fwd(self, grp: int, n: int, p: int, q: int) -> list[Tap]:
        """X taps (c, r, s) of output pixel (n, p, q), c in the group."""
        g = self.geometry
        (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
        taps = []
        for c_l in range(self.Cg):
            xc = self.x[n][grp * self.Cg + c_l]
            for r in range(g.r):
                h = p * sh + r * dh - ph
                if not 0 <= h < g.h:
                    continue  # padding: never work
                for s in range(g.s):
                    w = q * sw + s * dw - pw
                    if 0 <= w < g.w:
                        taps.append(Tap(c_l, 0, xc[h][w], None))
        return taps

    def _stream_bwd_data(self, grp: int, n: int, h: int, w: int) -> list[Tap]:
        """dY taps (k, r, s) that reach input pixel (n, h, w) in scatter form: h = p·S + r·D − pad."""
        g = self.geometry
        (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
        taps = []
        for k_l in range(self.Kg):
            dyk = self.dy[n][grp * self.Kg + k_l]
            for r in range(g.r):
                num_h = h + ph - r * dh
                if num_h % sh:
                    continue  # a stride hole: never work
                p = num_h // sh
                if not 0 <= p < g.p:
                    continue
                for s in range(g.s):
                    num_w = w + pw - s * dw
                    if num_w % sw:
                        continue
                    q = num_w // sw
                    if 0 <= q < g.q:
                        taps.append(Tap(k_l, 0, dyk[p][q], None))
        return taps

    def _stream_bwd_weight(self, grp: int, c_l: int, r: int, s: int) -> list[Tap]:
        """X at weight tap (c, r, s) over the valid output pixels (n, p, q); each PE's operand is its
        own dY[n, k, p, q]."""
        g = self.geometry
        (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
        ks = [grp * self.Kg + k_l for k_l in range(self.Kg)]
        taps = []
        for n in range(g.n):
            xc = self.x[n][grp * self.Cg + c_l]
            dyn = self.dy[n]
            for p in range(g.p):
                h = p * sh + r * dh - ph
                if not 0 <= h < g.h:
                    continue
                for q in range(g.q):
                    w = q * sw + s * dw - pw
                    if 0 <= w < g.w:
                        taps.append(Tap(n, p, xc[h][w], tuple(dyn[k][p][q] for k in ks)))
        return taps

    # ---- §6: stream units ------------------------------------------------------------------------

    @property
    def units(self) -> int:
        """U: units of the stream's outermost index per group: C_g (FWD), K_g (BWD-D), N·P (BWD-W)."""
        g = self.geometry
        return {"fwd": self.Cg, "bwd_data": self.Kg, "bwd_weight": g.n * g.p}[self.pass_]

    def unit_of(self, tap: Tap) -> int:
        """The unit of an entry: input channel (FWD), output channel (BWD-D), output row n·P + p (BWD-W)."""
        return tap.outer * self.geometry.p + tap.row if self.pass_ == "bwd_weight" else tap.outer

    def stream_units(self, group: int, position: tuple[int, int, int]) -> list[int]:
        """The unit of every entry of a stream, in enumeration order (nondecreasing)."""
        key = ("units", group, position)
        if key not in self.memo:
            self.memo[key] = [self.unit_of(t) for t in self.stream(group, position)]
        return self.memo[key]

    def needed_channels(self, group: int, position: tuple[int, int, int]) -> list[int]:
        """BWD-D: the needed dX channels of a position within its group, ascending (m = its length)."""
        n, h, w = position
        return [c_l for c_l in range(self.Cg) if self.needed[n][group * self.Cg + c_l][h][w]]

    # ---- §2.1: channel tiles -------------------------------------------------------------------

    def channel_tiles(self, compacted: bool) -> list[ChannelTile]:
        ch, C, G = self.ch, self.C, self.G
        tiles: list[ChannelTile] = []
        if compacted:  # §2.3: tiles are replaced by one tile per compaction domain
            for grp in range(G):
                for lo, hi in self.compaction_domains():
                    tiles.append(ChannelTile(len(tiles), (grp,), tuple(range(lo, hi)), compacted=True))
        elif ch >= C:  # ⌈ch / C⌉ tiles of C channels per group, group-major
            for grp in range(G):
                for start in range(0, ch, C):
                    tiles.append(ChannelTile(len(tiles), (grp,), tuple(range(start, min(ch, start + C)))))
        else:  # P = ⌊C / ch⌋ groups packed side by side
            packed = C // ch
            for start in range(0, G, packed):
                groups = tuple(range(start, min(G, start + packed)))
                tiles.append(ChannelTile(len(tiles), groups, tuple(range(ch))))
        return tiles

    def compaction_domains(self) -> list[tuple[int, int]]:
        """§2.3: a group's channels cut into the fewest runs of whole C-channel tiles (the split rule
        of §6), at least ⌈tiles / max(1, ⌊domain / C⌋)⌉ of them, whose share of B (the weights W, over
        all C input channels) is at most Cap / 2; runs of single tiles when no cut satisfies it.
        Returns the runs as [lo, hi) local channels."""
        g, mem = self.geometry, self.arch.organisation.memory
        cap = Fraction(mem.global_buffer_bytes, 2 if mem.double_buffering else 1)
        weight_bytes = g.k * self.Cg * g.r * g.s * self.vb
        n_tiles = ceil_div(self.ch, self.C)
        most = max(1, self.arch.skipping.compaction_domain // self.C)  # C-channel tiles a domain may span
        for runs in range(ceil_div(n_tiles, most), n_tiles + 1):
            spans = []
            for r in range(runs):
                tiles = split(n_tiles, runs, r)
                spans.append((tiles.start * self.C, min(self.ch, tiles.stop * self.C)))
            if all(ceil_div((hi - lo) * weight_bytes, g.c) <= cap / 2 for lo, hi in spans):
                break
        return spans

    # ---- §2.2, §2.3: work sets and items -------------------------------------------------------

    def _items_of(self, tile: ChannelTile) -> list[list[Item]]:
        """The tile's items per work set (work sets in order); items that do not exist are absent."""
        sets: dict[int, list[tuple[tuple[int, int, int], int]]] = {}
        for position, row, ws in self.positions:
            sets.setdefault(ws, []).append((position, row))
        out = []
        for ws in sorted(sets):
            items: list[Item] = []
            if tile.compacted:
                grp = tile.groups[0]
                slots = {}
                for position, row in sets[ws]:
                    need = [c for c in self.needed_channels(grp, position) if c in tile.channels]
                    if self.arch.skipping.lanes == "matched":
                        # slot j: the j-th needed channel of every store (channel c lives in store c mod C)
                        by_store: dict[int, list[int]] = {}
                        for c in need:
                            by_store.setdefault(c % self.C, []).append(c)
                        depth = max((len(v) for v in by_store.values()), default=0)
                        slots[position, row] = [
                            tuple(sorted(v[j] for v in by_store.values() if len(v) > j)) for j in range(depth)
                        ]
                    else:  # slot j: the needed channels of rank [jC, (j+1)C)
                        cuts = range(0, len(need), self.C)
                        slots[position, row] = [tuple(need[j : j + self.C]) for j in cuts]
                most = max((len(v) for v in slots.values()), default=0)
                for j in range(most):  # slot-major, then position
                    for (position, row), cut in slots.items():
                        if j < len(cut):
                            items.append(Item(tile, ws, position, row, {grp: cut[j]}, len(cut[j]), cut[j], j))
            else:
                for position, row in sets[ws]:
                    if self.static:
                        computing = {
                            grp: tuple(c for c in tile.channels if c in self.needed_channels(grp, position))
                            for grp in tile.groups
                        }
                        if not any(computing.values()):
                            continue  # no channel of the tile is needed here: the item does not exist
                    else:
                        computing = {grp: tile.channels for grp in tile.groups}
                    items.append(Item(tile, ws, position, row, computing, tile.width))
            out.append(items)
        return out

    # ---- §4: chunks of the stream (independent rows) ------------------------------------------

    @cached_property
    def chunk_rule(self) -> tuple[str, int]:
        """How the stream is cut for the PE operand stores: (kind, block size)."""
        g = self.geometry
        E = self.arch.organisation.pe_store_entries
        # E_c: compacted stores hold the operands of ⌈w / C⌉ channels, w the widest compaction domain
        # (all w of them with lanes `full`)
        E_c = E
        if self.compacted:
            widest = max(hi - lo for lo, hi in self.compaction_domains())
            E_c = E // (widest if self.arch.skipping.lanes == "full" else ceil_div(widest, self.C))
        if self.pass_ in ("fwd", "bwd_data"):  # cb input / kb output channels of the group
            kind, size = "channels", E_c // (g.r * g.s)
        elif g.p * g.q <= E_c:
            kind, size = "images", E_c // (g.p * g.q)
        else:  # per image, blocks of pb output rows
            kind, size = "rows", E_c // g.q
        if size == 0:
            raise ReferenceModelError(
                f"layer {self.masks.name}, pass {self.pass_}: a PE store of E = {E} entries "
                "holds no block of the stream"
            )
        return kind, size

    def chunk_units(self) -> list[range]:
        """The chunks of §4 in chunk order, each a contiguous range of stream units (§6)."""
        g = self.geometry
        kind, size = self.chunk_rule
        if kind == "channels":
            return [range(lo, min(self.units, lo + size)) for lo in range(0, self.units, size)]
        if kind == "images":  # blocks of `size` images, each image P unit rows
            return [range(lo * g.p, min(g.n, lo + size) * g.p) for lo in range(0, g.n, size)]
        # per image, blocks of `size` output rows: chunks never span images
        return [
            range(n * g.p + lo, n * g.p + min(g.p, lo + size))
            for n in range(g.n)
            for lo in range(0, g.p, size)
        ]

    def chunk_entries(self, units: range) -> int:
        """ε of a chunk: its size in the stream's full enumeration (FWD: channels·R_k·S_k; BWD-D:
        out-channels·R_k·S_k; BWD-W: rows·Q)."""
        g = self.geometry
        return len(units) * (g.q if self.pass_ == "bwd_weight" else g.r * g.s)
