"""docs/cost-model.md §11, written again from the reference's own enumeration of the masks: which
features the bypass rule leaves on for one pass of one layer. Shares no code with
agos.cost.bypass; the two must agree on every decision (tests/test_bypass.py)."""

from __future__ import annotations

from dataclasses import dataclass
from math import inf

from agos.arch.schema import Arch
from agos.reference.mapping import PassMapping, ceil_div
from agos.workload.masks import LayerMasks

ROUND = 9


@dataclass
class RuleOutcome:
    arch: Arch  # the design as it runs this pass
    switched_off: list[str]
    cycles: int
    popcount_bits: int


def _ones(nested) -> int:
    if isinstance(nested, list):
        return sum(_ones(x) for x in nested)
    return int(bool(nested))


def _numel(nested) -> int:
    if isinstance(nested, list):
        return sum(_numel(x) for x in nested)
    return 1


def rule(pass_: str, masks: LayerMasks, arch: Arch) -> RuleOutcome:
    sk, st = arch.skipping, arch.storage
    opts = sk.of(pass_)
    stream_of = {"fwd": "x", "bwd_data": "dy", "bwd_weight": "x"}[pass_]
    own_of = {"fwd": "w", "bwd_data": "w", "bwd_weight": "dy"}[pass_]
    skips_outputs = pass_ == "bwd_data"
    involved = {stream_of, own_of}
    consulted = (
        opts.stream
        or opts.pe_operand
        or (skips_outputs and opts.outputs != "none")
        or ("x" in involved and st.activations == "compressed")
        or ("dy" in involved and st.gradients == "compressed")
    )
    if arch.ideal or sk.bypass == "never" or not consulted:
        return RuleOutcome(arch, [], 0, 0)
    x = masks.x_nonzero.tolist()
    dy = masks.dy_nonzero.tolist()
    vb = arch.organisation.precision.value_bytes
    limit = 1 - 1 / (8 * vb)
    dens = {"x": _ones(x) / _numel(x), "dy": _ones(dy) / _numel(dy)}
    storage = {"activations": st.activations, "gradients": st.gradients, "data_gradients": st.data_gradients}
    off: list[str] = []
    for field, t in (("activations", "x"), ("gradients", "dy")):
        if storage[field] == "compressed" and dens[t] > limit:
            storage[field] = "dense"
            if t in involved:
                off.append(f"compressed {t}")
    stream, join, outputs = opts.stream, opts.pe_operand, opts.outputs
    threshold = round(1 - sk.bypass_margin, ROUND)
    walk_floor = 0.0 if sk.window is None else 1 / sk.window  # a row walks at least ⌈T/L⌉
    d_stream = dens[stream_of]
    if stream and (d_stream > limit or round(max(d_stream, walk_floor), ROUND) >= threshold):
        stream, join = False, False
        off.append("stream skip")
    if join:
        if sk.broadcast_width == 1 or dens["dy"] > limit:
            gain = False
        else:
            gain = round(_join_predicted(masks, arch, d_stream, dens["dy"]), ROUND) < threshold
        if not gain:
            join = False
            off.append("two-sided join")
    if skips_outputs and outputs != "none" and _predicted(masks, arch, stream, dens["dy"]) >= threshold:
        outputs = "none"
        off.append("output skip")
    g = masks.geometry
    x_bits, y_bits = g.n * g.c * g.h * g.w, g.n * g.k * g.p * g.q
    if pass_ == "fwd":
        bits = x_bits
    elif pass_ == "bwd_data":
        bits = y_bits + (x_bits if opts.outputs != "none" else 0)
    else:
        bits = 0 if masks.needs_bwd_data else y_bits
    changed = dict(stream=stream, pe_operand=join, outputs=outputs)
    if changed == dict(stream=opts.stream, pe_operand=opts.pe_operand, outputs=opts.outputs) and storage == {
        "activations": st.activations,
        "gradients": st.gradients,
        "data_gradients": st.data_gradients,
    }:
        return RuleOutcome(arch, [], 1, bits)
    new_skipping = sk.model_copy(update={pass_: opts.model_copy(update=changed)})
    running = arch.model_copy(
        update={"skipping": new_skipping, "storage": st.model_copy(update=storage)}
    )
    return RuleOutcome(running, off, 1, bits)


def _join_predicted(masks: LayerMasks, arch: Arch, x_density: float, dy_density: float) -> float:
    """BWD-W with the join over one-sided skipping: the walked fraction of each row's entries and
    the buffer bytes of R items, the PEs' own dY bitmaps added."""
    org, sk = arch.organisation, arch.skipping
    mp = PassMapping("bwd_weight", masks, arch)
    lengths = [len(mp.stream(0, position)) for position, _, _ in mp.positions]
    t_bar = sum(lengths) / max(1, len(lengths))
    width = sum(t.width for t in mp.tiles) / len(mp.tiles)
    floor = 0.0 if sk.window is None else 1 / sk.window
    vb = org.precision.value_bytes
    ab = org.precision.accumulate_bytes
    per_entry = min(x_density * vb + 1 / 8, vb)
    common = org.pe_array.rows * (per_entry * t_bar + width * ab) + t_bar * width * vb
    bw = org.memory.bandwidth_bytes_per_cycle
    one_sided = max(t_bar * max(x_density, floor), common / bw)
    if one_sided == 0:
        return inf
    joined = max(x_density * dy_density, x_density / sk.broadcast_width, floor)
    return max(t_bar * joined, (common + t_bar * width / 8) / bw) / one_sided


