"""The RTL row (agos.rtl, docs/rtl.md) in Amaranth's simulator: it follows its own timing rules and
computes the dense results on random items; on the items of real and random layers, its cycles are
set beside the cost model (fast model and reference, item by item on a one-row array): equal where
the row meets the model's rule, never below it for stream skip and joins, every difference counted
by the row's rules (empty windows, held steps). Synthesis needs Debian's yosys and is skipped
without it; everything else runs without yosys."""

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("amaranth", reason="the rtl extra (amaranth) is not installed")

from agos.rtl.cases import cut_layer, random_items, random_layer
from agos.rtl.compare import FEATURES, PassComparison, compare_pass
from agos.rtl.harness import run_row
from agos.rtl.row import RowConfig
from agos.rtl.timing import expected_results, walk

C = 4
ROWS = {  # one row per feature, for random items
    "dense": RowConfig(cols=C),
    "stream": RowConfig(cols=C, stream=True, lookahead=3),
    "join": RowConfig(cols=C, stream=True, lookahead=4, join=True, broadcast=2),
    "static": RowConfig(cols=C, outputs="static"),
    "compacted": RowConfig(cols=C, outputs="compacted", domain=3 * C),
    "stream+compacted": RowConfig(cols=C, stream=True, lookahead=2, outputs="compacted", domain=4 * C),
    "bypass": RowConfig(cols=C, stream=True, join=True, outputs="compacted", domain=2 * C),
}
# features whose every item takes the model's cycles exactly (no window walk on the items)
EXACT = {"dense", "static", "compacted", "bypass"}


def _row_checks(feature: str, count: int, seed: int) -> None:
    cfg = ROWS[feature]
    items = random_items(cfg, count, seed, bypass=feature == "bypass")
    run = run_row(cfg, items)
    want = [walk(cfg, it).cycles for it in items]
    wrong = [(i, got, w) for i, (got, w) in enumerate(zip(run.cycles, want, strict=True)) if got != w]
    assert not wrong, f"{feature}: row cycles differ from its rules at (item, rtl, rule) {wrong[:5]}"
    bad = [i for i, it in enumerate(items) if run.results[i] != expected_results(cfg, it)]
    assert not bad, f"{feature}: results differ from the dense dot products at items {bad[:5]}"
    assert run.total == sum(run.cycles)


@pytest.mark.parametrize("feature", list(ROWS))
def test_row_follows_its_rules(feature):
    _row_checks(feature, 30, seed=1)


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("feature", list(ROWS))
def test_row_follows_its_rules_sweep(feature):
    _row_checks(feature, 250, seed=2)


def check(res: PassComparison, feature: str) -> None:
    where = f"{res.layer} {res.pass_} {feature}"
    assert res.rtl == [w.cycles for w in res.walks], f"{where}: the row left its rules"
    assert all(res.results_ok), f"{where}: the row's results are not the dense dot products"
    assert res.reference == res.spec, f"{where}: the reference's fold times are not §2.3/§3's rule"
    assert res.count == res.dispatched and sum(res.reference) == res.reference_total
    assert res.reference_total == res.fast_compute, f"{where}: fast model {res.fast_compute} ≠ reference"
    if feature in EXACT:
        assert res.rtl == res.reference, f"{where}: the row differs from the model"
        return
    for i, (r, m, w) in enumerate(zip(res.rtl, res.reference, res.walks, strict=True)):
        if w.empty == 0 and w.held == 0 and res.cfg.group == 1:  # nothing the model leaves out
            assert r == m, f"{where}: item {i}: row {r} ≠ model {m} with no empty window or held step"
        if feature != "stream+compacted":  # the model is a lower bound of the window walk
            assert r >= m, f"{where}: item {i}: row {r} below the model's bound {m}"


def _layers_until(feature: str, items: int, seed0: int, small: bool = False) -> int:
    """Random layers (random L, B_w, domain) until `items` dispatched items are checked."""
    f, done, seed = FEATURES[feature], 0, seed0
    while done < items:
        seed += 1
        r = random.Random(seed)
        lookahead, broadcast = r.choice([1, 2, 3, 4]), r.choice([1, 2]) if f.join else 1
        domain = r.choice([C, 2 * C, 4 * C])
        masks = random_layer(seed, C, small)
        for pass_ in f.passes:
            res = compare_pass(masks, pass_, f, C, lookahead, broadcast, domain, seed)
            if res is not None:
                check(res, feature)
                done += res.count
    return done


@pytest.mark.parametrize("feature", list(FEATURES))
def test_row_against_the_model_on_a_random_layer(feature):
    assert _layers_until(feature, 1, seed0=100, small=True) >= 1


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("feature", list(FEATURES))
def test_row_against_the_model_sweep(feature):
    """At least 200 dispatched items per feature, from random layers."""
    assert _layers_until(feature, 200, seed0=1000, small=True) >= 200


def test_row_against_the_model_on_real_masks(mixed_trace):
    from agos.capture.trace import load_trace
    from agos.density.real import real_masks

    trace = load_trace(mixed_trace)
    layer = next(rec for rec in trace.layers if rec.name == "d")  # 1×1, X = cat(ReLU, ReLU6)
    masks = cut_layer(real_masks(trace, layer), images=2, in_channels=2 * C, out_channels=2 * C)
    for feature in ("stream", "stream+compacted"):
        for pass_ in FEATURES[feature].passes:
            res = compare_pass(masks, pass_, FEATURES[feature], C, lookahead=3, domain=2 * C)
            if res is not None:
                check(res, feature)


