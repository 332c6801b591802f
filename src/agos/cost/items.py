"""Work items of one pass for one design, from the exact engine's stream counts (DESIGN.md §4).

A work item is one position × one tile of up to `cols` channels and occupies one PE row. Its
duration follows the design's timing rule for the pass:
- dense: the full stream length (valid taps only);
- stream skip: only the nonzero entries of the shared stream, but never fewer than
  ⌈stream length / lookahead⌉ cycles when a lookahead window bounds the skipping (a rate bound:
  a literal sliding window loses a little more on clustered nonzeros);
- PE skip (BWD-W): each PE walks the entries where X and its own dY are both nonzero; the item
  lasts as long as its slowest PE;
- output skip (BWD-D): static keeps a channel tile only if one of its outputs is needed (PEs of
  masked channels idle); compacted packs each position's needed channels into ⌈m / cols⌉ items.
Items with no work at all are removed before dispatch; every other item also pays the arch's
fixed per-item overhead. Slots are laid out [group, tile, position] with positions in raster
order: FWD (n, p, q), BWD-D (n, h, w), BWD-W (c, r, s) within the group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from agos.arch.schema import Arch
from agos.engine.counts import LayerWork


@dataclass
class PassSlots:
    duration: np.ndarray  # int64 [G, T, positions]; 0 where no item exists
    compacted: bool  # T indexes compaction slots, not fixed channel tiles
    channels_per_group: int
    # action totals over all items
    issued_macs: int  # MACs the PEs perform, gated ones included
    nonzero_macs: int  # of those, the ones whose two operands are nonzero
    stream_entries: int  # shared-stream values read (once per row per entry walked)
    metadata_bits: int  # bitmap bits scanned to decide what to skip
    outputs: int  # output elements computed

    @property
    def items(self) -> int:
        return int(np.count_nonzero(self.duration))


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.int64, copy=False)


def tile_widths(channels: int, cols: int) -> np.ndarray:
    count = max(1, math.ceil(channels / cols))
    widths = np.full(count, cols, np.int64)
    widths[-1] = channels - cols * (count - 1)
    return widths


def _stream_time(nonzero: np.ndarray, length: np.ndarray, lookahead: int) -> np.ndarray:
    if lookahead <= 0:
        return nonzero
    return np.maximum(nonzero, -(-length // lookahead))


def _with_overhead(duration: np.ndarray, arch: Arch) -> np.ndarray:
    extra = arch.scheduling.item_overhead_cycles
    return duration + extra * (duration > 0) if extra else duration


def fwd_slots(w: LayerWork, arch: Arch) -> PassSlots:
    """Positions (n, p, q); stream: the X taps (c, r, s) of the group; channels: K of the group."""
    g = w.geometry
    groups, kg = g.groups, g.k_per_group
    widths = tile_widths(kg, arch.pe_array.cols)
    length = np.broadcast_to(_np(w.fwd_dense)[None], (g.n, g.p, g.q)).reshape(1, -1)  # [1, pos]
    nonzero = _np(w.fwd_nonzero).transpose(1, 0, 2, 3).reshape(groups, -1)  # [G, pos]
    skip = arch.skipping.fwd.stream
    per_item = (
        _stream_time(nonzero, length, arch.skipping.lookahead) if skip else np.repeat(length, groups, 0)
    )
    duration = np.repeat(per_item[:, None, :], widths.size, axis=1)
    walked = int(nonzero.sum()) if skip else int(length.sum()) * groups
    return PassSlots(
        duration=_with_overhead(duration, arch),
        compacted=False,
        channels_per_group=kg,
        issued_macs=walked * kg,
        nonzero_macs=int(nonzero.sum()) * kg,
        stream_entries=walked * widths.size,
        metadata_bits=int(length.sum()) * groups * widths.size if skip else 0,
        outputs=g.n * g.k * g.p * g.q,
    )


def bwd_data_slots(w: LayerWork, arch: Arch) -> PassSlots:
    """Positions (n, h, w); stream: the dY taps (k, r, s) that reach it; channels: C of the group."""
    g = w.geometry
    groups, cg = g.groups, g.c_per_group
    cols = arch.pe_array.cols
    if not w.needs_bwd_data:
        return PassSlots(np.zeros((groups, 1, 0), np.int64), False, cg, 0, 0, 0, 0, 0)
    opts = arch.skipping.bwd_data
    length = np.broadcast_to(_np(w.bwd_data_dense)[None], (g.n, g.h, g.w)).reshape(1, -1)  # [1, pos]
    nonzero = _np(w.bwd_data_nonzero).transpose(1, 0, 2, 3).reshape(groups, -1)  # [G, pos]
    # needed dX per (group, channel, position)
    needed = w.dx_needed.detach().cpu().numpy().reshape(g.n, groups, cg, g.h * g.w)
    needed = needed.transpose(1, 2, 0, 3).reshape(groups, cg, -1)  # [G, Cg, pos]
    per_item = (
        _stream_time(nonzero, length, arch.skipping.lookahead)
        if opts.stream
        else np.repeat(length, groups, 0)
    )
    walked = nonzero if opts.stream else np.repeat(length, groups, 0)  # [G, pos] entries read
    if opts.outputs == "compacted":
        m = needed.sum(axis=1)  # [G, pos]
        slots = max(1, math.ceil(int(m.max(initial=0)) / cols))
        j = np.arange(slots)[None, :, None]
        active = np.clip(m[:, None, :] - j * cols, 0, cols)  # [G, J, pos]
        duration = np.where(active > 0, per_item[:, None, :], 0)
        computed = m
        rows_walked = int((walked[:, None, :] * (active > 0)).sum())
        issued = int((walked * m).sum())
        nz_macs = int((nonzero * m).sum())
        meta = cg * needed.shape[2] * groups  # the mask bits of every position, to compact
        return PassSlots(
            duration=_with_overhead(duration, arch),
            compacted=True,
            channels_per_group=cg,
            issued_macs=issued,
            nonzero_macs=nz_macs,
            stream_entries=rows_walked,
            metadata_bits=meta + (int((length * (active > 0)).sum()) if opts.stream else 0),
            outputs=int(computed.sum()),
        )
    widths = tile_widths(cg, cols)
    t = widths.size
    pad = t * cols - cg
    padded = (
        np.concatenate([needed, np.zeros((groups, pad, needed.shape[2]), bool)], axis=1) if pad else needed
    )
    per_tile_needed = padded.reshape(groups, t, cols, -1).sum(axis=2)  # [G, T, pos]
    if opts.outputs == "static":
        active = per_tile_needed
        duration = np.where(active > 0, per_item[:, None, :], 0)
        computed = int(per_tile_needed.sum())
        meta = t * cols * needed.shape[2] * groups
    else:
        active = np.broadcast_to(widths[None, :, None], (groups, t, needed.shape[2]))
        duration = np.repeat(per_item[:, None, :], t, axis=1)
        computed = g.n * g.c * g.h * g.w
        meta = 0
    exists = duration > 0
    return PassSlots(
        duration=_with_overhead(duration, arch),
        compacted=False,
        channels_per_group=cg,
        issued_macs=int((walked[:, None, :] * active).sum()),
        nonzero_macs=int((nonzero[:, None, :] * active).sum()),
        stream_entries=int((walked[:, None, :] * exists).sum()),
        metadata_bits=meta + (int((length[:, None, :] * exists).sum()) if opts.stream else 0),
        outputs=computed,
    )


def bwd_weight_slots(w: LayerWork, arch: Arch) -> PassSlots:
    """Positions: weight taps (c, r, s) of the group; stream: X at the tap over (n, p, q);
    channels: K of the group, each PE holding its own dY."""
    g = w.geometry
    groups, cg, kg = g.groups, g.c_per_group, g.k_per_group
    cols = arch.pe_array.cols
    opts = arch.skipping.bwd_weight
    widths = tile_widths(kg, cols)
    t = widths.size
    length = np.broadcast_to(_np(w.bwd_weight_dense)[None], (cg, g.r, g.s)).reshape(1, -1)  # [1, pos]
    nonzero = _np(w.bwd_weight_nonzero).reshape(groups, -1)  # [G, pos] with pos = (c, r, s)
    both = _np(w.bwd_weight_both).reshape(groups, kg, -1)  # [G, Kg, pos]
    look = arch.skipping.lookahead
    if opts.pe_operand:
        pad = t * cols - kg
        padded = (
            np.concatenate([both, np.zeros((groups, pad, both.shape[2]), np.int64)], axis=1) if pad else both
        )
        slowest = padded.reshape(groups, t, cols, -1).max(axis=2)  # [G, T, pos]
        duration = _stream_time(slowest, length[:, None, :], look)
        issued = int(both.sum())
        walked = nonzero
        meta_per_item = length  # the X bitmap of the stream, and below each PE's own dY bitmap
        own_bits = int((length[:, None, :] * widths[None, :, None] * (duration > 0)).sum())
    else:
        per_item = _stream_time(nonzero, length, look) if opts.stream else np.repeat(length, groups, 0)
        duration = np.repeat(per_item[:, None, :], t, axis=1)
        walked = nonzero if opts.stream else np.repeat(length, groups, 0)
        issued = int(walked.sum()) * kg
        meta_per_item = length if opts.stream else np.zeros_like(length)
        own_bits = 0
    exists = duration > 0
    return PassSlots(
        duration=_with_overhead(duration, arch),
        compacted=False,
        channels_per_group=kg,
        issued_macs=issued,
        nonzero_macs=int(both.sum()),
        stream_entries=int((walked[:, None, :] * exists).sum()),
        metadata_bits=int((meta_per_item[:, None, :] * exists).sum()) + own_bits,
        outputs=g.k * cg * g.r * g.s,
    )


SLOT_BUILDERS = {"fwd": fwd_slots, "bwd_data": bwd_data_slots, "bwd_weight": bwd_weight_slots}
