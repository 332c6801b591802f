"""Properties of the fast cost model that the mutation check (benchmarks/mutation.py) found no test
for: pricing (docs/cost-model.md §9) checked against the independent reference's actions and cycles,
the shipped tables against the figures they cite, static power, the vector unit's rule (§8), the
area a feature charges, the equal-area buffer step and the dense twin's link."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from agos.arch.area import design_area
from agos.arch.load import LoadedArch, load_arch
from agos.cost.model import LayerContext, layer_area, simulate_pass
from agos.cost.network import (
    dense_name,
    equal_area_candidates,
    grown_organisations,
    simulate_network,
    speedups,
)
from agos.cost.vector import vector_cost
from agos.reference import reference_pass
from agos.workload.counts import layer_work
from agos.workload.layer import geometry_of
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES

KIB = 1024


def _masks(seed: int = 0, c: int = 6, k: int = 5, n: int = 2, hw: int = 5) -> LayerMasks:
    conv = torch.nn.Conv2d(c, k, 3, padding=1)
    xs = torch.zeros(n, c, hw, hw)
    g = geometry_of(conv, xs, conv(xs), "l")
    gen = torch.Generator().manual_seed(seed)
    return LayerMasks(
        "l",
        g,
        True,
        torch.rand(g.x_shape, generator=gen) < 0.5,
        torch.rand(g.y_shape, generator=gen) < 0.6,
        torch.rand(g.x_shape, generator=gen) < 0.4,
        False,
    )


def _small(ref: str, dram_gbps: float = 4.0, buffer: int = 4 * KIB) -> LoadedArch:
    """The preset on a 4 × 4 array with a small buffer and slow DRAM: several buffer tiles, exposed
    transfers (pass cycles above compute cycles)."""
    base = load_arch(ref)
    o = base.arch.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": 4, "cols": 4}),
            "memory": o.memory.model_copy(update={"global_buffer_bytes": buffer, "dram_gbps": dram_gbps}),
            "pe_store_entries": 32,
        }
    )
    skipping = base.arch.skipping.model_copy(update={"bypass": "never"})  # the mechanisms, every one on
    arch = base.arch.model_copy(update={"organisation": org, "skipping": skipping})
    return base.with_arch(type(arch).model_validate(arch.model_dump()))


@pytest.mark.parametrize("ref", ["agos@systolic", "agos@rows", "zero-gate@rows", "dense@systolic"])
def test_energy_is_the_reference_actions_priced_by_the_table(ref):
    """§9: each energy part is its action counts times the table's price; crossbar bytes also
    cross one PE row (its length in mm); static energy is static power × the pass's cycles (all of
    them: exposed DRAM time included). Actions and cycles come from the independent reference."""
    loaded = _small(ref)
    arch, e = loaded.arch, loaded.energy
    area = layer_area(loaded)
    masks = _masks()
    ctx = LayerContext(masks, layer_work(masks))
    # a PE row spans C PEs, each a square of the PE array's area per PE
    pe_mm2 = area.components["pe array"] / arch.pe_array.rows / arch.pe_array.cols
    assert area.row_length_mm == pytest.approx(arch.pe_array.cols * math.sqrt(pe_mm2), rel=1e-12)
    exposed = False
    for p in PASSES:
        fast = simulate_pass(p, ctx, loaded, area)
        ref_pass = reference_pass(p, masks, arch)
        a = ref_pass.actions
        mac_pj = e.mac[f"{arch.precision.multiply}_{arch.precision.accumulate}"]
        want = {
            "mac": a["mac"] * mac_pj + a["mac_gated"] * e.mac_gated,
            "buffer": a["buffer_read_bytes"] * e.buffer_read_per_byte
            + a["buffer_write_bytes"] * e.buffer_write_per_byte,
            "store": a["store_read_bytes"] * e.store_read_per_byte
            + a["store_write_bytes"] * e.store_write_per_byte,
            "metadata": a["metadata_bits"] * e.metadata_read_per_bit,
            "crossbar": a["crossbar_bytes"] * e.crossbar_per_byte_mm * area.row_length_mm,
            "dram": a["dram_bytes"] * e.dram_per_byte,
            "static": area.static_mw * ref_pass.cycles / arch.clock_ghz,  # mW × ns = pJ
        }
        assert fast.energy_breakdown == pytest.approx(want, rel=1e-12), (ref, p)
        assert fast.energy_pj == pytest.approx(sum(want.values()), rel=1e-12)
        exposed |= ref_pass.cycles > sum(ref_pass.tile_compute)
    assert exposed  # the case does expose DRAM time, so static energy over compute alone would differ
    if arch.skipping.bwd_data.outputs == "compacted":
        assert simulate_pass("bwd_data", ctx, loaded, area).actions["crossbar_bytes"] > 0


def test_energy_table_is_the_cited_figures():
    """horowitz45.yaml from the figures its header cites (Horowitz, ISSCC 2014): a MAC is a multiply
    and an add; a per-byte price is the 64-bit access's energy / 8 bytes; DRAM the midpoint of
    1.3–2.6 nJ per access; metadata bits at the 8 KB SRAM's per-byte price / 8; the crossbar
    40.4 fJ per bit per mm; writes priced as reads; a gated MAC 10 % of a bf16 MAC."""
    e = load_arch("dense@systolic").energy
    assert e.mac["bf16_fp32"] == pytest.approx(1.1 + 0.9)
    assert e.mac["fp16_fp32"] == pytest.approx(1.1 + 0.9)
    assert e.mac["fp32_fp32"] == pytest.approx(3.7 + 0.9)
    assert e.mac["int8_int32"] == pytest.approx(0.2 + 0.1)
    assert e.buffer_read_per_byte == pytest.approx(100 / 8) == e.buffer_write_per_byte
    assert e.store_read_per_byte == pytest.approx(10 / 8) == e.store_write_per_byte
    assert e.metadata_read_per_bit == pytest.approx(10 / 8 / 8)
    assert e.dram_per_byte == pytest.approx((1300 + 2600) / 2 / 8)
    assert e.crossbar_per_byte_mm == pytest.approx(0.0404 * 8)
    assert (e.vector_add, e.vector_multiply) == (pytest.approx(0.9), pytest.approx(3.7))
    assert e.mac_gated == pytest.approx(0.1 * e.mac["bf16_fp32"])


def test_static_power_is_logic_and_sram_leakage():
    """Static power = logic mm² × the table's logic leakage + every SRAM's leakage: on systolic the
    one 2 MiB buffer (a size the table lists), on rows also R·C stores of 2E entries."""
    for ref in ("dense@systolic", "agos@systolic"):
        loaded = load_arch(ref)
        t = loaded.area
        a = design_area(loaded.arch, t)
        assert loaded.arch.memory.global_buffer_bytes == 2 * 2**20
        want = a.logic_mm2 * t.logic_leakage_mw_per_mm2 + t.sram[2 * 2**20][1]
        assert a.static_mw == pytest.approx(want, rel=1e-12), ref
    loaded = load_arch("dense@rows")
    o, t = loaded.arch.organisation, loaded.area
    store = 2 * o.pe_store_entries * o.precision.value_bytes
    a = design_area(loaded.arch, t)
    want = a.logic_mm2 * t.logic_leakage_mw_per_mm2 + t.sram[2 * 2**20][1] + o.pes * t.sram_of(store)[1]
    assert a.static_mw == pytest.approx(want, rel=1e-12)


def test_area_table_macs_are_a_multiply_and_an_add():
    """area45.yaml's MACs are the [HP] multiplier plus the fp32 accumulator adder it lists: bf16 taken
    as fp16 (1640 µm²), fp32 its own fp32 multiplier."""
    t = load_arch("dense@systolic").area
    assert t.mac["bf16_fp32"] == pytest.approx(1640 + t.fp32_add) == t.mac["fp16_fp32"]
    assert t.mac["fp32_fp32"] == pytest.approx(t.fp32_multiply + t.fp32_add)


def test_compaction_crossbar_area_is_a_c_by_c_crossbar_per_row():
    """§9: compacted outputs add per row a C×C crossbar of vb-byte operands: each of the C outputs is
    a C:1 mux of 8·vb bits, an N:1 mux being N − 1 two-input muxes; plus, in every PE, the PE's
    multiplier-accumulator and its accumulator and two operand registers in the PE array."""
    loaded = load_arch("agos@systolic")
    o, t = loaded.arch.organisation, loaded.area
    r, c = o.pe_array.rows, o.pe_array.cols
    vbits, abits = 8 * o.precision.value_bytes, 8 * o.precision.accumulate_bytes
    a = design_area(loaded.arch, t)
    assert a.components["compaction crossbars"] == pytest.approx(r * c * (c - 1) * vbits * t.mux2_bit / 1e6)
    pe = t.mac["bf16_fp32"] + (abits + 2 * vbits) * t.register_bit
    assert a.components["pe array"] == pytest.approx(r * c * pe / 1e6)


def _manifest(ops) -> SimpleNamespace:
    return SimpleNamespace(vector_ops=ops, vector_note=None, parameters=0, logits_numel=0)


def test_vector_unit_time_is_the_larger_of_flops_and_dram_bytes():
    """§8, a ReLU over n elements: forward reads x and writes y, backward reads dY and a 1-bit mask
    and writes dX: 4n values and n/8 bytes through DRAM; its time is max(⌈flops / lanes⌉,
    ⌈bytes / D⌉). With slow DRAM the bytes set it; with fast DRAM and one lane, the flops."""
    n = 4096
    relu = SimpleNamespace(op="ReLU", kind="band", out_numel=n, in_numel=n)
    for gbps, lanes in ((8.0, 32), (1e5, 1)):
        loaded = load_arch("dense@systolic")
        o = loaded.arch.organisation
        org = o.model_copy(
            update={
                "memory": o.memory.model_copy(update={"dram_gbps": gbps}),
                "vector": o.vector.model_copy(update={"lanes": lanes}),
            }
        )
        arch = loaded.arch.model_copy(update={"organisation": org})
        cost = vector_cost(_manifest([relu]), arch)
        nbytes = 4 * n * o.precision.value_bytes + n / 8
        assert cost.dram_bytes == pytest.approx(nbytes)
        assert cost.flops > 0
        want = max(math.ceil(cost.flops / lanes), math.ceil(nbytes / (gbps / org.clock_ghz)))
        assert cost.cycles == want, (gbps, lanes)
    assert vector_cost(_manifest([]), arch).cycles == 0  # no ops, no logits, no parameters: nothing


def test_equal_area_buffer_candidate_grows_in_64_kib_steps_as_far_as_the_area_allows():
    for ref in ("agos@systolic", "agos@rows"):
        loaded = load_arch(ref)
        target = design_area(loaded.arch, loaded.area).total_mm2
        _, buf = equal_area_candidates(target, loaded)
        base = loaded.arch.memory.global_buffer_bytes
        size = buf.arch.memory.global_buffer_bytes
        assert size > base and (size - base) % (64 * KIB) == 0
        assert design_area(buf.arch, buf.area).total_mm2 <= target
        o = buf.arch.organisation
        bigger = o.model_copy(
            update={"memory": o.memory.model_copy(update={"global_buffer_bytes": size + 64 * KIB})}
        )
        assert design_area(buf.arch.model_copy(update={"organisation": bigger}), buf.area).total_mm2 > target


def test_every_design_is_compared_with_its_own_dense_twin():
    masks = _masks(1, c=4, k=4, n=1, hw=4)
    designs = [_small("agos@systolic", 1e4, 1 << 20), _small("input-skip@rows", 1e4, 1 << 20)]
    net = simulate_network([masks], designs, _manifest([]), workers=1)
    for d, org in zip(designs, ("systolic", "rows"), strict=True):
        twin = dense_name(d.arch.organisation)  # not the shipped organisation: named with its array, buffer…
        assert twin.startswith(f"dense@{org}[4x4 PEs, 1 MiB, memory.dram_gbps=10000.0")
        assert net.twin_of(d.name).name == twin
        assert net.twin_of(d.name).arch == d.arch.twin().model_copy(update={"name": twin})
        s = speedups(net, d.name)
        assert s["twin"] == twin
        want = net.designs[twin].cycles("iteration") / net.designs[d.name].cycles("iteration")
        assert s["speedup_over_twin"]["iteration"] == pytest.approx(want)


@pytest.mark.parametrize("ref", ["output-skip@systolic", "agos@rows"])
def test_compaction_domains_of_a_width_that_is_not_a_multiple_of_the_columns(ref):
    """§2.3: a domain of 4 channels on 3 columns spans ⌊4 / 3⌋ = 1 whole channel tile, so the 12
    channels of the group compact in 4 domains of 3 (the buffer holds every weight: no other cut);
    the fast model agrees with the independent reference on that layer, cycle for cycle."""
    conv = torch.nn.Conv2d(12, 4, 3, padding=1)
    xs = torch.zeros(1, 12, 4, 4)
    g = geometry_of(conv, xs, conv(xs), "l")
    gen = torch.Generator().manual_seed(5)
    masks = LayerMasks(
        "l",
        g,
        True,
        torch.rand(g.x_shape, generator=gen) < 0.5,
        torch.rand(g.y_shape, generator=gen) < 0.6,
        torch.rand(g.x_shape, generator=gen) < 0.5,
        False,
    )
    base = load_arch(ref)
    o = base.arch.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": 2, "cols": 3}),
            "memory": o.memory.model_copy(update={"global_buffer_bytes": 1 << 20}),
        }
    )
    skipping = base.arch.skipping.model_copy(update={"compaction_domain": 4})
    arch = base.arch.model_copy(update={"organisation": org, "skipping": skipping})
    loaded = base.with_arch(type(arch).model_validate(arch.model_dump()))
    fast = simulate_pass("bwd_data", LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))
    ref_pass = reference_pass("bwd_data", masks, loaded.arch)
    assert fast.cycles == ref_pass.cycles and fast.tile_compute == ref_pass.tile_compute
    assert fast.items == ref_pass.items
    assert {k: int(v) for k, v in fast.actions.items()} == dict(ref_pass.actions)
    # 4 domains × (each position's needed channels of its domain in one slot of ≤ 3): an item per
    # position and domain with a needed channel
    needed = masks.dx_needed.reshape(12, 16)
    want = sum(int(needed[d * 3 : d * 3 + 3].any(dim=0).sum()) for d in range(4))
    assert fast.items == want


def _three_channels_on_lane_zero():
    """One position needing dX channels {0, 3, 6} of 9 (all on lane 0 of C = 3), dY dense over
    T = 3 taps; agos@systolic on 2 × 3 PEs, a buffer that never binds, no fill/drain."""
    conv = torch.nn.Conv2d(9, 3, 1)
    xs = torch.zeros(1, 9, 1, 1)
    g = geometry_of(conv, xs, conv(xs), "l")
    needed = torch.zeros(g.x_shape, dtype=torch.bool)
    needed[0, [0, 3, 6], 0, 0] = True
    masks = LayerMasks(
        "l", g, True, torch.ones(g.x_shape, dtype=torch.bool), torch.ones(g.y_shape, dtype=torch.bool),
        needed, False,
    )  # fmt: skip
    base = load_arch("agos@systolic")
    o = base.arch.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": 2, "cols": 3}),
            "memory": o.memory.model_copy(
                update={"global_buffer_bytes": 1 << 20, "buffer_banks": 64, "bank_width_bytes": 8}
            ),
            "fill_drain_cycles": 0,
        }
    )
    return masks, base, org


def test_lane_conflicts_serialise_per_item_and_ports_round_up():
    """§2.3 on `systolic` (the RTL row's rule, docs/rtl.md): a compacted item's channels that share
    a lane (c mod C) cross its row's crossbar one per cycle per port. One position needs dX channels
    {0, 3, 6} of 9 (C = 3, one domain): one slot, all three on lane 0, λ = 3. dY dense over T = 3
    taps, L = 2: the walk is max(s, ⌈T/L⌉) = 3; with q = 2 ports the lanes take 3 · ⌈3 / 2⌉ = 6
    cycles (a floor would give 3), with q = 1 they take 9. FD = 0; the reference agrees."""
    masks, base, org = _three_channels_on_lane_zero()
    for ports, compute in ((2, 6), (1, 9)):
        skipping = base.arch.skipping.model_copy(
            update={"lookahead": 2, "compaction_domain": 9, "lane_ports": ports, "bypass": "never"}
        )
        arch = base.arch.model_copy(update={"organisation": org, "skipping": skipping})
        loaded = base.with_arch(type(arch).model_validate(arch.model_dump()))
        fast = simulate_pass("bwd_data", LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))
        assert (fast.items, fast.compute_cycles) == (1, compute)
        ref_pass = reference_pass("bwd_data", masks, loaded.arch)
        assert (fast.cycles, fast.tile_compute) == (ref_pass.cycles, ref_pass.tile_compute)


def test_full_lanes_have_no_lane_conflicts():
    """§2.3, lanes `full` (a Benes network, a lane per domain channel): the case above — channels
    {0, 3, 6} of 9 all on lane 0 mod 3 — walks max(s, ⌈T/L⌉) = 3 cycles whatever the ports, where
    lanes `modulo` take 9 (q = 1). The reference agrees."""
    masks, base, org = _three_channels_on_lane_zero()
    for lanes, compute in (("full", 3), ("modulo", 9)):
        skipping = base.arch.skipping.model_copy(
            update={"lookahead": 2, "compaction_domain": 9, "lanes": lanes, "lane_ports": 1}
            | {"bypass": "never"}
        )
        arch = base.arch.model_copy(update={"organisation": org, "skipping": skipping})
        loaded = base.with_arch(type(arch).model_validate(arch.model_dump()))
        fast = simulate_pass("bwd_data", LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))
        assert (fast.items, fast.compute_cycles) == (1, compute), lanes
        ref_pass = reference_pass("bwd_data", masks, loaded.arch)
        assert (fast.cycles, fast.tile_compute) == (ref_pass.cycles, ref_pass.tile_compute), lanes


def test_matched_slots_deal_each_lanes_channels_one_per_slot():
    """§2.3, lanes `matched` on `systolic`: slot j holds the j-th needed channel of every lane, so a
    position needing channels {0, 3} of 6 (C = 3: both on lane 0) has two slots, {0} and {3}, and
    one needing {3} has one. Slot-major on R = 2 rows, the folds are [{0}, {3}] and [{3}]: their
    column operands carry unions of 2 and 1 channels. Slots dealt by rank instead ({0, 3} and an
    empty one) would carry 2 and 0. The reference forms the slots itself; the two agree."""
    conv = torch.nn.Conv2d(6, 2, 1)
    xs = torch.zeros(1, 6, 1, 2)
    g = geometry_of(conv, xs, conv(xs), "l")
    needed = torch.zeros(g.x_shape, dtype=torch.bool)
    needed[0, [0, 3], 0, 0] = True
    needed[0, 3, 0, 1] = True
    masks = LayerMasks(
        "l", g, True, torch.ones(g.x_shape, dtype=torch.bool), torch.ones(g.y_shape, dtype=torch.bool),
        needed, False,
    )  # fmt: skip
    base = load_arch("output-skip@systolic")
    o = base.arch.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": 2, "cols": 3}),
            "memory": o.memory.model_copy(update={"global_buffer_bytes": 1 << 20}),
        }
    )
    skipping = base.arch.skipping.model_copy(
        update={"compaction_domain": 6, "lanes": "matched", "bypass": "never"}
    )
    arch = base.arch.model_copy(update={"organisation": org, "skipping": skipping})
    loaded = base.with_arch(type(arch).model_validate(arch.model_dump()))
    fast = simulate_pass("bwd_data", LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))
    ref_pass = reference_pass("bwd_data", masks, loaded.arch)
    assert fast.items == ref_pass.items == 3
    assert (fast.cycles, fast.tile_compute) == (ref_pass.cycles, ref_pass.tile_compute)
    assert {k: int(v) for k, v in fast.actions.items()} == dict(ref_pass.actions)
    # T = 2 taps of dY per position (K = 2, a 1×1 kernel), vb = 2: column operands 2·(2 + 1)·2 bytes
    # beside the items' streams (2·2 each, dense dY) and outputs (|S|·2 each), all read and written
    # within the folds (one stream block)
    streams, outputs = 3 * 2 * 2, (1 + 1 + 1) * 2
    assert fast.actions["buffer_read_bytes"] - fast.dram_o == streams + 2 * (2 + 1) * 2
    assert fast.actions["buffer_write_bytes"] - fast.dram_a - fast.dram_b == outputs


def test_equal_area_pes_of_a_non_square_array_grow_one_row_at_a_time():
    """The smaller side grows one row (or column) per step: an area that holds exactly one more row
    buys that row (the fault equal_area_pe_step_of_two survived every square preset)."""
    loaded = load_arch("dense@systolic")
    o = loaded.arch.organisation

    def with_rows(rows: int):
        org = o.model_copy(update={"pe_array": o.pe_array.model_copy(update={"rows": rows, "cols": 32})})
        return loaded.arch.model_copy(update={"organisation": org})

    target = design_area(with_rows(17), loaded.area).total_mm2
    grown = grown_organisations(with_rows(16), loaded.area, target)
    pe, _ = grown[0]
    assert (pe.pe_array.rows, pe.pe_array.cols) == (17, 32)
