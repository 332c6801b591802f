"""`reference_pass`: one pass of one layer on one design (docs/cost-model.md §2–§7, §9)."""

from __future__ import annotations

from dataclasses import dataclass

from agos.arch.schema import Arch
from agos.reference.array import Tally, lockstep_tile, rows_tile
from agos.reference.bypass import rule
from agos.reference.mapping import PassMapping, ceil_div
from agos.reference.tiling import BufferTile, choose_tiling, stream_blocks
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES

ACTIONS = (
    "mac",
    "mac_gated",
    "buffer_read_bytes",
    "buffer_write_bytes",
    "store_read_bytes",
    "store_write_bytes",
    "metadata_bits",
    "crossbar_bytes",
    "dram_bytes",
)


@dataclass
class ReferencePass:
    cycles: int  # the pass time (§6): prologue, per tile max(compute, transfer), epilogue; stalls included
    tile_compute: list[int]  # compute cycles c_t of each buffer tile, in loop order (§3, §4)
    order: str  # "channels" or "positions"
    blocks: tuple[int, int]  # (a, b) of the chosen tiling
    dram_a_bytes: int  # loaded stream tensor A over the pass
    dram_b_bytes: int  # loaded operand tensor B
    dram_o_bytes: int  # written output O
    items: int  # dispatched items (lockstep) or dispatched item-chunks (rows)
    actions: dict[str, int]  # the action counts of §9
    sigma: int = 1  # the stream blocks σ of the chosen tiling


def _zero(cycles: int = 0, mac: int = 0) -> ReferencePass:
    actions = dict.fromkeys(ACTIONS, 0)
    actions["mac"] = mac
    return ReferencePass(cycles, [cycles], "channels", (1, 1), 0, 0, 0, 0, actions)


def effective_macs(mp: PassMapping) -> int:
    """E_io (§7): MACs with both operands nonzero and a needed output, enumerated tap by tap."""
    total = 0
    for grp in range(mp.G):
        for position, _, _ in mp.positions:
            taps = mp.stream(grp, position)
            s = sum(1 for t in taps if t.nonzero)
            if mp.pass_ == "fwd":
                total += s * mp.Kg
            elif mp.pass_ == "bwd_data":
                total += s * len(mp.needed_channels(grp, position))
            else:
                total += sum(1 for t in taps for k in range(mp.Kg) if t.nonzero and t.operand[k])
    return total


def mapping_bound(mp: PassMapping) -> int:
    """⌈E_io / (min(R, items) · min(C, max tile width))⌉, items = positions × §2.1 tiles."""
    tiles = mp.channel_tiles(compacted=False)
    items = len(mp.positions) * len(tiles)
    usable = min(mp.R, items) * min(mp.C, max(t.width for t in tiles))
    return ceil_div(effective_macs(mp), usable)


def reference_pass(pass_: str, masks: LayerMasks, arch: Arch) -> ReferencePass:
    """One pass ("fwd", "bwd_data", "bwd_weight") of one layer on one design, stepped."""
    if pass_ not in PASSES:
        raise ValueError(f"unknown pass {pass_!r}; expected one of {PASSES}")
    if pass_ == "bwd_data" and not masks.needs_bwd_data:
        return _zero()  # the layer runs no BWD-D: no design is charged for it
    decided = rule(pass_, masks, arch)  # §11: the design as the bypass rule runs it here
    arch = decided.arch
    mp = PassMapping(pass_, masks, arch)
    if arch.ideal:
        bound = mapping_bound(mp)
        return _zero(bound, effective_macs(mp))

    cache: dict[tuple, Tally] = {}

    def compute(tile: BufferTile, sigma: int) -> Tally:
        """c_t of a buffer tile: its channel tiles over its position block and its stream block."""
        key = (tile.rows.start, tile.rows.stop, tile.tiles[0].index, tile.tiles[-1].index, sigma, tile.k)
        if key not in cache:
            if mp.rows:
                cache[key] = rows_tile(mp, tile.tiles, tile.rows, tile.chunks)
            else:
                cache[key] = lockstep_tile(mp, tile.tiles, tile.rows, stream_blocks(mp, sigma)[0], tile.k)
        return cache[key]

    # §6: a skipping design also tries its dense twin's tiling (the same channel tiles and chunks)
    twin = None
    if not mp.compacted and not _plain(arch):
        dense = reference_pass(pass_, masks, arch.twin())
        twin = (dense.blocks[0], dense.blocks[1], dense.sigma)
    plan = choose_tiling(mp, compute, twin)
    total = Tally()
    for t in plan.tallies:
        for name in vars(total):
            if name not in ("cycles", "folds"):
                setattr(total, name, getattr(total, name) + getattr(t, name))
    # §9 metadata over all positions: static output bits (tile width per position and tile),
    # compacted (domain width per position and domain: ch per position and group)
    if mp.static or mp.compacted:
        total.metadata_bits += sum(len(mp.positions) * tile.width for tile in mp.tiles)

    lockstep = arch.organisation.sync == "lockstep"
    gating = arch.skipping.zero_gating
    # §9: with lanes `full` every row store holds the whole domain (C copies of each load) and
    # compacted operands cross a Benes network (two row lengths of wire) on `systolic`, nothing on rows
    full = mp.compacted and arch.skipping.lanes == "full"
    wires = 0 if not mp.compacted else (2 if lockstep else 0) if full else 1
    mac = total.mac_nonzero if gating else total.mac_issued
    loaded = plan.dram_a + plan.dram_b
    actions = {
        "mac": mac,
        "mac_gated": total.mac_issued - total.mac_nonzero if gating else 0,
        "buffer_read_bytes": total.stream_bytes
        + (total.column_bytes if lockstep else total.store_load_bytes)
        + total.psum_read_bytes
        + plan.dram_o,
        "buffer_write_bytes": total.output_bytes + total.psum_write_bytes + loaded,
        "store_read_bytes": 0 if lockstep else mac * mp.vb,
        "store_write_bytes": 0 if lockstep else mp.R * total.store_load_bytes * (mp.C if full else 1),
        "metadata_bits": total.metadata_bits,
        "crossbar_bytes": mac * mp.vb * wires,
        "dram_bytes": loaded + plan.dram_o,
    }
    actions["metadata_bits"] += decided.popcount_bits
    return ReferencePass(
        cycles=plan.time + decided.cycles,
        tile_compute=[t.cycles for t in plan.tallies],
        order=plan.order,
        blocks=(plan.a, plan.b),
        dram_a_bytes=plan.dram_a,
        dram_b_bytes=plan.dram_b,
        dram_o_bytes=plan.dram_o,
        items=total.items,
        actions=actions,
        sigma=plan.sigma,
    )


def _plain(arch: Arch) -> bool:
    """Runs exactly as its dense twin: nothing skipped, nothing compressed."""
    st = arch.storage
    return not arch.skipping.skips_work and st.activations == "dense" and st.gradients == "dense"
