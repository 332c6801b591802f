"""The fast cost model: cycles (stalls included), DRAM bytes and action counts of one pass of one
layer on one design, following docs/cost-model.md rule by rule; the cycle-stepping reference
(agos.reference) implements the same rules independently and tests hold the two equal.

`LayerContext` holds what every design on a layer shares — the per-pass layouts, needed-channel
sets, per-chunk counts — so a network is counted once for all designs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from agos.arch.area import AreaReport, design_area
from agos.arch.load import LoadedArch
from agos.arch.schema import Arch
from agos.cost import schedule
from agos.cost.bypass import decide
from agos.cost.items import SlotSets, TileItems, build_items
from agos.cost.layout import (
    NeededChannels,
    PassLayout,
    Tile,
    ceil_div,
    channel_tiles,
    compaction_tiles,
    compacts,
    layout,
    mapping_bound,
    needed_channels,
    output_bytes,
    store_channels,
)
from agos.cost.tiling import PassTensors, Plan, bounds, choose_tiling
from agos.workload.chunks import (
    BlockCounts,
    Partition,
    RowCounts,
    block_both_max,
    block_counts,
    row_counts,
    store_chunks,
    uniform_blocks,
    units,
)
from agos.workload.counts import LayerWork
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES, Tensor, mapping

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
ENERGY_PARTS = ("mac", "buffer", "store", "metadata", "crossbar", "dram", "static")


@dataclass(kw_only=True)
class PassCost:
    cycles: int
    compute_cycles: int  # Σ tile compute
    tile_compute: list[int]
    order: str
    blocks: tuple[int, int, int]  # (a, b, σ) of the chosen tiling
    dram_a: int
    dram_b: int
    dram_o: int
    items: int
    effective_macs: int  # input+output policy: the work no design can avoid
    dense_macs: int
    design_macs: int  # the MACs this design's skipping leaves (its policy)
    mapping_bound: int
    mac_bound: int
    mac_issued: int = 0  # MACs the PEs perform, gated ones included
    mac_nonzero: int = 0  # of those, the ones with both operands nonzero
    components: dict[str, int] = field(default_factory=dict)  # work, fill_drain, delivery, exposed
    actions: dict[str, float] = field(default_factory=dict)
    energy_pj: float = 0.0
    energy_breakdown: dict[str, float] = field(default_factory=dict)
    bypassed: tuple[str, ...] = ()  # what the bypass rule switched off in this layer and pass (§11)
    decision_cycles: int = 0  # the rule's own cycles, included in `cycles`
    predicted: float | None = None  # output skip's predicted time ratio, on / off (§11), if decided

    @property
    def dram_bytes(self) -> int:
        return self.dram_a + self.dram_b + self.dram_o


class LayerContext:
    """A layer's masks and counts, and the design-independent structures built from them."""

    def __init__(self, masks: LayerMasks, work: LayerWork):
        self.masks, self.work = masks, work
        self._layout: dict[str, PassLayout] = {}
        self._needed: NeededChannels | None = None
        self._blocks: dict[tuple[str, Partition], BlockCounts] = {}
        self._rows: RowCounts | None = None
        self._both_full: dict[tuple, np.ndarray] = {}
        self._sets: dict[tuple[int, bool], SlotSets] = {}
        self.tilings: dict = {}  # cost.tiling's byte shares by (pass tensors, channel tiles): any design's
        self.memo: dict = {}  # other values derived from the layer alone, by what they depend on
        self.passes: dict[tuple, PassCost] = {}  # by timing key: shared by designs
        # the compute of candidate tilings by (compute key, channel tiles, a, σ): shared by designs that
        # differ only in what the buffer tiling alone reads (`compute_key`); small arrays, kept per view
        self.computed: dict[tuple, Computed] = {}
        self.compute_ids: dict[tuple, int] = {}  # (compute key, channel tiles) → a small number, hashed once
        # the walks of items at every position (cost.items), by stream blocking, groups and stream
        # features: shared by the designs of one run, kept per view (they hold [blocks, positions] arrays)
        self.items: dict = {}

    def view(self) -> LayerContext:
        """A context on the same masks and counts sharing this one's design-independent structures
        (layouts, needed channels, block and row counts, slot sets, the tilings' byte shares), with no
        timed passes: a run on it times every pass itself, exactly as on a fresh context."""
        view = LayerContext(self.masks, self.work)
        view._layout, view._blocks, view._both_full, view._sets = (
            self._layout,
            self._blocks,
            self._both_full,
            self._sets,
        )
        view._needed, view._rows = self._needed, self._rows
        view.tilings, view.memo = self.tilings, self.memo
        return view

    def absorb(self, view: LayerContext) -> None:
        """Keep what a view computed lazily outside the shared dictionaries."""
        self._needed = self._needed if self._needed is not None else view._needed
        self._rows = self._rows if self._rows is not None else view._rows

    def timed(self, pass_: str, loaded: LoadedArch) -> PassCost:
        """The pass timed on this layer, once per timing key."""
        key = timing_key(loaded.arch, pass_)
        if key not in self.passes:
            self.passes[key] = _timed_pass(pass_, self, loaded)
        return self.passes[key]

    def layout(self, pass_: str) -> PassLayout:
        if pass_ not in self._layout:
            self._layout[pass_] = layout(pass_, self.work)
        return self._layout[pass_]

    def needed(self) -> NeededChannels:
        if self._needed is None:
            self._needed = needed_channels(self.masks, self.layout("bwd_data"))
        return self._needed

    def slot_sets(self, cols: int, by_store: bool = False) -> SlotSets:
        key = (cols, by_store)
        if key not in self._sets:
            self._sets[key] = SlotSets(self.needed(), self.layout("bwd_data").set_id, cols, by_store)
        return self._sets[key]

    def both_totals(self, tiles: list[Tile]) -> np.ndarray:
        """BWD-W two-sided products of each tile's channels over every position, int64 [tiles]: the
        per-channel totals are made once per layer, so each list of tiles only adds a few of them."""
        key = tuple(tiles)
        if key not in self._both_full:
            if "both per channel" not in self.memo:
                g = self.work.geometry
                b = self.work.bwd_weight_both.numpy().reshape(g.groups, g.k_per_group, -1)
                self.memo["both per channel"] = b.sum(axis=2, dtype=np.int64)  # [G, K_g]
            per_channel = self.memo["both per channel"]
            self._both_full[key] = np.array(
                [int(per_channel[list(t.groups), t.lo : t.hi].sum()) for t in tiles], np.int64
            )
        return self._both_full[key]

    def blocks(self, pass_: str, part: Partition) -> BlockCounts:
        key = (pass_, part)
        if key not in self._blocks:
            rows = None
            if mapping(pass_).stream_sum == "taps":  # blocks of output rows: summed per-row counts
                if self._rows is None:
                    self._rows = row_counts(self.masks)
                rows = self._rows
            self._blocks[key] = block_counts(pass_, self.masks, part, rows)
        return self._blocks[key]

    def counts(self, pass_: str, part: Partition | None) -> tuple[np.ndarray, np.ndarray, BlockCounts | None]:
        """(T_j [J, pos], s_j [J, G, pos]) in work-set order: the whole stream when `part` is None."""
        lay = self.layout(pass_)
        if part is None:
            return lay.length[None], lay.nonzero[None], None
        bc = self.blocks(pass_, part)
        key = ("ordered", pass_, part)
        if key not in self._blocks:
            identity = bool((lay.order == np.arange(lay.order.size)).all())
            c = np.ascontiguousarray  # a gather along the last axis is laid out column-major
            self._blocks[key] = (
                (bc.length, bc.nonzero)
                if identity
                else (c(bc.length[:, lay.order]), c(bc.nonzero[:, :, lay.order]))
            )
        length, nonzero = self._blocks[key]
        return length, nonzero, bc