def _predicted(masks: LayerMasks, arch: Arch, stream: bool, dy_density: float) -> float:
    """Output skip's predicted BWD-D time over the pass without it, from the same counts the
    hardware has: slots per domain, densities, the shape, the buffer's bandwidth."""
    org, sk = arch.organisation, arch.skipping
    on = PassMapping("bwd_data", masks, arch)  # its items: the slots the compaction unit forms
    plain = sk.model_copy(update={"bwd_data": sk.bwd_data.model_copy(update={"outputs": "none"})})
    off = PassMapping("bwd_data", masks, arch.model_copy(update={"skipping": plain}))
    on_items = [item for tile_items in on.items for ws in tile_items for item in ws]
    n_on = len(on_items)
    n_off = sum(len(ws) for tile_items in off.items for ws in tile_items)
    if n_on == 0:
        return 0.0
    lengths = [len(on.stream(0, position)) for position, _, _ in on.positions]
    t_bar = sum(lengths) / max(1, len(lengths))
    needed = masks.dx_needed.tolist()
    dx_density = _ones(needed) / _numel(needed)
    L = sk.window
    vb = org.precision.value_bytes
    ab = org.precision.accumulate_bytes
    bw = org.memory.bandwidth_bytes_per_cycle
    if stream:
        frac = max(1 / L if L else 0.0, dy_density)
        walk = dy_density
        entry_bytes = min(dy_density * vb + 1 / 8, vb) * t_bar
    else:
        frac, walk, entry_bytes = 1.0, 1.0, vb * t_bar
    off_width = sum(t.width for t in off.tiles) / len(off.tiles)
    on_width = sum(item.width for item in on_items) / n_on if on.compacted else off_width
    R, C = org.pe_array.rows, org.pe_array.cols
    f_on = frac
    if on.compacted and sk.lanes == "modulo":  # each slot's lane conflicts, from its channel set
        ports = sk.lane_ports or 1
        per_item = []
        for item in on_items:
            load = max(sum(1 for c in item.channel_set if c % C == lane) for lane in range(C))
            per_item.append(max(frac, walk * ceil_div(load, ports)))
        f_on = sum(per_item) / len(per_item)
    if org.sync == "lockstep":
        fd = org.fd if org.fill_drain == "per_fold" else 0
        union = off_width
        if on.compacted:
            union = max(len(t.channels) for t in on.tiles) * (1 - (1 - dx_density) ** R)
        fold_on = R * (entry_bytes + on_width * vb) + t_bar * union * vb
        fold_off = R * (entry_bytes + off_width * vb) + t_bar * off_width * vb
        t_on = n_on / R * (fd + max(t_bar * f_on, fold_on / bw))
        t_off = n_off / R * (fd + max(t_bar * frac, fold_off / bw))
        work = n_on * f_on / (n_off * frac) if frac else inf
    else:
        fd = org.fd
        E = org.pe_store_entries
        g = masks.geometry
        taps = g.r * g.s
        per = 1
        if on.compacted:
            w = max(len(t.channels) for t in on.tiles)
            per = w if sk.lanes == "full" else ceil_div(w, C)
        blocks_on, blocks_off = (E // per) // taps, E // taps
        if blocks_on == 0:
            return inf
        kg = g.k // g.groups
        j_on, j_off = ceil_div(kg, blocks_on), ceil_div(kg, blocks_off)
        all_channels = (g.c // g.groups) * g.groups
        b_on = n_on * (entry_bytes + on_width * (vb + 2 * ab * (j_on - 1)))
        b_on = b_on + j_on * blocks_on * taps * vb * all_channels
        b_off = n_off * (entry_bytes + off_width * (vb + 2 * ab * (j_off - 1)))
        b_off = b_off + j_off * blocks_off * taps * vb * all_channels
        t_on = len(on.tiles) * j_on * fd + max(n_on * t_bar * f_on / R, b_on / bw)
        t_off = len(off.tiles) * j_off * fd + max(n_off * t_bar * frac / R, b_off / bw)
        work = n_on * f_on / (n_off * frac) if frac else inf
    if on.compacted:  # the first domain's weights load exposed, before any of its compute
        g = masks.geometry
        widest = max(len(t.channels) for t in on.tiles)
        weights = g.k * (g.c // g.groups) * g.r * g.s * vb
        extra = (widest - min(C, on.ch)) * weights / (on.ch * on.G) / (org.memory.dram_gbps / org.clock_ghz)
        t_on = t_on + extra
    if round(work, ROUND) >= 1:
        return inf
    if t_off == 0:
        return inf if t_on else 1.0
    return round(t_on / t_off, ROUND)
