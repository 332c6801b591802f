"""The fast cost model equals the cycle-stepping reference, and hand-checkable cases hold."""

from __future__ import annotations

import random

import pytest
import torch

from agos.arch.load import PRESETS, LoadedArch, load_arch
from agos.arch.schema import PASSES, Arch
from agos.cost.model import simulate_pass
from agos.cost.reference import reference_pass
from agos.density.masks import LayerMasks
from agos.engine.counts import layer_work
from agos.workload.layer import geometry_of


def random_layer(seed: int) -> LayerMasks | None:
    r = random.Random(seed)
    groups = r.choice([1, 1, 2, 3])
    depthwise = r.random() < 0.15
    cin = groups * r.randint(1, 3)
    cout = groups * r.randint(1, 3)
    if depthwise:
        groups = cin = cout = r.randint(2, 4)
    if r.random() < 0.15:  # a Linear layer is the 1×1 case
        fc = torch.nn.Linear(r.randint(2, 9), r.randint(2, 9))
        x = torch.zeros(r.randint(1, 5), fc.in_features)
        g = geometry_of(fc, x, fc(x), "fc")
    else:
        conv = torch.nn.Conv2d(
            cin,
            cout,
            r.choice([1, 2, 3]),
            stride=r.choice([1, 2, 3]),
            padding=r.choice([0, 1, 2]),
            dilation=r.choice([1, 2]),
            groups=groups,
        )
        size = r.randint(4, 8)
        x = torch.zeros(r.randint(1, 2), cin, size, size)
        try:
            y = conv(x)
        except RuntimeError:  # kernel larger than the padded input
            return None
        g = geometry_of(conv, x, y, "conv")
    gen = torch.Generator().manual_seed(seed)
    dens = [r.choice([0.0, 0.2, 0.5, 0.9, 1.0]) for _ in range(3)]
    return LayerMasks(
        name="l",
        geometry=g,
        needs_bwd_data=r.random() < 0.85,
        x_nonzero=torch.rand(g.x_shape, generator=gen) < dens[0],
        dy_nonzero=torch.rand(g.y_shape, generator=gen) < dens[1],
        dx_needed=torch.rand(g.x_shape, generator=gen) < dens[2],
        dx_all_needed=False,
    )


def shrunk(preset: str, r: random.Random, vary_schedule: bool) -> LoadedArch:
    """The preset on a tiny array and buffer, so that groups, tiles and imbalance all occur."""
    base = load_arch(preset)
    a = base.arch
    rows, cols = r.choice([2, 4]), r.choice([1, 2, 3, 4])
    sched = a.scheduling.model_copy(
        update={
            "sync_rows": rows if a.scheduling.sync_rows > 1 else 1,
            "fill_drain_cycles": min(a.scheduling.fill_drain_cycles, rows + cols - 2),
        }
    )
    skipping = a.skipping
    memory = a.memory.model_copy(
        update={
            "global_buffer_bytes": r.choice([64, 128, 256, 512, 1 << 20]),
            "dram_bandwidth_gbps": r.choice([2.0, 16.0, 256.0]),
        }
    )
    if vary_schedule:
        sched = sched.model_copy(
            update={
                "sync_rows": r.choice([d for d in (1, 2, 4) if rows % d == 0]),
                "dispatch": r.choice(["static", "dynamic"]),
                "queue_depth": r.choice([1, 2, 3]),
                "fill_drain_cycles": r.choice([0, 1, 3]),
                "item_overhead_cycles": r.choice([0, 0, 2]),
                "tile_barrier": r.random() < 0.7,
            }
        )
        skipping = skipping.model_copy(update={"lookahead": r.choice([0, 0, 2, 3])})
        memory = memory.model_copy(update={"double_buffering": r.random() < 0.7})
    arch = a.model_copy(
        update={
            "pe_array": a.pe_array.model_copy(update={"rows": rows, "cols": cols}),
            "scheduling": sched,
            "skipping": skipping,
            "memory": memory,
        }
    )
    Arch.model_validate(arch.model_dump())  # still a valid description
    return LoadedArch(arch, base.energy, f"test:{preset}", "", "")


STEPPED = [p for p in PRESETS if p != "ideal"]


