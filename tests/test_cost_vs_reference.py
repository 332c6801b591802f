"""The fast cost model equals the independent cycle-stepping reference (agos.reference), which
shares none of its code, on random small layers × every preset × both organisations: total cycles
(stalls included), per-tile compute, the chosen tiling, DRAM bytes per operand, dispatched items
and every energy action count."""

from __future__ import annotations

import pytest

from agos.cost.model import LayerContext, layer_area, simulate_pass
from agos.errors import AgosError
from agos.reference import ReferenceModelError, reference_pass
from agos.workload.counts import layer_work
from agos.workload.passes import PASSES
from tests.cost_cases import STEPPED, random_layer, shrunk

CASES = 330  # layers; each is simulated on one (preset, organisation), all three passes


def _compare(seed: int, design: tuple[str, str] | None = None) -> tuple[int, list]:
    masks = random_layer(seed)
    if masks is None:
        return 0, []
    preset, org = design or STEPPED[seed % len(STEPPED)]
    loaded = shrunk(preset, org, seed)
    ctx = LayerContext(masks, layer_work(masks))
    area = layer_area(loaded)
    diffs = []
    for p in PASSES:
        try:
            fast = simulate_pass(p, ctx, loaded, area)
        except AgosError:
            fast = None
        try:
            ref = reference_pass(p, masks, loaded.arch)
        except ReferenceModelError:
            ref = None
        where = (seed, preset, org, p)
        if (fast is None) != (ref is None):
            diffs.append((where, "one of the two found no tiling"))
            continue
        if fast is None:
            continue
        got = (
            fast.cycles,
            fast.tile_compute,
            fast.order,
            fast.blocks[:2],
            (fast.dram_a, fast.dram_b, fast.dram_o),
            fast.items,
            {k: int(v) for k, v in fast.actions.items()},
        )
        want = (
            ref.cycles,
            ref.tile_compute,
            ref.order,
            tuple(ref.blocks),
            (ref.dram_a_bytes, ref.dram_b_bytes, ref.dram_o_bytes),
            ref.items,
            dict(ref.actions),
        )
        if got != want:
            diffs.append((where, got, want))
    return 1, diffs


def _half(half: int) -> tuple[list, set]:
    """The CASES random layers in two halves (by seed order), each on one design."""
    checked, diffs, seed, designs = 0, [], 0, set()
    while checked < CASES:
        seed += 1
        lo = half == 0 and checked < CASES // 2
        hi = half == 1 and checked >= CASES // 2
        if lo or hi:
            n, d = _compare(seed)
            diffs += d
            if n:
                designs.add(STEPPED[seed % len(STEPPED)])
        else:
            n = int(random_layer(seed) is not None)
        checked += n
    return diffs, designs


@pytest.mark.parametrize(
    "half", [0, pytest.param(1, marks=[pytest.mark.slow, pytest.mark.ci])], ids=["first", "second"]
)
def test_fast_model_equals_the_reference_on_random_layers(half):
    """All CASES layers in CI and `make test-all`; the default run checks the first half."""
    diffs, designs = _half(half)
    assert not diffs, diffs[:3]
    assert designs == set(STEPPED)  # every preset on both organisations was exercised


@pytest.mark.slow
@pytest.mark.parametrize("design", STEPPED, ids=[f"{p}@{o}" for p, o in STEPPED])
def test_fast_model_equals_the_reference_on_every_layer_for_every_design(design):
    """The full cross product (make test-all): every one of the random layers on every preset and
    organisation, not one design per layer."""
    checked, diffs, seed = 0, [], 0
    while checked < CASES:
        seed += 1
        n, d = _compare(seed, design)
        checked += n
        diffs += d
    assert not diffs, diffs[:3]


@pytest.mark.parametrize("field", ["cycles", "dram"])
def test_the_comparison_can_fail(monkeypatch, field):
    """Break the fast model once (a fill/drain off by one; a byte of DRAM per tile) and the
    comparison above must see it."""
    import agos.cost.schedule as schedule

    if field == "cycles":
        original_lockstep = schedule.lockstep

        def lockstep(*args, **kwargs):
            out = original_lockstep(*args, **kwargs)
            out.compute += out.items > 0  # one cycle more per block with work
            return out

        monkeypatch.setattr(schedule, "lockstep", lockstep)
    else:
        import dataclasses

        import agos.cost.model as model

        original = model.pass_tensors

        def pass_tensors(*args):
            t = original(*args)
            return dataclasses.replace(t, b_bytes=t.b_bytes + 1)  # one byte of weights too many

        monkeypatch.setattr(model, "pass_tensors", pass_tensors)
    found = []
    for seed in range(1, 80):
        found += _compare(seed)[1]
        if found:
            break
    assert found