def _stored(kind: str, numel: int, nonzero: int, vb: int) -> int:
    return nonzero * vb + ceil_div(numel, 8) if kind == "compressed" else numel * vb


def storage_kind(arch: Arch, tensor: Tensor) -> str | None:
    """How a tensor is kept (dense or compressed); None for those always dense (W, Y, dW).
    Needed dX is compressed only where output skipping leaves it sparse."""
    st = arch.storage
    if tensor == "x":
        return st.activations
    if tensor == "dy":
        return st.gradients
    if tensor == "dx":
        return st.data_gradients if arch.skipping.bwd_data.outputs != "none" else "dense"
    return None


def tensor_bytes(arch: Arch, masks: LayerMasks, tensor: Tensor) -> int:
    """Stored bytes of one operand or output of a pass (§6)."""
    g, vb = masks.geometry, arch.precision.value_bytes
    kind = storage_kind(arch, tensor)
    if tensor == "x":
        return _stored(kind, g.x_numel, masks.x_count, vb)
    if tensor == "dy":
        return _stored(kind, g.y_numel, masks.dy_count, vb)
    if tensor == "dx":  # its bitmap is the needed-dX mask, known before the pass
        return masks.dx_count * vb if kind == "compressed" else g.x_numel * vb
    if tensor == "dw":
        return g.w_numel * output_bytes(arch, tensor)
    return (g.y_numel if tensor == "y" else g.w_numel) * vb