def test_bf16_pe_matches_numpy():
    """bf16 × bf16 + fp32 accumulation, round to nearest even, bit for bit against numpy's float32."""
    from amaranth.sim import Simulator

    from agos.rtl.pe import PE

    rng = np.random.default_rng(1)
    n = 300

    def bf16(x):
        u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32)

    a = bf16(rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n)))
    b = bf16(rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n)))
    valid = rng.random(n) < 0.8
    clear = np.zeros(n, bool)
    clear[::29] = True
    af, bf = (a << 16).view(np.float32), (b << 16).view(np.float32)
    acc, want = np.float32(0), []
    for i in range(n):
        product = af[i] * bf[i] if valid[i] else np.float32(0)
        acc = np.float32((np.float32(0) if clear[i] else acc) + product)
        want.append(int(acc.view(np.uint32)))
    dut, got = PE("bf16"), []

    async def bench(ctx):
        for i in range(n):
            ctx.set(dut.a, int(a[i]))
            ctx.set(dut.b, int(b[i]))
            ctx.set(dut.valid, int(valid[i]))
            ctx.set(dut.clear, int(clear[i]))
            await ctx.tick()
            got.append(ctx.get(dut.acc))
        await ctx.tick()
        got.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got[1:] == want


def test_synthesis_measures_the_row():
    from agos.rtl.synth import synthesize, table_area, verilog, yosys_path

    if yosys_path() is None:
        pytest.skip("yosys not installed (Debian's yosys; the PyPI one has no `synth`)")
    dense = synthesize(RowConfig(cols=2, bypass=False))
    stream = synthesize(RowConfig(cols=2, stream=True, lookahead=3, bypass=False))
    # the windows: L operand registers per PE and L stream entries (bit + value) per row at least
    assert stream.row.flops - dense.row.flops >= 2 * 3 * 16 + 3 * 17
    assert stream.row.um2 > dense.row.um2 > 0
    assert set(table_area(RowConfig(cols=2, stream=True))) == {
        "pe array", "stream-skip scanners", "stream-skip operand windows", "bypass rule"
    }  # fmt: skip
    text = verilog(RowConfig(cols=2, stream=True))
    assert "module row" in text and "module agos_pe" in text


def test_table_area_prices_the_bypass_rule_only_with_the_mode_bits():
    """The table's side of the synthesis comparison: the design's default bypass rule (§11) is
    priced only on the variant that has the mode bits, so it lands in that variant's added area and
    not in every feature's (each feature is measured on top of a variant without them)."""
    from agos.rtl.synth import table_area

    without = table_area(RowConfig(cols=4, stream=True, outputs="compacted", domain=16, bypass=False))
    with_bits = table_area(RowConfig(cols=4, stream=True, outputs="compacted", domain=16))
    assert "bypass rule" not in without and "bypass rule" in with_bits
    assert set(with_bits) - set(without) == {"bypass rule"}
    assert "bypass rule" not in table_area(RowConfig(cols=4, outputs="static", bypass=False))


def _one_position(x: list[int], dy: list[int], needed: list[int]) -> object:
    """A 1×1 layer on one pixel of one image: its streams are the given channel masks."""
    import torch

    from agos.workload.layer import LayerGeometry
    from agos.workload.masks import LayerMasks

    g = LayerGeometry("conv", 1, len(x), 1, 1, len(dy), 1, 1, 1, 1)
    return LayerMasks(
        name="one-pixel",
        geometry=g,
        needs_bwd_data=True,
        x_nonzero=torch.tensor(x, dtype=torch.bool).reshape(g.x_shape),
        dy_nonzero=torch.tensor(dy, dtype=torch.bool).reshape(g.y_shape),
        dx_needed=torch.tensor(needed, dtype=torch.bool).reshape(g.x_shape),
        dx_all_needed=False,
    )


def test_the_differences_from_the_model_on_their_minimal_cases():
    """docs/rtl.md, "Where the row and the model differ", pinned on one-pixel layers (a change of
    the cost model's rule that removes a difference makes this test fail: update docs/rtl.md)."""
    # the window: T = 4 entries 0011, L = 2. The model's max(s, ⌈T/L⌉) = 2; the row reads the
    # window [0, 2) (empty: 1 cycle), then issues 2 and 3: 3 cycles. No front that reads L entries
    # per cycle does better: entries 2 and 3 are seen in cycle 2 at the earliest.
    masks = _one_position([0, 0, 1, 1], [1, 1], [1] * 4)
    res = compare_pass(masks, "fwd", FEATURES["stream"], 2, lookahead=2)
    assert (res.rtl, res.reference, res.fast_compute, res.walks[0].empty) == ([3], [2], 2, 1)
    # the crossbar, a difference the model no longer has: T = 3 dY entries all nonzero, the slot's
    # channels {0, 2} both on lane 0 (C = 2, domain 4), L = 3. The row's C × C crossbar moves one
    # operand per lane per cycle: λ = 2 cycles per issued entry, 6 cycles — and so does the model
    # now (§2.3: d ≥ walked · λ, on both organisations; it used to take ⌈T·λ/L⌉ = 2 under F = 3).
    masks = _one_position([1] * 4, [1, 1, 1], [1, 0, 1, 0])
    res = compare_pass(masks, "bwd_data", FEATURES["stream+compacted"], 2, lookahead=3, domain=4)
    assert (res.rtl, res.reference, res.fast_compute, res.walks[0].held) == ([6], [6], 6, 3)