def test_fast_model_equals_the_cycle_stepping_reference():
    """≥ 300 randomised small layers, every stepped preset and randomised schedules."""
    checked, multi_tile, seed = 0, 0, 0
    while checked < 330:
        seed += 1
        masks = random_layer(seed)
        if masks is None:
            continue
        work = layer_work(masks)
        r = random.Random(seed)
        preset = STEPPED[seed % len(STEPPED)]
        loaded = shrunk(preset, r, vary_schedule=seed % 3 == 0)
        for pass_ in PASSES:
            fast = simulate_pass(pass_, masks, work, loaded)
            ref = reference_pass(pass_, masks, loaded.arch)
            assert fast.tile_compute == ref.tile_compute, (seed, preset, pass_, loaded.arch.scheduling)
            assert fast.items == ref.items, (seed, preset, pass_)
            if pass_ != "bwd_data" or masks.needs_bwd_data:
                assert fast.actions["mac"] + fast.actions["mac_gated"] == ref.issued_macs, (
                    seed,
                    preset,
                    pass_,
                )
            multi_tile += len(fast.tile_compute) > 1
        checked += 1
    assert multi_tile > 20  # the buffer tiling really was exercised


def _conv_masks(c, k, n, hw, x=None, dy=None, needed=None, kernel=1) -> LayerMasks:
    conv = torch.nn.Conv2d(c, k, kernel, padding=kernel // 2)
    xs = torch.zeros(n, c, hw, hw)
    g = geometry_of(conv, xs, conv(xs), "l")
    return LayerMasks(
        "l",
        g,
        True,
        x if x is not None else torch.ones(g.x_shape, dtype=torch.bool),
        dy if dy is not None else torch.ones(g.y_shape, dtype=torch.bool),
        needed if needed is not None else torch.ones(g.x_shape, dtype=torch.bool),
        False,
    )


def _tiny(preset: str, **sched) -> LoadedArch:
    base = load_arch(preset)
    a = base.arch
    s = a.scheduling.model_copy(
        update={"sync_rows": 4 if a.scheduling.sync_rows > 1 else 1, "fill_drain_cycles": 0, **sched}
    )
    arch = a.model_copy(
        update={"pe_array": a.pe_array.model_copy(update={"rows": 4, "cols": 4}), "scheduling": s}
    )
    return LoadedArch(arch, base.energy, "t", "", "")


@pytest.mark.parametrize("c,k,n,hw", [(8, 4, 2, 4), (16, 8, 1, 4), (5, 12, 4, 2)])
def test_dense_cycles_are_macs_over_pes_per_tile(c, k, n, hw):
    """1×1 conv, positions a multiple of the rows: every pass is MACs / PEs, rounded up per tile."""
    masks = _conv_masks(c, k, n, hw)
    work = layer_work(masks)
    dense = _tiny("dense")
    positions = n * hw * hw
    for pass_, rows_per_tile in (("fwd", positions), ("bwd_data", positions), ("bwd_weight", c)):
        cost = simulate_pass(pass_, masks, work, dense)
        channels = {"fwd": k, "bwd_data": c, "bwd_weight": k}[pass_]
        stream = {"fwd": c, "bwd_data": k, "bwd_weight": positions}[pass_]
        tiles = -(-channels // 4)
        expected = tiles * -(-rows_per_tile // 4) * stream
        assert cost.compute_cycles == expected, pass_
        if channels % 4 == 0 and rows_per_tile % 4 == 0:
            assert cost.compute_cycles == masks.geometry.macs // 16


def test_all_zero_masks_leave_no_work_for_skipping_designs():
    zero = torch.zeros(2, 8, 4, 4, dtype=torch.bool)
    masks = _conv_masks(8, 8, 2, 4, x=zero, dy=zero.clone(), needed=zero.clone())
    work = layer_work(masks)
    agos = _tiny("agos")
    for pass_ in PASSES:
        assert simulate_pass(pass_, masks, work, agos).compute_cycles == 0, pass_
        assert simulate_pass(pass_, masks, work, _tiny("ideal")).cycles == 0, pass_
    dense = simulate_pass("fwd", masks, work, _tiny("dense"))
    assert dense.compute_cycles == masks.geometry.macs // 16  # the dense design does it all anyway


def test_imbalance_shows_when_one_position_holds_all_the_work():
    x = torch.zeros(1, 8, 4, 4, dtype=torch.bool)
    x[0, :, 0, 0] = True  # every nonzero X sits in the stream of one output position
    masks = _conv_masks(8, 4, 1, 4, x=x)
    work = layer_work(masks)
    agos = simulate_pass("fwd", masks, work, _tiny("agos"))
    ideal = simulate_pass("fwd", masks, work, _tiny("ideal"))
    assert agos.compute_cycles == 8  # one row walks the 8 nonzero taps; the other rows idle
    assert ideal.cycles == 2  # 8 × 4 effective MACs over 16 PEs
    lockstep = simulate_pass("fwd", masks, work, _tiny("input-skip", sync_rows=4))
    # lookahead 4: every item needs ⌈8/4⌉ = 2 cycles; the heavy item's group needs 8
    assert lockstep.compute_cycles == 8 + 3 * 2
