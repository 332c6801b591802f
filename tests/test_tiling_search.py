"""The buffer-tiling search's shortcuts give what the definitions give: a fit check on the blocks'
frontiers equals the check of every tile, the int64 byte shares equal Python integers, and tilings
shared between the designs of a layer equal tilings made afresh for each."""

from __future__ import annotations

import random

import pytest
import torch

from agos.arch.load import ORGANISATIONS, PRESETS
from agos.cost.layout import channel_tiles
from agos.cost.model import LayerContext, layer_area, simulate_layer
from agos.cost.tiling import PassTensors, Shares, _Grid, _powers, bounds
from agos.workload.chunks import store_chunks, uniform_blocks, units
from agos.workload.counts import layer_work
from agos.workload.layer import geometry_of
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES, mapping
from tests.cost_cases import random_layer, shrunk


def _ceil(num: int, den: int) -> int:
    return -(-num // den)


def _blockings(seed: int, huge: bool):
    """Random (shares, a, channel blocks, stream blocks) of a random layer and pass; `huge`: byte
    counts whose products pass 2^63."""
    masks = random_layer(seed)
    if masks is None:
        return
    r = random.Random(seed)
    g = masks.geometry
    for pass_ in PASSES:
        m = mapping(pass_)
        scale = 2**50 if huge else 1  # huge: numerators past 2^63, every share still under it
        o = r.randint(1, 5000) * scale
        t = PassTensors(
            pass_, g, r.randint(1, 5000) * scale, r.randint(1, 5000) * scale, o, o * r.choice([1, 2]),
            m.rows(g), units(pass_, g), r.random() < 0.5,
        )  # fmt: skip
        tiles = channel_tiles(g.groups, m.channels_per_group(g), r.choice([1, 2, 3, 4, 8]))
        shares = Shares(t, tiles)
        parts = [uniform_blocks(pass_, g, s) for s in _powers(units(pass_, g))]
        parts.append(store_chunks(pass_, masks, r.choice([9, 16, 64])))
        for part in parts:
            stream = shares.stream(part.count, list(zip(part.starts, part.stops, strict=True)))
            for b in _powers(len(tiles)):
                for a in _powers(t.rows):
                    yield shares, a, shares.columns(b), stream


def _every_share(shares: Shares, a: int, cols, stream, partial_output: bool):
    """A, B and O (O' with `partial_output`) of every tile, from §6's ratios in Python integers."""
    t = shares.t
    lo, hi = bounds(t.rows, a)
    rows_read = shares.block_rows(a)
    o_bytes = t.o_partial_bytes if partial_output else t.o_bytes
    for i in range(a):
        for k in range(len(stream.ranges)):
            for j in range(cols.b):
                yield (
                    (i, k, j),
                    _ceil(int(rows_read[i]) * stream.reach[k] * cols.groups[j] * t.a_bytes, shares.a_den),
                    _ceil(cols.ch[j] * stream.units[k] * t.b_bytes, shares.b_den),
                    _ceil(int(hi[i] - lo[i]) * cols.ch[j] * o_bytes, shares.o_den),
                )


@pytest.mark.parametrize("huge", [False, True])
def test_fit_check_on_the_frontiers_equals_the_check_of_every_tile(huge):
    """A blocking fits a capacity exactly when its largest tile (A + B + O') does: the check on the
    frontiers of the blocks' attributes says yes at that size and no one byte below."""
    checked = 0
    for seed in range(25):
        for shares, a, cols, stream in _blockings(seed, huge):
            t = shares.t
            partial = t.partial_always or len(stream.ranges) > 1
            largest = max(x + y + z for _, x, y, z in _every_share(shares, a, cols, stream, partial))
            assert shares.fits(a, cols, stream, largest), (seed, t.pass_, a, cols.b, stream.sigma)
            assert not shares.fits(a, cols, stream, largest - 1), (seed, t.pass_, a, cols.b, stream.sigma)
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("huge", [False, True])
def test_share_grids_equal_their_definition(huge):
    """The byte shares a tiling is timed with (int64 when every numerator fits, else Python
    integers) equal §6's ratios taken in Python integers, tile by tile."""
    checked = 0
    for seed in range(25):
        for shares, a, cols, stream in _blockings(seed, huge):
            grid = _Grid(shares, a, cols, stream)
            for (i, k, j), a_share, b_share, o_share in _every_share(shares, a, cols, stream, False):
                assert (grid.a[i, k, j], grid.b[k, j], grid.o[i, j]) == (a_share, b_share, o_share)
                checked += 1
    assert checked > 5000


def _fixed_layer(seed: int) -> LayerMasks:
    """Seed 1: a layer whose passes have as many position rows each (N·P = C_g = N·H = 4) but read
    A differently (halos in FWD and BWD-D, none in BWD-W). Seed 2: one with enough stream units that
    runs of store chunks and uniform stream blocks of one σ differ."""
    conv = torch.nn.Conv2d(4, 4, 3, padding=1) if seed == 1 else torch.nn.Conv2d(5, 3, 3, padding=1)
    x = torch.zeros(1, 4, 4, 4) if seed == 1 else torch.zeros(2, 5, 5, 5)
    g = geometry_of(conv, x, conv(x), "conv")
    gen = torch.Generator().manual_seed(seed)
    x_nz, dy_nz, dx = (torch.rand(shape, generator=gen) < 0.5 for shape in (g.x_shape, g.y_shape, g.x_shape))
    return LayerMasks("fixed", g, True, x_nz, dy_nz, dx, False)


@pytest.mark.parametrize("seed", [*range(1, 7), -1, -2])
def test_tilings_shared_between_designs_equal_tilings_made_afresh(seed):
    """Every design of a layer timed on one context (position, stream and channel blocks and byte
    shares made once and kept) gets exactly what it gets on a context of its own."""
    masks = random_layer(seed) if seed > 0 else _fixed_layer(-seed)
    if masks is None:
        pytest.skip("kernel larger than the padded input")
    work = layer_work(masks)
    designs = []
    for org in ORGANISATIONS:
        for preset in PRESETS:
            loaded = shrunk(preset, org, abs(seed))
            memory = loaded.arch.organisation.memory
            for size in (memory.global_buffer_bytes, 2 * memory.global_buffer_bytes):
                arch = loaded.arch.model_copy(
                    update={
                        "organisation": loaded.arch.organisation.model_copy(
                            update={"memory": memory.model_copy(update={"global_buffer_bytes": size})}
                        )
                    }
                )
                designs.append(loaded.with_arch(arch))
    shared = LayerContext(masks, work)
    for loaded in designs:
        area = layer_area(loaded)
        try:
            alone = simulate_layer(LayerContext(masks, work), loaded, area)
        except Exception as err:  # a shrunk design the layer cannot map: the shared run must say so too
            with pytest.raises(type(err)):
                simulate_layer(shared, loaded, area)
            continue
        assert simulate_layer(shared, loaded, area) == alone, loaded.name
    assert len(shared.tilings) > 3


@pytest.mark.parametrize("seed", [*range(1, 11), -1, -2])
def test_blocks_kept_for_a_layer_equal_blocks_made_afresh(seed):
    """Position, stream and channel blocks and byte shares kept in one layer's `shared` for all its
    passes, tile lists and tensor sizes equal the ones a fresh `Shares` makes."""
    masks = random_layer(seed) if seed > 0 else _fixed_layer(-seed)
    if masks is None:
        pytest.skip("kernel larger than the padded input")
    g = masks.geometry
    shared: dict = {}
    for pass_ in PASSES:
        m = mapping(pass_)
        for cols_count in (1, 2, 3):
            tiles = channel_tiles(g.groups, m.channels_per_group(g), cols_count)
            for a_bytes in (100, 7):
                t = PassTensors(pass_, g, a_bytes, 50, 30, 60, m.rows(g), units(pass_, g), cols_count == 2)
                kept = Shares(t, tiles, shared)
                blockings = []
                for entries in (16, 64):  # `rows`: runs of σ store chunks, which differ by store size
                    chunks = store_chunks(pass_, masks, entries)
                    for sigma in _powers(chunks.count):
                        size = -(-chunks.count // sigma)
                        ranges = [
                            (chunks.starts[lo], chunks.stops[min(chunks.count, lo + size) - 1])
                            for lo in range(0, chunks.count, size)
                        ]
                        blockings.append((sigma, ranges))
                for sigma in _powers(units(pass_, g)):
                    part = uniform_blocks(pass_, g, sigma)
                    blockings.append((sigma, list(zip(part.starts, part.stops, strict=True))))
                for sigma, ranges in blockings:
                    fresh = Shares(t, tiles)
                    assert kept.stream(sigma, ranges) == fresh.stream(sigma, ranges)
                    for b in _powers(len(tiles)):
                        assert _same_columns(kept.columns(b), fresh.columns(b))
                        for a in _powers(t.rows):
                            assert list(kept.block_rows(a)) == list(fresh.block_rows(a))
                            one = kept.grid(a, kept.columns(b), kept.stream(sigma, ranges))
                            two = _Grid(fresh, a, fresh.columns(b), fresh.stream(sigma, ranges))
                            assert (one.a.tolist(), one.b.tolist(), one.o.tolist()) == (
                                two.a.tolist(), two.b.tolist(), two.o.tolist()
                            )  # fmt: skip


def _same_columns(one, two) -> bool:
    return (one.b, one.starts.tolist(), one.ch, one.groups, one.group_id.tolist(), one.front) == (
        two.b, two.starts.tolist(), two.ch, two.groups, two.group_id.tolist(), two.front
    )  # fmt: skip
