"""The bypass rule (docs/cost-model.md §11): every feature that can cost more than it saves —
compressed storage, stream skip, the two-sided join, output skip — is switched on per layer and
pass only when what the hardware knows before the pass predicts a gain: the layer's shape, the
arch, and popcounts of masks already produced (X and the needed-dX mask at the end of FWD, dY when
the layer above has written it). Never the pass's own simulated cost: that is the oracle, reported
beside the rule as an upper bound (`agos.cost.network.oracle`).

The cycle-stepping reference writes the same rule again from its own enumeration of the masks
(agos.reference.bypass); the two must take the same decision on every layer and pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agos.arch.schema import Arch, PassSkipping
from agos.cost.layout import ceil_div, channel_tiles, compaction_tiles, store_channels
from agos.workload.passes import mapping

if TYPE_CHECKING:
    from agos.cost.model import LayerContext

DIGITS = 9  # predicted ratios are compared rounded, so that two implementations agree bit for bit


@dataclass(frozen=True)
class Decision:
    """The design as it runs one pass of one layer."""

    arch: Arch
    off: tuple[str, ...] = ()  # what the rule switched off, in words
    predicted: float | None = None  # output skip's predicted time, on / off
    cycles: int = 0  # the comparison: one cycle per pass that decides anything
    popcount_bits: int = 0  # mask bits the popcount unit reads for this pass's decisions


def break_even(value_bytes: int) -> float:
    """The density above which values + a bitmap take more bytes than the dense values."""
    return 1 - 1 / (8 * value_bytes)


def _decides(arch: Arch, pass_: str) -> bool:
    if arch.ideal or arch.skipping.bypass == "never":
        return False
    m, opts, st = mapping(pass_), arch.skipping.of(pass_), arch.storage
    compressed = {"x": st.activations, "dy": st.gradients}
    return (
        opts.stream
        or opts.pe_operand
        or (m.output_skip and opts.outputs != "none")
        or any(compressed.get(t) == "compressed" for t in (m.stream, m.own))
    )


def decide(arch: Arch, pass_: str, ctx: LayerContext) -> Decision:
    if not _decides(arch, pass_) or (pass_ == "bwd_data" and not ctx.masks.needs_bwd_data):
        return Decision(arch)
    masks, sk = ctx.masks, arch.skipping
    g = masks.geometry
    m, opts = mapping(pass_), sk.of(pass_)
    theta = break_even(arch.precision.value_bytes)
    density = {"x": masks.x_count / g.x_numel, "dy": masks.dy_count / g.y_numel}
    off: list[str] = []
    storage = arch.storage
    if storage.activations == "compressed" and density["x"] > theta:
        storage = storage.model_copy(update={"activations": "dense"})
        if "x" in (m.stream, m.own):
            off.append(f"compressed X (density {density['x']:.3f} > {theta:.4f})")
    if storage.gradients == "compressed" and density["dy"] > theta:
        storage = storage.model_copy(update={"gradients": "dense"})
        if "dy" in (m.stream, m.own):
            off.append(f"compressed dY (density {density['dy']:.3f} > {theta:.4f})")
    stream, join, outputs = opts.stream, opts.pe_operand, opts.outputs
    keep = round(1 - sk.bypass_margin, DIGITS)  # a feature stays on only if predicted below this
    inv_l = 1 / sk.window if sk.window else 0.0
    rho = density[m.stream]
    if stream and (rho > theta or round(max(rho, inv_l), DIGITS) >= keep):
        stream = join = False  # a row walks max(s, ⌈T/L⌉) of its T entries
        off.append(f"stream skip (stream density {rho:.3f}, window {sk.lookahead})")
    if join and sk.broadcast_width == 1:
        join = False  # b_k ≤ s: with one entry per cycle the join cannot shorten a row's walk
        off.append("two-sided join (broadcast width 1: it cannot save time)")
    elif join:
        ratio = join_ratio(arch, ctx, rho, density["dy"])
        if density["dy"] > theta or round(ratio, DIGITS) >= keep:
            join = False
            off.append(f"two-sided join (dY density {density['dy']:.3f})")
    predicted = None
    if m.output_skip and outputs != "none":
        predicted = output_ratio(arch, ctx, stream)
        if predicted >= keep:
            outputs = "none"
            off.append(f"output skip (predicted {predicted:.3f}× the time without it)")
    bits = _popcount_bits(arch, pass_, ctx)
    new_opts = PassSkipping(stream=stream, pe_operand=join, outputs=outputs)
    if new_opts == opts and storage == arch.storage:
        return Decision(arch, (), predicted, 1, bits)
    skipping = sk.model_copy(update={pass_: new_opts})
    running = arch.model_copy(update={"skipping": skipping, "storage": storage})
    return Decision(running, tuple(off), predicted, 1, bits)


def join_ratio(arch: Arch, ctx: LayerContext, rho_x: float, rho_dy: float) -> float:
    """The two-sided join's predicted BWD-W time over one-sided stream skip (§11): a row walks
    max(ρ_X·ρ_dY, ρ_X / B_w, 1/L) instead of max(ρ_X, 1/L) of its T̄ entries, and the PEs' own dY
    bitmaps (a column's on `systolic`, a store's on `rows`) add to the bytes the buffer delivers."""
    o, sk = arch.organisation, arch.skipping
    lay = ctx.layout("bwd_weight")
    rows, cols = o.pe_array.rows, o.pe_array.cols
    vb, ab = o.precision.value_bytes, o.precision.accumulate_bytes
    inv_l = 1 / sk.window if sk.window else 0.0
    t_mean = int(lay.length.sum()) / max(1, lay.positions)
    tiles = channel_tiles(lay.groups, lay.ch, cols)
    width = sum(t.width for t in tiles) / len(tiles)
    one = max(rho_x, inv_l)
    two = max(rho_x * rho_dy, rho_x / sk.broadcast_width, inv_l)
    stream_bytes = min(rho_x * vb + 1 / 8, vb) * t_mean
    # per R items: their streams, their dW outputs, the column (or store) operands of dY
    base = rows * (stream_bytes + width * ab) + t_mean * width * vb
    bitmaps = t_mean * width / 8
    bw = o.memory.bandwidth_bytes_per_cycle
    before = max(t_mean * one, base / bw)
    if not before:
        return math.inf
    return max(t_mean * two, (base + bitmaps) / bw) / before


def _popcount_bits(arch: Arch, pass_: str, ctx: LayerContext) -> int:
    """Each mask is counted once, as it is written: X for FWD, dY and the needed-dX mask for BWD-D
    (dY for BWD-W when the layer has no BWD-D)."""
    g, masks = ctx.masks.geometry, ctx.masks
    if pass_ == "fwd":
        return g.x_numel
    if pass_ == "bwd_data":
        return g.y_numel + (g.x_numel if arch.skipping.bwd_data.outputs != "none" else 0)
    return 0 if masks.needs_bwd_data else g.y_numel


def output_ratio(arch: Arch, ctx: LayerContext, stream: bool) -> float:
    """Output skip's predicted BWD-D time over the same pass without it (§11), from the layer's
    shape, the arch, the dY and needed-dX densities and the slot counts the compaction unit forms
    as the needed-dX mask is written. Items of mean stream length T̄ walk a fraction f of it
    (stream skip: max(1/L, dY density)) and pay their lane conflicts (known per slot); a lockstep
    fold lasts fd + max(F, bytes / BW), its column operands the union of R positions' needs
    (each channel in it with chance u); independent rows pay one fill/drain per store chunk and
    the partial sums that leave the PEs between chunks."""
    masks, o, sk = ctx.masks, arch.organisation, arch.skipping
    g = masks.geometry
    lay = ctx.layout("bwd_data")
    rows, cols = o.pe_array.rows, o.pe_array.cols
    vb, ab = o.precision.value_bytes, o.precision.accumulate_bytes
    bw = o.memory.bandwidth_bytes_per_cycle
    rho_dy = masks.dy_count / g.y_numel
    rho_dx = masks.dx_count / g.x_numel
    t_mean = int(lay.length.sum()) / max(1, lay.positions)
    window = sk.window
    walk = rho_dy if stream else 1.0
    f = max(1 / window if window else 0.0, rho_dy) if stream else 1.0
    stream_bytes = min(rho_dy * vb + 1 / 8, vb) * t_mean if stream else vb * t_mean
    off_tiles = channel_tiles(lay.groups, lay.ch, cols)
    n_off = lay.positions * len(off_tiles)
    width_off = sum(t.width for t in off_tiles) / len(off_tiles)
    compacted = sk.bwd_data.outputs == "compacted" and lay.ch >= cols
    capacity = o.memory.global_buffer_bytes // (2 if o.memory.double_buffering else 1)
    needed = ctx.needed()
    if compacted:
        tiles = compaction_tiles(arch, lay, g.w_numel * vb, capacity)
        sets = ctx.slot_sets(cols, sk.lanes == "matched")
        n_on = sum(len(sets.items(t)[0]) for t in tiles)
        width_on = sum(int(sets.items(t)[2].sum()) for t in tiles) / max(1, n_on)  # |S| per item
    else:  # static (or compacted with packed groups): a (position, tile) item exists if needed there
        tiles = off_tiles
        n_on = 0
        for t in tiles:
            count = sum(needed.count(gr, t.lo, t.hi) for gr in t.groups)
            n_on += int((count > 0).sum())
        width_on = width_off
    if not n_on:
        return 0.0
    f_on = f  # per item, the slower of its walk and its lane conflicts (known per slot)
    if compacted and sk.lanes == "modulo":
        f_on = _mean_lane_time(ctx, tiles, sets, sk.lane_ports or 1, f, walk)
    if arch.lockstep:
        fd = o.fd if o.fill_drain == "per_fold" else 0
        union = width_off
        if compacted:  # a channel is in the union of R positions' needs with chance u
            union = max(t.per_group for t in tiles) * (1 - (1 - rho_dx) ** rows)
        fold_on = rows * (stream_bytes + width_on * vb) + t_mean * union * vb
        fold_off = rows * (stream_bytes + width_off * vb) + t_mean * width_off * vb
        on = n_on / rows * (fd + max(t_mean * f_on, fold_on / bw))
        off = n_off / rows * (fd + max(t_mean * f, fold_off / bw))
        work = n_on * f_on / (n_off * f) if f else math.inf
    else:
        fd = o.fd
        per = store_channels(arch, tiles, compacted)
        taps = g.r * g.s
        e_on, e_off = (o.pe_store_entries // per) // taps, o.pe_store_entries // taps
        if not e_on:
            return math.inf  # the stores cannot hold one block of the compacted stream
        j_on, j_off = ceil_div(g.k_per_group, e_on), ceil_div(g.k_per_group, e_off)
        channels = lay.ch * lay.groups  # every tile's store is loaded with its channels, per chunk
        bytes_on = n_on * (stream_bytes + width_on * (vb + 2 * ab * (j_on - 1)))
        bytes_on += j_on * e_on * taps * vb * channels
        bytes_off = n_off * (stream_bytes + width_off * (vb + 2 * ab * (j_off - 1)))
        bytes_off += j_off * e_off * taps * vb * channels
        on = len(tiles) * j_on * fd + max(n_on * t_mean * f_on / rows, bytes_on / bw)
        off = len(off_tiles) * j_off * fd + max(n_off * t_mean * f / rows, bytes_off / bw)
        work = n_on * f_on / (n_off * f) if f else math.inf
    if compacted:  # a domain's weights load before its first tile computes: exposed, not overlapped
        widest = max(t.per_group for t in tiles)
        on += (widest - min(cols, lay.ch)) * g.w_numel * vb / (lay.ch * lay.groups) / o.dram_bytes_per_cycle
    if round(work, DIGITS) >= 1:
        return math.inf  # it removes no work: whatever else it changes is not worth the risk
    if not off:
        return 1.0 if not on else math.inf
    return round(on / off, DIGITS)


def _mean_lane_time(ctx: LayerContext, tiles, sets, ports: int, f: float, walk: float) -> float:
    """The mean over the compacted items of max(f, walk·⌈λ / q⌉), summed in item order one
    addition at a time (the very float a Python loop gives); the same for every design with these
    domains, ports and walk, so kept in the layer's context."""
    key = ("lane time", tuple(tiles), sets.cols, sets.by_store, ports, f, walk)
    if key not in ctx.memo:
        loads = ceil_div(np.concatenate([sets.loads(t) for t in tiles]), ports)
        total = np.cumsum(np.maximum(f, walk * loads.astype(np.float64)))[-1]
        ctx.memo[key] = float(total) / loads.size
    return ctx.memo[key]


def _chunks(g, entries: int) -> int | None:
    """§4's BWD-D store chunks for `entries` per channel: blocks of ⌊E / (R_k·S_k)⌋ output channels."""
    size = entries // (g.r * g.s)
    return ceil_div(g.k_per_group, size) if size else None
