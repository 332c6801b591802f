"""Hand-checkable cases of the fast cost model, and properties every result must have (no design
below its mapping bound, speedups over the twin beyond the MAC bound explained, equal-area
candidates as large as the area allows)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from agos.arch.area import design_area
from agos.arch.load import LoadedArch, load_arch
from agos.cost.model import LayerContext, layer_area, simulate_pass
from agos.cost.network import (
    cycle_components,
    equal_area_candidates,
    equal_area_organisations,
    mapping_bound_violations,
    plan_designs,
    simulate_network,
    speedups,
)
from agos.workload.counts import layer_work
from agos.workload.layer import geometry_of
from agos.workload.masks import LayerMasks
from agos.workload.passes import LABELS, PASSES, SPANS
from tests.cost_cases import random_layer, shrunk


def _design(ref: str, rows=4, cols=4, fd=None, banks=64, buffer=1 << 20, **skipping) -> LoadedArch:
    """The timing rules themselves: every feature on (`bypass: never`) unless a test says otherwise."""
    skipping.setdefault("bypass", "never")
    base = load_arch(ref)
    o = base.arch.organisation
    org = o.model_copy(
        update={
            "pe_array": o.pe_array.model_copy(update={"rows": rows, "cols": cols}),
            "fill_drain_cycles": fd,
            "memory": o.memory.model_copy(
                update={"buffer_banks": banks, "global_buffer_bytes": buffer, "dram_gbps": 1e5}
            ),
        }
    )
    arch = base.arch.model_copy(
        update={"organisation": org, "skipping": base.arch.skipping.model_copy(update=skipping)}
    )
    return base.with_arch(type(arch).model_validate(arch.model_dump()))


def _masks(c, k, n, hw, kernel=1, groups=1, stride=1, x=None, dy=None, needed=None) -> LayerMasks:
    conv = torch.nn.Conv2d(c, k, kernel, padding=kernel // 2, groups=groups, stride=stride)
    xs = torch.zeros(n, c, hw, hw)
    g = geometry_of(conv, xs, conv(xs), "l")
    ones = torch.ones
    return LayerMasks(
        "l",
        g,
        True,
        x if x is not None else ones(g.x_shape, dtype=torch.bool),
        dy if dy is not None else ones(g.y_shape, dtype=torch.bool),
        needed if needed is not None else ones(g.x_shape, dtype=torch.bool),
        False,
    )


def _run(pass_, masks, loaded):
    return simulate_pass(pass_, LayerContext(masks, layer_work(masks)), loaded, layer_area(loaded))


def test_dense_systolic_fold_is_stream_plus_fill_drain():
    """1×1 conv, 8 input channels, 8 output channels on a 4×4 array: FWD has 2 channel tiles of
    16 positions = 4 folds each of T = 8 taps; each fold costs T + R + C − 2 = 14 cycles."""
    cost = _run("fwd", _masks(8, 8, 1, 4), _design("dense@systolic"))
    assert sum(cost.tile_compute) == 2 * 4 * (8 + 4 + 4 - 2)
    assert cost.components["fill_drain"] == 2 * 4 * 6
    overlapped = _design("dense@systolic").arch.organisation.model_copy(update={"fill_drain": "overlapped"})
    loaded = _design("dense@systolic")
    loaded = loaded.with_arch(loaded.arch.model_copy(update={"organisation": overlapped}))
    assert sum(_run("fwd", _masks(8, 8, 1, 4), loaded).tile_compute) == 2 * 4 * 8 + 6 * cost.blocks[0] * 1


def test_lookahead_window_bounds_how_far_a_row_skips():
    """All X zero: with window L a row still walks ⌈T / L⌉ cycles; unbounded, it walks none."""
    zero = torch.zeros(1, 9, 4, 4, dtype=torch.bool)
    masks = _masks(9, 4, 1, 4, x=zero)
    for window, expected in ((3, 3), (1, 9), ("inf", 0)):
        cost = _run("fwd", masks, _design("input-skip@systolic", fd=0, lookahead=window))
        assert cost.components["work"] == expected * 4, window  # 16 positions = 4 folds


def test_two_sided_join_is_bounded_by_the_broadcast():
    """BWD-W with dense X and half-zero dY: one broadcast X entry per cycle makes the join as slow
    as one-sided skipping; a 4-wide broadcast lets each PE go at its own matches."""
    dy = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    dy[:, :, :2] = True  # half of every channel's dY is nonzero
    masks = _masks(4, 4, 2, 4, dy=dy)
    one_sided = _run("bwd_weight", masks, _design("input-skip@systolic", fd=0))
    narrow = _run("bwd_weight", masks, _design("agos@systolic", fd=0))
    wide = _run("bwd_weight", masks, _design("agos@systolic", fd=0, broadcast_width=4, lookahead="inf"))
    assert narrow.components["work"] == one_sided.components["work"]
    assert wide.components["work"] < narrow.components["work"]
    assert narrow.actions["mac"] < one_sided.actions["mac"]  # the join still saves MACs (energy)


def test_depthwise_groups_are_packed_side_by_side():
    """8 one-channel groups on 4 columns: 2 tiles of 4 packed groups, not 8 tiles of 1 column."""
    masks = _masks(8, 8, 1, 4, kernel=3, groups=8)
    cost = _run("fwd", masks, _design("dense@systolic", fd=0))
    assert cost.items == 2 * 16  # 16 positions per packed tile


def test_buffer_bandwidth_bounds_a_fold():
    """One bank of 8 bytes per cycle cannot feed a fold of 4 rows × 8 bf16 stream entries, 4 × 8
    column operands and 16 outputs: ⌈(64 + 64 + 32) / 8⌉ = 20 cycles instead of T = 8."""
    cost = _run("fwd", _masks(8, 4, 1, 2), _design("dense@systolic", fd=0, banks=1))
    assert cost.components["work"] == 8
    assert cost.compute_cycles == 20
    assert cost.components["delivery"] == 12


def test_stride_phases_are_separate_work_sets():
    """BWD-D of a 1×1 stride-2 conv: only one input pixel in four is reached by any dY; the other
    three phases have no work and no items."""
    masks = _masks(4, 4, 1, 4, stride=2)
    cost = _run("bwd_data", masks, _design("dense@systolic", fd=0))
    assert cost.items == 4  # one channel tile × the 4 pixels of phase (0, 0)


def test_compaction_pays_its_lane_conflicts():
    """8 needed-dX channels on 4 columns: compacted, each position needs 2 slots of channels
    {0..3} and {4..7}; the fold's union of slot 0 is lanes 0..3 once (load 1), no stall. With
    channel 0 and 4 needed only, a position's one slot holds two channels on lane 0: on rows each
    stream entry then takes 2 cycles."""
    needed = torch.zeros(1, 8, 2, 2, dtype=torch.bool)
    needed[:, [0, 4]] = True
    masks = _masks(8, 4, 1, 2, needed=needed)
    static = _run("bwd_data", masks, _design("dense@rows", fd=0))
    compacted = _run("bwd_data", masks, _design("output-skip@rows", fd=0))
    t = 4  # dY taps reaching each input pixel (1×1, 4 output channels)
    assert (
        compacted.components["work"] == 2 * t
    )  # one item per position: 4 items on 4 rows, 2 cycles per entry
    assert static.components["work"] == 2 * t  # two tiles, each 4 items on 4 rows: T each


SEEDS = range(1, 41)
MIN_SIMULATED = 30  # 34 of the 40 layers fit: one kernel outgrows its input, five buffers hold no tile


def _bound_holds(seed: int) -> bool:
    """No design of one random layer beats its mapping bound, and every gain beyond the MAC bound
    carries its flag. False when the layer could not be simulated (a kernel larger than the padded
    input, or a buffer too small to hold any tile — an error, never a result)."""
    masks = random_layer(seed)
    if masks is None:
        return False
    r = random.Random(seed)
    org = r.choice(["systolic", "rows"])
    designs = [shrunk(p, org, seed) for p in ("dense", "input-skip", "output-skip", "agos", "ideal")]
    names = [f"{d.arch.preset}-{i}" for i, d in enumerate(designs)]
    designs = [
        d.with_arch(d.arch.model_copy(update={"name": n})) for d, n in zip(designs, names, strict=True)
    ]
    manifest = SimpleNamespace(vector_ops=[], vector_note=None, parameters=0, logits_numel=0)
    try:
        net = simulate_network([masks], designs, manifest, workers=1)
    except Exception as exc:
        assert "buffer" in str(exc), (seed, exc)
        return False
    assert mapping_bound_violations(net) == [], seed
    for name in names:
        s = speedups(net, name)
        for span in SPANS:  # every pass as well as backprop and iteration (DESIGN.md §4 "Bounds")
            d = net.designs[name]
            assert sum(cycle_components(d, span).values()) == d.cycles(span)  # what a flag names adds up
            over, bound = s["speedup_over_twin"][span], s["mac_bound_speedup"][span]
            if over and bound and over > bound * (1 + 1e-9) and not net.designs[name].arch.ideal:
                flagged = [f for f in s["flags"] if f.startswith(f"{LABELS[span]} ")]
                assert any("exceeds its MAC bound" in f for f in flagged), (seed, name, span)
    return True


def test_no_design_beats_its_mapping_bound_and_gains_beyond_the_mac_bound_are_explained():
    """On random layers; the test counts the layers it really simulated, so that a change that made
    most of them unsimulatable (and the test vacuous) fails it."""
    simulated = [seed for seed in SEEDS if _bound_holds(seed)]
    assert len(simulated) >= MIN_SIMULATED, f"only {len(simulated)} of {len(SEEDS)} random layers simulated"


def test_equal_area_candidates_fill_the_area_and_no_more():
    agos = load_arch("agos@systolic")
    target = design_area(agos.arch, agos.area).total_mm2
    cands = equal_area_candidates(target, agos)
    assert len(cands) == 2
    for cand in cands:
        area = design_area(cand.arch, cand.area).total_mm2
        assert area <= target
        assert not cand.arch.skipping.skips_work
    pe, buf = cands
    rows, cols = pe.arch.pe_array.rows, pe.arch.pe_array.cols
    bigger = pe.arch.organisation.model_copy(
        update={
            "pe_array": pe.arch.pe_array.model_copy(
                update={"rows": rows + (rows <= cols), "cols": cols + (rows > cols)}
            )
        }
    )
    assert design_area(pe.arch.model_copy(update={"organisation": bigger}), pe.area).total_mm2 > target
    assert rows * cols > 32 * 32 and buf.arch.memory.global_buffer_bytes > 2 * 2**20


def test_ideal_runs_at_the_mapping_bound():
    masks = _masks(6, 6, 2, 4, kernel=3)
    for p in PASSES:
        cost = _run(p, masks, _design("ideal@systolic"))
        assert cost.cycles == cost.mapping_bound


def test_a_pass_above_its_mac_bound_is_flagged_with_its_reason():
    """DESIGN.md §4 "Bounds": every pass, not only backprop and iteration. FWD of two layers on a
    4×4 array: a one-position layer (rows idle in the twin, X 25% dense) and a
    half-dense 64-position one. The network's MAC ratio weights the layers by MACs, the cycle ratio
    by cycles, so FWD beats its MAC bound (legitimately: no layer does) and must name the component
    that shrank more than the MACs: the first layer's idle rows (not the larger absolute drop of the
    MAC floor)."""
    x = torch.zeros(1, 32, 1, 1, dtype=torch.bool)
    x[:, ::4] = True
    half = torch.zeros(1, 4, 8, 8, dtype=torch.bool)
    half[:, ::2] = True  # the big layer's MAC floor shrinks most in cycles, but only as its MACs do
    layers = [_masks(32, 8, 1, 1, x=x), _masks(4, 4, 1, 8, x=half)]
    layers = [
        LayerMasks(f"l{i}", m.geometry, True, m.x_nonzero, m.dy_nonzero, m.dx_needed, False)
        for i, m in enumerate(layers)
    ]
    designs = [_design("input-skip@systolic", fd=0)]
    manifest = SimpleNamespace(vector_ops=[], vector_note=None, parameters=0, logits_numel=0)
    net = simulate_network(layers, designs, manifest, workers=1)
    s = speedups(net, "input-skip@systolic")
    over, bound = s["speedup_over_twin"]["fwd"], s["mac_bound_speedup"]["fwd"]
    assert over > bound * 1.01
    design, twin_of = net.designs["input-skip@systolic"], net.twin_of("input-skip@systolic")
    for layer, twin in zip(design.layers, twin_of.layers, strict=True):
        f, t = layer.passes["fwd"], twin.passes["fwd"]
        assert t.cycles * f.design_macs <= f.cycles * t.dense_macs  # no layer beats its own bound
    (flag,) = [f for f in s["flags"] if f.startswith("FWD ")]
    assert "exceeds its MAC bound" in flag and "compute imbalance" in flag


USER_512K = """name: mine
organisation: {name: systolic, sync: lockstep, memory: {global_buffer_bytes: 524288}}
skipping: {fwd: {stream: true}, bwd_data: {stream: true}, bwd_weight: {stream: true}}
"""


def test_equal_area_candidates_come_from_the_design_alone(tmp_path):
    """DESIGN.md §4: a design's equal-area dense candidates derive from its own organisation and
    memory, whatever else is simulated; a user's 512 KiB design beside agos@systolic must not
    lend agos its buffer, and every dense design is named with its array and buffer unless it is
    a shipped organisation as shipped."""
    (tmp_path / "mine.yaml").write_text(USER_512K)
    agos, mine = load_arch("agos@systolic"), load_arch(str(tmp_path / "mine.yaml"))
    _, alone = plan_designs([agos])
    both_planned, both = plan_designs([mine, agos])
    assert alone["agos@systolic"] == both["agos@systolic"]
    by_name = {d.name: d for d in both_planned}
    for name in alone["agos@systolic"]:  # its own memory, the buffer grown at most
        m = by_name[name].arch.memory
        assert m.global_buffer_bytes >= agos.arch.memory.global_buffer_bytes
        assert m.model_copy(update={"global_buffer_bytes": 0}) == agos.arch.memory.model_copy(
            update={"global_buffer_bytes": 0}
        )
    assert {o.sync for o in equal_area_organisations(agos)} == {"lockstep", "independent"}
    for d in both_planned:
        if d.role == "design":
            continue
        o = d.arch.organisation
        shipped = load_arch(f"dense@{o.name}").arch.organisation
        if o.model_copy(update={"description": ""}) == shipped.model_copy(update={"description": ""}):
            assert d.name == f"dense@{o.name}"
        else:
            tag = f"{o.pe_array.rows}x{o.pe_array.cols} PEs, {o.memory.global_buffer_bytes // 1024} KiB"
            assert d.name.startswith(f"dense@{o.name}[") and "#" not in d.name
            assert tag in d.name or tag.replace("2048 KiB", "2 MiB") in d.name
    assert by_name["mine"].twin == "dense@systolic[32x32 PEs, 512 KiB]"
    masks = _masks(8, 8, 1, 4, kernel=3)
    manifest = SimpleNamespace(vector_ops=[], vector_note=None, parameters=0, logits_numel=0)
    one = speedups(simulate_network([masks], [agos], manifest, workers=1), "agos@systolic")
    two = speedups(simulate_network([masks], [mine, agos], manifest, workers=1), "agos@systolic")
    keys = ("best_dense_equal_area", "speedup_over_best_dense_equal_area")
    assert [one[k] for k in keys] == [two[k] for k in keys]
