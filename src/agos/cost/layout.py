"""The per-pass mapping of docs/cost-model.md §2: positions in work-set order, their stream
lengths and nonzero counts per group, and the channel tiles (packed groups when a group has fewer
channels than there are columns).

Everything here is laid out [group, position] with positions in *work-set order*: raster order,
except BWD-D with stride, whose positions are grouped by stride phase (each phase a work set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from agos.arch.schema import Arch
from agos.workload.counts import LayerWork
from agos.workload.masks import LayerMasks
from agos.workload.passes import mapping


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.int64, copy=False)


@dataclass(frozen=True)
class Tile:
    """One channel tile: its groups and, per group, the channel range [lo, hi) it covers."""

    groups: tuple[int, ...]
    lo: int
    hi: int

    @property
    def per_group(self) -> int:
        return self.hi - self.lo

    @cached_property
    def width(self) -> int:
        return self.per_group * len(self.groups)


def channel_tiles(groups: int, ch: int, cols: int) -> list[Tile]:
    """§2.1: ⌈ch / C⌉ tiles per group, or ⌊C / ch⌋ groups packed side by side per tile."""
    return list(_channel_tiles(groups, ch, cols))  # every design asks again for every pass


@lru_cache(maxsize=1024)
def _channel_tiles(groups: int, ch: int, cols: int) -> tuple[Tile, ...]:
    if ch >= cols:
        return tuple(Tile((g,), lo, min(ch, lo + cols)) for g in range(groups) for lo in range(0, ch, cols))
    pack = cols // ch
    return tuple(Tile(tuple(range(t, min(groups, t + pack))), 0, ch) for t in range(0, groups, pack))


def group_tiles(groups: int, ch: int, cols: int, b_bytes: int, limit: int, domain: int) -> list[Tile]:
    """Compacted outputs (§2.3): one tile per compaction domain — a group's channels, cut into the
    fewest runs of whole C-channel tiles, each at most max(1, ⌊domain / C⌋) tiles wide, whose share
    of the operand tensor B (`b_bytes` for all groups) is at most `limit`. Packed as §2.1 when a
    group has fewer channels than columns (compaction then behaves as static)."""
    if ch < cols:
        return channel_tiles(groups, ch, cols)
    per_group = math.ceil(ch / cols)
    most = max(1, domain // cols)
    for domains in range(math.ceil(per_group / most), per_group + 1):
        cuts = [(i * per_group // domains, (i + 1) * per_group // domains) for i in range(domains)]
        widest = max(min(ch, hi * cols) - lo * cols for lo, hi in cuts)
        if -(-widest * b_bytes // (groups * ch)) <= limit or domains == per_group:
            break
    return [Tile((g,), lo * cols, min(ch, hi * cols)) for g in range(groups) for lo, hi in cuts]


def compaction_tiles(arch: Arch, lay: PassLayout, b_bytes: int, capacity: int) -> list[Tile]:
    """§2.3's compaction domains (one tile each), or §2.1's channel tiles without compaction."""
    cols = arch.pe_array.cols
    if compacts(arch, "bwd_data", lay):
        return group_tiles(lay.groups, lay.ch, cols, b_bytes, capacity // 2, arch.skipping.compaction_domain)
    return channel_tiles(lay.groups, lay.ch, cols)


def compacts(arch: Arch, pass_: str, lay: PassLayout) -> bool:
    """Compacted outputs are active: the pass skips outputs, compacted, with ch ≥ C (§2.3)."""
    opts = arch.skipping.of(pass_)
    return mapping(pass_).output_skip and opts.outputs == "compacted" and lay.ch >= arch.pe_array.cols


def store_channels(arch: Arch, tiles: list[Tile], compacted: bool) -> int:
    """§4: channels whose operands one PE store holds — ⌈w / C⌉ of the widest compaction domain w
    (lanes modulo or matched), all w of it (lanes full), one without compaction."""
    if not compacted:
        return 1
    widest = max(t.per_group for t in tiles)
    return widest if arch.skipping.lanes == "full" else ceil_div(widest, arch.pe_array.cols)


@dataclass
class PassLayout:
    """One pass of one layer, in work-set order."""

    pass_: str
    groups: int
    ch: int  # channels per group (workload.passes: K_g for FWD / BWD-W, C_g for BWD-D)
    order: np.ndarray  # raster index of each work-set-ordered position
    set_id: np.ndarray  # work set of each position (0 … sets − 1), non-decreasing
    row: np.ndarray  # position row of each position (§6: FWD (n,p), BWD-D (n,h), BWD-W c)
    rows: int  # number of position rows
    length: np.ndarray  # T per position, int64 [pos]
    nonzero: np.ndarray  # s per group and position, int64 [G, pos]

    @property
    def positions(self) -> int:
        return int(self.order.size)


def _phase_order(g, n: int) -> tuple[np.ndarray, np.ndarray]:
    """BWD-D positions (n, h, w): stride phases as work sets, raster order within each."""
    sh, sw = g.stride
    h = np.arange(g.h)
    w = np.arange(g.w)
    ph = (h + g.padding[0]) % sh
    pw = (w + g.padding[1]) % sw
    key = (ph[:, None] * sw + pw[None, :]).reshape(-1)  # [H*W]
    key = np.broadcast_to(key[None], (n, g.h * g.w)).reshape(-1)
    order = np.argsort(key, kind="stable")
    _, set_id = np.unique(key[order], return_inverse=True)
    return order.astype(np.int64), set_id.astype(np.int64)


def layout(pass_: str, work: LayerWork) -> PassLayout:
    """The positions of one pass (workload.passes: positions, position rows, channels per group),
    in work-set order, with their dense stream lengths and per-group nonzero counts."""
    m = mapping(pass_)
    g = work.geometry
    n_pos = m.positions(g)
    if m.stride_phases:
        order, set_id = _phase_order(g, g.n)
    else:
        order, set_id = np.arange(n_pos, dtype=np.int64), np.zeros(n_pos, np.int64)
    length = np.ascontiguousarray(_np(work.stream_lengths(pass_)))  # an expanded tensor may have stride 0
    nonzero = _np(work.stream_nonzero(pass_))
    if m.stride_phases:
        length, nonzero = length[order], nonzero[:, order]
    row = order // m.per_row(g)
    ch = m.channels_per_group(g)
    return PassLayout(pass_, g.groups, ch, order, set_id, row, m.rows(g), length, nonzero)


@dataclass
class NeededChannels:
    """BWD-D: which dX channels each position needs, per group, positions in work-set order and
    channels innermost (each position's channel vector contiguous)."""

    rows: np.ndarray  # bool [G, pos, C_g]

    def count(self, group: int, lo: int, hi: int) -> np.ndarray:
        """m per position: needed channels of [lo, hi) of the group, int64 [pos]."""
        return self.rows[group, :, lo:hi].sum(axis=1, dtype=np.int64)

    @cached_property
    def _bytes(self) -> np.ndarray:
        """The rows packed 8 channels a byte (channel 8k + b at bit b of byte k), [G, pos, C_g / 8]:
        one pass of numpy's packbits over the whole mask, for C_g a multiple of 8."""
        g, pos, ch = self.rows.shape
        return np.packbits(self.rows.reshape(-1), bitorder="little").reshape(g, pos, ch // 8)

    def words(self, group: int, lo: int, hi: int) -> np.ndarray | None:
        """Channels [lo, hi) of a group as 64-bit words [pos, ⌈(hi − lo) / 64⌉], channel lo + c at bit
        c & 63 of word c >> 6; None unless C_g and lo are multiples of 8 (whole bytes of the rows)."""
        if self.rows.shape[2] % 8 or lo % 8:
            return None
        part = self._bytes[group][:, lo // 8 : -(-hi // 8)]
        out = np.zeros((part.shape[0], -(-(hi - lo) // 64) * 8), np.uint8)
        out[:, : part.shape[1]] = part
        if (hi - lo) % 8:  # the channels of the last byte beyond hi are not the domain's
            out[:, part.shape[1] - 1] &= (1 << ((hi - lo) % 8)) - 1
        return out.view("<u8").astype(np.uint64, copy=False)


def needed_channels(masks: LayerMasks, lay: PassLayout) -> NeededChannels:
    g = masks.geometry
    dx = masks.dx_needed.numpy().reshape(g.n, g.groups, g.c_per_group, g.h * g.w)
    rows = np.empty((g.groups, g.n, g.h * g.w, g.c_per_group), bool)  # numpy transposes bools 3x faster
    rows[...] = dx.transpose(1, 0, 3, 2)
    rows = rows.reshape(g.groups, g.n * g.h * g.w, g.c_per_group)
    identity = bool((lay.order == np.arange(lay.order.size)).all())
    return NeededChannels(rows if identity else np.ascontiguousarray(rows[:, lay.order]))


def output_bytes(arch: Arch, tensor: str) -> int:
    """Bytes per output value: dW stays at the accumulator's precision, Y and dX are values."""
    return arch.precision.accumulate_bytes if tensor == "dw" else arch.precision.value_bytes


def ceil_div(a, b):
    return -(-a // b)


def mapping_bound(effective: int, items: int, max_width: int, rows: int, cols: int) -> int:
    """§7: effective MACs over the PEs the mapping can use."""
    usable = min(rows, max(1, items)) * min(cols, max(1, max_width))
    return math.ceil(effective / usable) if effective else 0