def pass_tensors(pass_: str, masks: LayerMasks, arch: Arch, rows: int) -> PassTensors:
    """A: the rows' shared stream, B: the PEs' own operand, O: the output (workload.passes)."""
    m = mapping(pass_)
    g = masks.geometry
    ab = arch.precision.accumulate_bytes
    a, b, o = (tensor_bytes(arch, masks, t) for t in (m.stream, m.own, m.output))
    ob = output_bytes(arch, m.output)
    return PassTensors(pass_, g, a, b, o, o * ab // ob, rows, units(pass_, g), not arch.lockstep)


def price(actions: dict[str, float], loaded: LoadedArch, area: AreaReport, cycles: int) -> dict[str, float]:
    e, a = loaded.energy, loaded.arch
    return {
        "mac": actions["mac"] * e.mac_pj(a.precision.multiply, a.precision.accumulate)
        + actions["mac_gated"] * e.mac_gated,
        "buffer": actions["buffer_read_bytes"] * e.buffer_read_per_byte
        + actions["buffer_write_bytes"] * e.buffer_write_per_byte,
        "store": actions["store_read_bytes"] * e.store_read_per_byte
        + actions["store_write_bytes"] * e.store_write_per_byte,
        "metadata": actions["metadata_bits"] * e.metadata_read_per_bit,
        "crossbar": actions["crossbar_bytes"] * e.crossbar_per_byte_mm * area.row_length_mm,
        "dram": actions["dram_bytes"] * e.dram_per_byte,
        "static": area.static_mw * cycles / a.clock_ghz,  # mW × ns = pJ
    }


def _zero_cost() -> PassCost:
    return PassCost(
        cycles=0, compute_cycles=0, tile_compute=[0], order="channels", blocks=(1, 1, 1),
        dram_a=0, dram_b=0, dram_o=0, items=0, effective_macs=0, dense_macs=0, design_macs=0,
        mapping_bound=0, mac_bound=0,
        components=dict.fromkeys(("work", "fill_drain", "delivery", "exposed"), 0),
        actions=dict.fromkeys(ACTIONS, 0.0), energy_breakdown=dict.fromkeys(ENERGY_PARTS, 0.0),
    )  # fmt: skip


def _bounds(pass_: str, ctx: LayerContext, arch: Arch) -> tuple[int, int, int, int, int]:
    """(effective, dense, design MACs, mapping bound, MAC bound) of §7: they depend on the layer, the
    PE array and the pass's policy only, so they are made once for every design that shares them."""
    policy = arch.skipping.effective_policy(pass_) if not arch.ideal else None
    key = ("bounds", pass_, arch.pe_array.rows, arch.pe_array.cols, policy)
    if key not in ctx.memo:
        ctx.memo[key] = _layer_bounds(pass_, ctx, arch.pe_array.rows, arch.pe_array.cols, policy)
    return ctx.memo[key]


def _layer_bounds(
    pass_: str, ctx: LayerContext, rows: int, cols: int, policy: str | None
) -> tuple[int, int, int, int, int]:
    work = ctx.work
    lay = ctx.layout(pass_)
    dense_tiles = channel_tiles(lay.groups, lay.ch, cols)
    effective = work.total(pass_, "input+output")
    bound = mapping_bound(
        effective, lay.positions * len(dense_tiles), max(t.width for t in dense_tiles), rows, cols
    )
    mac_bound = math.ceil(effective / (rows * cols)) if effective else 0
    design = work.total(pass_, policy) if policy is not None else effective
    return effective, work.total(pass_, "dense"), design, bound, mac_bound


@dataclass(frozen=True)
class Computed:
    """One candidate (a, σ) of a pass computed: the action totals of its items, the compute of every
    (channel tile, stream block, position block) and its dispatched items, and each tile's schedule."""

    mac_issued: int
    mac_nonzero: int
    metadata_bits: int
    compute: np.ndarray  # int64 [tiles, σ, a]
    items: np.ndarray  # int64 [tiles, σ, a]
    blocks: list[schedule.BlockCompute]

    @cached_property
    def totals(self) -> dict[str, int]:
        """Each of the schedules' counts summed over every tile (work, fill/drain, items, buffer
        reads and writes, store loads): tiles that share a schedule add its sums once each, and
        designs that share this candidate read them once."""
        times: dict[int, list] = {}
        for bc in self.blocks:
            times.setdefault(id(bc), [bc, 0])[1] += 1
        return {
            name: sum(n * int(getattr(bc, name).sum()) for bc, n in times.values())
            for name in ("work", "fill_drain", "items", "reads", "writes", "store_loads")
        }


def _computed(items: list[TileItems], blocks: list[schedule.BlockCompute], compute, count) -> Computed:
    return Computed(
        sum(it.mac_issued for it in items),
        sum(it.mac_nonzero for it in items),
        sum(it.metadata_bits for it in items),
        compute,
        count,
        blocks,
    )


@dataclass
class _Pass:
    """What one pass of one layer needs on one design, shared by both organisations."""

    pass_: str
    ctx: LayerContext
    arch: Arch
    lay: PassLayout
    tiles: list[Tile]
    tensors: PassTensors
    capacity: int
    compacted: bool
    sets: SlotSets | None
    key: int  # the number of (compute_key, channel tiles) in the context: what its compute depends on

    def shared(self, a: int, sigma: int, make) -> Computed:
        """The compute of candidate (a, σ), made once per layer for every design with the same key."""
        key = (self.key, a, sigma)
        if key not in self.ctx.computed:
            self.ctx.computed[key] = make()
        return self.ctx.computed[key]

    @property
    def masks(self) -> LayerMasks:
        return self.ctx.masks

    def items_for(self, part: Partition | None, per_store_loads: bool) -> list[TileItems]:
        pass_, arch, ctx, masks = self.pass_, self.arch, self.ctx, self.ctx.masks
        m = mapping(pass_)
        opts = arch.skipping.of(pass_)
        length, nonzero, bc = ctx.counts(pass_, part)
        both_max = None
        if m.two_sided and opts.pe_operand and arch.skipping.broadcast_width > 1:
            bc = bc if bc is not None else ctx.blocks(pass_, uniform_blocks(pass_, masks.geometry, 1))
            both_max = block_both_max(masks, bc, self.tiles)
        needed = ctx.needed() if m.output_skip and opts.outputs != "none" else None
        both_totals = ctx.both_totals(self.tiles) if m.two_sided else None
        return build_items(
            pass_, self.lay, self.tiles, arch, needed, (length, nonzero), both_totals, both_max, self.sets,
            per_store_loads=per_store_loads, memo=(ctx.items, (pass_, part)),
        )  # fmt: skip

    def blocks_of(self, a: int) -> np.ndarray:
        lo, hi = bounds(self.lay.rows, a)
        return np.repeat(np.arange(a, dtype=np.int64), hi - lo)


def _setup(pass_: str, ctx: LayerContext, arch: Arch) -> _Pass:
    o = arch.organisation
    lay = ctx.layout(pass_)
    tensors = pass_tensors(pass_, ctx.masks, arch, lay.rows)
    capacity = o.memory.global_buffer_bytes // (2 if o.memory.double_buffering else 1)
    compacted = compacts(arch, pass_, lay)
    tiles = compaction_tiles(arch, lay, tensors.b_bytes, capacity) if compacted else None
    if tiles is None:
        tiles = channel_tiles(lay.groups, lay.ch, o.pe_array.cols)
    by_store = compacted and arch.skipping.lanes == "matched"
    sets = ctx.slot_sets(o.pe_array.cols, by_store) if compacted else None
    ids = ctx.compute_ids
    key = ids.setdefault((compute_key(arch, pass_), tuple(tiles)), len(ids))
    return _Pass(pass_, ctx, arch, lay, tiles, tensors, capacity, compacted, sets, key)


def compute_key(arch: Arch, pass_: str) -> tuple:
    """What a pass's items and their schedules depend on (§2–§5): its timing key less what only the
    buffer tiling (§6) reads — the buffer's size, double buffering, the DRAM rate — and names. The
    equal-area designs with more buffer share their twin's compute."""
    o = arch.organisation
    memory = o.memory.model_copy(
        update={"global_buffer_bytes": 64, "double_buffering": False, "dram_gbps": 1.0}
    )
    org = o.model_copy(update={"name": "", "description": "", "memory": memory})
    key = timing_key(arch, pass_)
    return (*key[:2], org, *key[3:])


def lane_conflicts(arch: Arch, compacted: bool) -> bool:
    """Compacted items serialise the channels of their set that share a lane (c mod C) on their
    row's crossbar, on both organisations (§3, §4): lanes `modulo`. Slots with one channel per lane
    (`matched`) and a lane per domain channel (`full`) have none."""
    return compacted and arch.skipping.lanes == "modulo"


def _lockstep_plan(p: _Pass, twin: tuple[int, int, int] | None) -> Plan:
    """§3 on `systolic`: folds per (stream block, position block, work set), stream blocks of the
    tiling's σ cut uniformly (§6)."""
    arch, pass_, g = p.arch, p.pass_, p.masks.geometry
    o = arch.organisation
    item_cache: dict[int, list[TileItems]] = {}

    def ranges(sigma: int) -> list[tuple[int, int]]:
        part = uniform_blocks(pass_, g, sigma)
        return list(zip(part.starts, part.stops, strict=True))

    def make(a: int, sigma: int) -> Computed:
        if sigma not in item_cache:
            part = None if sigma == 1 else uniform_blocks(pass_, g, sigma)
            item_cache[sigma] = p.items_for(part, per_store_loads=lane_conflicts(arch, p.compacted))
        items = item_cache[sigma]
        block_of_row = p.blocks_of(a)
        done: dict[int, schedule.BlockCompute] = {}
        blocks = []
        for it in items:
            if id(it) not in done:  # tiles sharing items share their schedule
                done[id(it)] = schedule.lockstep(it, block_of_row, a, arch, pass_, p.sets)
            blocks.append(done[id(it)])
        compute = np.stack([bc.compute for bc in blocks])
        return _computed(items, blocks, compute, np.stack([bc.items for bc in blocks]))

    def compute_for(a: int, sigma: int):
        c = p.shared(a, sigma, lambda: make(a, sigma))
        return c.compute, c.items

    return choose_tiling(
        p.tensors, p.tiles, p.capacity, o.dram_bytes_per_cycle, o.memory.double_buffering, units(pass_, g),
        ranges, compute_for, f"layer {p.masks.name} {pass_} on {arch.name}",
        o.fd if o.fill_drain == "overlapped" else 0, shared=p.ctx.tilings, extra=twin,
    )  # fmt: skip


def _rows_plan(p: _Pass, twin: tuple[int, int, int] | None) -> Plan:
    """§4 on `rows`: chunk-major rows, chunks sized by the PE stores, the tiling's stream blocks
    runs of whole chunks (§6)."""
    arch, pass_ = p.arch, p.pass_
    o = arch.organisation
    m = mapping(pass_)
    opts = arch.skipping.of(pass_)
    vb = o.precision.value_bytes
    part = store_chunks(pass_, p.masks, o.pe_store_entries // store_channels(arch, p.tiles, p.compacted))
    chunk_items: list[TileItems] = []  # built when a candidate is not shared
    eps = np.array(part.entries, np.int64)
    store_load = []
    for tile in p.tiles:
        load = eps * vb * tile.width
        if m.two_sided and opts.pe_operand:  # the PEs' own operand's bitmap
            load = load + tile.width * ceil_div(eps, 8)
        store_load.append(load)
    per_a: dict[int, tuple[list[schedule.BlockCompute], np.ndarray, np.ndarray]] = {}

    def groups_of(sigma: int) -> list[tuple[int, int]]:
        size = -(-part.count // sigma)
        return [(lo, min(part.count, lo + size)) for lo in range(0, part.count, size)]

    def ranges(sigma: int) -> list[tuple[int, int]]:
        return [(part.starts[lo], part.stops[hi - 1]) for lo, hi in groups_of(sigma)]

    def make(a: int, sigma: int) -> Computed:
        if not chunk_items:
            chunk_items.extend(p.items_for(part, per_store_loads=lane_conflicts(arch, p.compacted)))
        if a not in per_a:  # each tile's schedule per chunk, [tiles, chunks, a], for every σ
            block_of_row = p.blocks_of(a)
            done: dict[int, schedule.BlockCompute] = {}
            blocks = []
            for ti, it in enumerate(chunk_items):
                if id(it) not in done:
                    done[id(it)] = schedule.independent(it, block_of_row, a, arch, pass_, store_load[ti])
                blocks.append(done[id(it)])
            per_a[a] = blocks, np.stack([bc.compute for bc in blocks]), np.stack([bc.items for bc in blocks])
        blocks, compute, items = per_a[a]
        cuts = [lo for lo, _ in groups_of(sigma)]  # stream block: a run of whole chunks
        return _computed(
            chunk_items, blocks, np.add.reduceat(compute, cuts, axis=1), np.add.reduceat(items, cuts, axis=1)
        )

    def compute_for(a: int, sigma: int):
        c = p.shared(a, sigma, lambda: make(a, sigma))
        return c.compute, c.items

    return choose_tiling(
        p.tensors, p.tiles, p.capacity, o.dram_bytes_per_cycle, o.memory.double_buffering, part.count,
        ranges, compute_for, f"layer {p.masks.name} {pass_} on {arch.name}", 0, shared=p.ctx.tilings,
        extra=twin,
    )  # fmt: skip


def _ideal_cost(effective: int, dense: int, design: int, bound: int, mac_bound: int) -> PassCost:
    actions = dict.fromkeys(ACTIONS, 0.0)
    actions["mac"] = float(effective)
    return PassCost(
        cycles=bound, compute_cycles=bound, tile_compute=[bound], order="channels", blocks=(1, 1, 1),
        dram_a=0, dram_b=0, dram_o=0, items=0, effective_macs=effective, dense_macs=dense,
        design_macs=design, mapping_bound=bound, mac_bound=mac_bound, mac_issued=effective,
        mac_nonzero=effective, components={"work": bound, "fill_drain": 0, "delivery": 0, "exposed": 0},
        actions=actions,
    )  # fmt: skip


def plain(arch: Arch) -> bool:
    """Runs exactly as its dense twin: nothing skipped, nothing compressed."""
    st = arch.storage
    return not arch.skipping.skips_work and st.activations == "dense" and st.gradients == "dense"


def _timed_pass(pass_: str, ctx: LayerContext, loaded: LoadedArch) -> PassCost:
    """Cycles, DRAM bytes and actions (MACs ungated, unpriced) of one pass."""
    arch = loaded.arch
    if pass_ == "bwd_data" and not ctx.masks.needs_bwd_data:  # the first layer: no design runs BWD-D
        return _zero_cost()
    effective, dense, design, bound, mac_bound = _bounds(pass_, ctx, arch)
    if arch.ideal:
        return _ideal_cost(effective, dense, design, bound, mac_bound)
    p = _setup(pass_, ctx, arch)
    twin = None
    if not p.compacted and not plain(arch):  # §6: the dense twin's tiling is one more candidate
        dense = ctx.timed(pass_, loaded.with_arch(arch.twin()))
        twin = dense.blocks
    plan = _lockstep_plan(p, twin) if arch.lockstep else _rows_plan(p, twin)
    done = p.shared(plan.a, plan.sigma, None)
    fd = arch.organisation.fd
    work_cycles = done.totals["work"]
    fill = done.totals["fill_drain"] + fd * plan.overhead_tiles
    compute = int(sum(plan.tile_compute))
    return PassCost(
        cycles=plan.cycles,
        compute_cycles=compute,
        tile_compute=plan.tile_compute,
        order=plan.order,
        blocks=(plan.a, plan.b, plan.sigma),
        dram_a=plan.dram_a,
        dram_b=plan.dram_b,
        dram_o=plan.dram_o,
        items=done.totals["items"],
        effective_macs=effective,
        dense_macs=dense,
        design_macs=design,
        mapping_bound=bound,
        mac_bound=mac_bound,
        mac_issued=done.mac_issued,
        mac_nonzero=done.mac_nonzero,
        components={
            "work": work_cycles,
            "fill_drain": fill,
            "delivery": compute - work_cycles - fill,
            "exposed": plan.exposed,
        },
        actions=_actions(done, plan, arch, p.compacted),
    )


def crossbar_factor(arch: Arch, compacted: bool) -> int:
    """Row lengths of wire a compacted operand crosses (§9): a crossbar one, a Benes network two
    (its 2·log₂N − 1 switch stages span about two rows), none where each PE reads its own store."""
    if not compacted:
        return 0
    if arch.skipping.lanes == "full":
        return 2 if arch.lockstep else 0
    return 1


def _actions(done: Computed, plan: Plan, arch: Arch, compacted: bool) -> dict[str, float]:
    vb = arch.precision.value_bytes
    mac = done.mac_issued
    loads = plan.dram_a + plan.dram_b
    reads = done.totals["reads"] + plan.dram_o
    writes = done.totals["writes"] + loads
    rows_org = not arch.lockstep
    store_loads = done.totals["store_loads"] if rows_org else 0
    # every store of a row holds the whole domain with lanes `full`: C copies of each load
    copies = arch.pe_array.cols if compacted and arch.skipping.lanes == "full" else 1
    return {
        "mac": float(mac),
        "mac_gated": 0.0,
        "buffer_read_bytes": float(reads),
        "buffer_write_bytes": float(writes),
        "store_read_bytes": float(mac * vb) if rows_org else 0.0,
        "store_write_bytes": float(arch.pe_array.rows * store_loads * copies) if rows_org else 0.0,
        "metadata_bits": float(done.metadata_bits),
        "crossbar_bytes": float(mac * vb * crossbar_factor(arch, compacted)),
        "dram_bytes": float(plan.dram_bytes),
    }


def timing_key(arch: Arch, pass_: str) -> tuple:
    """What one pass's timing and (ungated) actions depend on besides the layer: the organisation,
    the pass's features and the storage of its tensors. Designs that agree on it share the pass
    (e.g. `input-skip` and `agos` in FWD); zero gating only re-prices it."""
    m = mapping(pass_)
    opts = arch.skipping.of(pass_)
    kinds = (storage_kind(arch, t) for t in (m.stream, m.own, m.output))
    storage = tuple(kind for kind in kinds if kind is not None)
    window = arch.skipping.window if opts.stream else None
    bw = arch.skipping.broadcast_width if opts.pe_operand else 1
    # compacted dX tiles are cut into domains of at most compaction_domain channels, whose channels
    # reach the PEs through the lanes
    sk = arch.skipping
    compacted = m.output_skip and opts.outputs == "compacted"
    domain = (sk.compaction_domain, sk.lanes, sk.lane_ports) if compacted else None
    return (pass_, arch.ideal, arch.organisation, opts, window, bw, domain, storage)


def mask_independent(arch: Arch, pass_: str, key: tuple | None = None) -> bool:
    """A pass that skips nothing and stores its tensors dense times the same on any masks of the
    same geometry (so repeated layers share it). `key`: its timing key, when already made."""
    key = key if key is not None else timing_key(arch, pass_)
    opts = arch.skipping.of(pass_)
    return (
        not arch.ideal
        and not (opts.stream or opts.pe_operand or opts.outputs != "none")
        and all(s == "dense" for s in key[-1])
    )


def _nonzero_macs(pass_: str, ctx: LayerContext) -> int:
    """MACs with both operands nonzero: the shared stream's zeros, and the own operand's if it has any."""
    return ctx.work.total(pass_, "input+output" if mapping(pass_).two_sided else "input")


def _gated(cost: PassCost, nonzero: int, arch: Arch) -> dict[str, float]:
    """The pass's actions with MACs whose operand is zero gated (their operand reads skipped);
    `nonzero`: the pass's MACs with both operands nonzero."""
    if not arch.skipping.zero_gating or arch.ideal:
        return cost.actions
    actions = dict(cost.actions)
    actions["mac"] = float(nonzero)
    actions["mac_gated"] = float(cost.mac_issued - nonzero)
    if not arch.lockstep:
        actions["store_read_bytes"] = float(nonzero * arch.precision.value_bytes)
    return actions


class SharedPasses:
    """Mask-independent passes by (geometry, timing key), across the layers of a network."""

    def __init__(self) -> None:
        self.passes: dict[tuple, PassCost] = {}


def simulate_pass(
    pass_: str, ctx: LayerContext, loaded: LoadedArch, area: AreaReport, shared: SharedPasses | None = None
) -> PassCost:
    """One pass on one design, priced: the design as the bypass rule runs it on this layer (§11),
    timing shared between designs (and, when it does not depend on the masks, between layers of
    one geometry) and re-priced for each."""
    decision = decide(loaded.arch, pass_, ctx)
    arch = decision.arch
    run = loaded if arch is loaded.arch else loaded.with_arch(arch)
    key = timing_key(arch, pass_)
    independent = mask_independent(arch, pass_, key)
    cost = ctx.passes.get(key)
    if cost is None:
        if shared is not None and independent:
            gkey = (ctx.work.geometry, ctx.masks.needs_bwd_data, key)
            cost = shared.passes.get(gkey)
            if cost is None:
                cost = shared.passes[gkey] = _timed_pass(pass_, ctx, run)
        else:
            cost = _timed_pass(pass_, ctx, run)
        ctx.passes[key] = cost
    nonzero = cost.mac_nonzero
    if independent and cost.mac_issued:
        # the timing may come from another layer of the geometry; the nonzero count is this layer's
        nonzero = _nonzero_macs(pass_, ctx)
    actions = _gated(cost, nonzero, arch)
    cycles = cost.cycles
    if decision.cycles or decision.popcount_bits:
        actions = dict(actions)
        actions["metadata_bits"] += decision.popcount_bits
        cycles += decision.cycles
    parts = price(actions, run, area, cycles)
    if pass_ == "bwd_data" and not ctx.masks.needs_bwd_data:
        bounds = (0, 0, 0, 0, 0)
    else:
        bounds = _bounds(pass_, ctx, arch)  # the layer's own, when the timing came from its twin layer
    effective, dense, design, bound, mac_bound = bounds
    return replace(
        cost,
        cycles=cycles,
        mac_nonzero=nonzero,
        actions=actions,
        effective_macs=effective,
        dense_macs=dense,
        design_macs=design,
        mapping_bound=bound,
        mac_bound=mac_bound,
        energy_pj=sum(parts.values()),
        energy_breakdown=parts,
        bypassed=decision.off,
        decision_cycles=decision.cycles,
        predicted=_finite_or_none(decision.predicted),
    )


def _finite_or_none(value: float | None) -> float | None:
    """A JSON ratio: the rule's ∞ (output skip can never finish, §11) is recorded as unknown."""
    return value if value is not None and math.isfinite(value) else None


def layer_area(loaded: LoadedArch) -> AreaReport:
    return design_area(loaded.arch, loaded.area)


def simulate_layer(
    ctx: LayerContext, loaded: LoadedArch, area: AreaReport, shared: SharedPasses | None = None
) -> dict[str, PassCost]:
    return {p: simulate_pass(p, ctx, loaded, area, shared) for p in PASSES}
