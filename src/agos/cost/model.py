"""The fast cost model: cycles, DRAM bytes and action counts per layer and pass, for one design.

Compute cycles come from the work items (items.py) scheduled onto the PE rows (schedule.py) tile by
tile; a tile's time is the larger of its compute and its DRAM transfer when transfers are double
buffered (their sum otherwise), and, with a tile barrier, all rows finish a tile before the next
starts. The `ideal` design is ⌈effective MACs / PEs⌉ per pass. The cycle-stepping reference
(reference.py) implements the same rules literally; tests hold the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agos.arch.load import LoadedArch
from agos.arch.schema import PASSES, Arch
from agos.cost.items import SLOT_BUILDERS, PassSlots, tile_widths
from agos.cost.schedule import makespan
from agos.cost.traffic import PassOperands, TilePlan, compressed_bytes, plan_tiles
from agos.density.masks import LayerMasks
from agos.engine.counts import LayerWork

ACTIONS = (
    "mac",
    "mac_gated",
    "stream_read_bytes",
    "pe_read_bytes",
    "output_write_bytes",
    "metadata_bits",
    "dram_bytes",
)


@dataclass
class PassCost:
    cycles: int
    compute_cycles: int
    transfer_cycles: int
    tile_compute: list[int]
    items: int
    dram_bytes: float
    effective_macs: int  # the work no design can avoid (input+output policy)
    dense_macs: int
    actions: dict[str, float] = field(default_factory=dict)
    energy_pj: float = 0.0
    energy_breakdown: dict[str, float] = field(default_factory=dict)


def pass_operands(pass_: str, masks: LayerMasks, arch: Arch) -> PassOperands:
    g = masks.geometry
    vb, ab = arch.precision.value_bytes, arch.precision.accumulate_bytes
    st = arch.storage
    x_numel, y_numel, w_numel = g.n * g.c * g.h * g.w, g.n * g.k * g.p * g.q, g.k * g.c_per_group * g.r * g.s

    def stored(kind: str, numel: int, nonzero: int) -> float:
        return compressed_bytes(numel, nonzero, vb) if kind == "compressed" else numel * vb

    x = stored(st.activations, x_numel, masks.x_count)
    dy = stored(st.gradients, y_numel, masks.dy_count)
    w = stored(st.weights, w_numel, w_numel)
    if pass_ == "fwd":
        return PassOperands(x, w, y_numel * vb, g.groups, g.k_per_group)
    if pass_ == "bwd_data":
        if not masks.needs_bwd_data:
            return PassOperands(0.0, 0.0, 0.0, g.groups, g.c_per_group)
        skipped = arch.skipping.bwd_data.outputs != "none"
        needed = masks.dx_count
        dx = needed * vb if (st.data_gradients == "compressed" and skipped) else x_numel * vb
        return PassOperands(dy, w, dx, g.groups, g.c_per_group)
    return PassOperands(x, dy, w_numel * ab, g.groups, g.k_per_group)


def ordered_tiles(slots: PassSlots, plan: TilePlan) -> list[list[np.ndarray]]:
    """Item durations of each tile in dispatch order, as segments: runs of items that share a conv
    group and a channel tile (a lockstep work group never spans two, since its rows share the
    column operands). Items without work are removed."""
    d = slots.duration  # [G, T, pos]
    groups, t = d.shape[0], d.shape[1]

    def kept(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1)
        return flat[flat > 0]

    out: list[list[np.ndarray]] = []
    if plan.order == "positions":
        for gi in range(groups):
            for lo, hi in plan.position_chunks:
                if slots.compacted:
                    out.append([kept(d[gi, :, lo:hi])])
                else:
                    out.append([kept(d[gi, ti, lo:hi]) for ti in range(t)])
        return out
    plan_t = 1 if slots.compacted else t
    for chunk in plan.channel_chunks:
        segments = []
        for pair in chunk:
            gi, ti = divmod(int(pair), plan_t)
            segments.append(kept(d[gi] if slots.compacted else d[gi, ti]))
        out.append(segments)
    return out


def _actions(pass_: str, slots: PassSlots, plan_bytes: float, arch: Arch) -> dict[str, float]:
    vb, ab = arch.precision.value_bytes, arch.precision.accumulate_bytes
    gating = arch.skipping.zero_gating
    mac = slots.nonzero_macs if gating else slots.issued_macs
    return {
        "mac": float(mac),
        "mac_gated": float(slots.issued_macs - slots.nonzero_macs) if gating else 0.0,
        "stream_read_bytes": float(slots.stream_entries * vb),
        "pe_read_bytes": float(mac * vb),
        "output_write_bytes": float(slots.outputs * (ab if pass_ == "bwd_weight" else vb)),
        "metadata_bits": float(slots.metadata_bits),
        "dram_bytes": float(plan_bytes),
    }


def price(actions: dict[str, float], loaded: LoadedArch) -> tuple[float, dict[str, float]]:
    e, a = loaded.energy, loaded.arch
    parts = {
        "mac": actions["mac"] * e.mac_pj(a.precision.multiply, a.precision.accumulate)
        + actions["mac_gated"] * e.mac_gated,
        "buffer": actions["stream_read_bytes"] * e.global_read_per_byte
        + actions["pe_read_bytes"] * e.local_read_per_byte
        + actions["output_write_bytes"] * e.global_write_per_byte
        + actions["metadata_bits"] * e.metadata_read_per_bit,
        "dram": actions["dram_bytes"] * e.dram_per_byte,
    }
    return sum(parts.values()), parts


def _ideal_pass(pass_: str, masks: LayerMasks, work: LayerWork, loaded: LoadedArch) -> PassCost:
    arch = loaded.arch
    effective = work.total(pass_, "input+output")
    done = work.total(pass_, arch.skipping.effective_policy(pass_))  # the MACs this ideal still does
    ops = pass_operands(pass_, masks, arch)
    compulsory = ops.streamed + ops.pe + ops.output
    cycles = math.ceil(done / arch.pes)
    vb, ab = arch.precision.value_bytes, arch.precision.accumulate_bytes
    outputs = {
        "fwd": masks.geometry.n * masks.geometry.k * masks.geometry.p * masks.geometry.q,
        "bwd_data": masks.dx_count if masks.needs_bwd_data else 0,
        "bwd_weight": masks.geometry.k * masks.geometry.c_per_group * masks.geometry.r * masks.geometry.s,
    }
    actions = {
        "mac": float(done),
        "mac_gated": 0.0,
        "stream_read_bytes": float(done / arch.pe_array.cols * vb),
        "pe_read_bytes": float(done * vb),
        "output_write_bytes": float(outputs[pass_] * (ab if pass_ == "bwd_weight" else vb)),
        "metadata_bits": 0.0,
        "dram_bytes": float(compulsory),
    }
    energy, parts = price(actions, loaded)
    return PassCost(
        cycles,
        cycles,
        0,
        [cycles],
        0,
        compulsory,
        effective,
        work.total(pass_, "dense"),
        actions,
        energy,
        parts,
    )


def simulate_pass(pass_: str, masks: LayerMasks, work: LayerWork, loaded: LoadedArch) -> PassCost:
    arch = loaded.arch
    if pass_ == "bwd_data" and not masks.needs_bwd_data:  # the first layer: no design runs BWD-D
        zero = dict.fromkeys(ACTIONS, 0.0)
        return PassCost(0, 0, 0, [0], 0, 0.0, 0, 0, zero, 0.0, {"mac": 0.0, "buffer": 0.0, "dram": 0.0})
    if arch.ideal:
        return _ideal_pass(pass_, masks, work, loaded)
    slots = SLOT_BUILDERS[pass_](work, arch)
    ops = pass_operands(pass_, masks, arch)
    positions = slots.duration.shape[2]
    ch = slots.channels_per_group
    widths = np.array([ch]) if slots.compacted else tile_widths(ch, arch.pe_array.cols)
    plan = plan_tiles(ops, widths, positions, arch)
    tiles = ordered_tiles(slots, plan)
    rows = arch.pe_array.rows
    per_byte = arch.dram_bytes_per_cycle
    sched = arch.scheduling
    tile_compute = [makespan(t, sched, rows) for t in tiles]
    transfer = [math.ceil(b / per_byte) for b in plan.tile_bytes]
    if sched.tile_barrier:
        if arch.memory.double_buffering:
            cycles = sum(max(c, x) for c, x in zip(tile_compute, transfer, strict=True))
        else:
            cycles = sum(tile_compute) + sum(transfer)
        compute = sum(tile_compute)
    else:
        compute = makespan([seg for tile in tiles for seg in tile], sched, rows)
        total_transfer = sum(transfer)
        cycles = max(compute, total_transfer) if arch.memory.double_buffering else compute + total_transfer
        tile_compute = [compute]
    actions = _actions(pass_, slots, plan.dram_bytes, arch)
    energy, parts = price(actions, loaded)
    return PassCost(
        cycles=int(cycles),
        compute_cycles=int(compute),
        transfer_cycles=int(sum(transfer)),
        tile_compute=[int(c) for c in tile_compute],
        items=sum(int(seg.size) for tile in tiles for seg in tile),
        dram_bytes=plan.dram_bytes,
        effective_macs=work.total(pass_, "input+output"),
        dense_macs=work.total(pass_, "dense"),
        actions=actions,
        energy_pj=energy,
        energy_breakdown=parts,
    )


def simulate_layer(masks: LayerMasks, work: LayerWork, loaded: LoadedArch) -> dict[str, PassCost]:
    return {p: simulate_pass(p, masks, work, loaded) for p in PASSES}
