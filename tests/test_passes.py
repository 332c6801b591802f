"""The per-pass mapping table (workload.passes) says what DESIGN.md §4's table says, and what the
counts and the cost layout derive from it agrees with a loop-by-loop enumeration of every position's
stream, written here from DESIGN.md §1 and §4 alone."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
import torch

from agos.cost.layout import layout
from agos.workload.counts import layer_work
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import LABELS, MAPPINGS, PASSES, mapping

# DESIGN.md §4: a position (PE row), a channel (PE column), the row's shared stream, each PE's own
# operand; §1: the output; §4 output skip (BWD-D only) and the stride phases of BWD-D as work sets
DESIGN_TABLE = {
    "fwd": dict(channel="k", stream="x", own="w", output="y", output_skip=False, stride_phases=False),
    "bwd_data": dict(channel="c", stream="dy", own="w", output="dx", output_skip=True, stride_phases=True),
    "bwd_weight": dict(
        channel="k", stream="x", own="dy", output="dw", output_skip=False, stride_phases=False
    ),
}

GEOMETRIES = {
    # stride 2, padding 1 (bottom/right padding follows from the output size), groups 2
    "strided_grouped": LayerGeometry(
        "conv", n=2, c=4, h=5, w=6, k=6, p=3, q=3, r=3, s=2, stride=(2, 2), padding=(1, 1), groups=2
    ),
    "dilated": LayerGeometry(
        "conv", n=1, c=3, h=6, w=5, k=2, p=4, q=5, r=2, s=3, padding=(0, 1), dilation=(2, 1)
    ),
    "depthwise": LayerGeometry(
        "conv", n=2, c=3, h=4, w=4, k=3, p=2, q=2, r=3, s=3, stride=(2, 2), padding=(1, 1), groups=3
    ),
    "linear": LayerGeometry("linear", n=3, c=5, h=1, w=1, k=4, p=1, q=1, r=1, s=1),
}


def _masks(g: LayerGeometry, seed: int = 0) -> LayerMasks:
    gen = torch.Generator().manual_seed(seed)
    return LayerMasks(
        name="layer",
        geometry=g,
        needs_bwd_data=True,
        x_nonzero=torch.rand(g.x_shape, generator=gen) < 0.6,
        dy_nonzero=torch.rand(g.y_shape, generator=gen) < 0.5,
        dx_needed=torch.rand(g.x_shape, generator=gen) < 0.7,
        dx_all_needed=False,
    )


def _streams(masks: LayerMasks):
    """Every position's stream, by enumerating every valid (output pixel, tap) pair of §1 and
    filing it under the §4 position it belongs to in each pass: (dense length, nonzero entries)
    per position, positions keyed (n, group, p, q) / (n, group, h, w) / (group, c_local, r, s)."""
    g = masks.geometry
    cg, kg = g.c // g.groups, g.k // g.groups
    x = masks.x_nonzero.reshape(g.n, g.c, g.h, g.w).tolist()
    dy = masks.dy_nonzero.reshape(g.n, g.k, g.p, g.q).tolist()
    dense = {p: defaultdict(int) for p in PASSES}
    nonzero = {p: defaultdict(int) for p in PASSES}
    for n, grp, cl, kl, p, q, r, s in itertools.product(
        range(g.n), range(g.groups), range(cg), range(kg), range(g.p), range(g.q), range(g.r), range(g.s)
    ):
        h = p * g.stride[0] + r * g.dilation[0] - g.padding[0]
        w = q * g.stride[1] + s * g.dilation[1] - g.padding[1]
        if not (0 <= h < g.h and 0 <= w < g.w):
            continue  # padding is never work
        c, k = grp * cg + cl, grp * kg + kl
        if kl == 0:  # FWD: output pixel (n, p, q), stream entry X at tap (c, r, s) (shared by every k)
            dense["fwd"][n, grp, p, q] += 1
            nonzero["fwd"][n, grp, p, q] += x[n][c][h][w]
            # BWD-W: weight tap (c, r, s), stream entry X at output pixel (n, p, q) (shared by every k)
            dense["bwd_weight"][grp, cl, r, s] += 1
            nonzero["bwd_weight"][grp, cl, r, s] += x[n][c][h][w]
        if cl == 0:  # BWD-D: input pixel (n, h, w), stream entry dY at (k, r, s) reaching it (every c)
            dense["bwd_data"][n, grp, h, w] += 1
            nonzero["bwd_data"][n, grp, h, w] += dy[n][k][p][q]
    shapes = {
        "fwd": (g.n, g.groups, g.p, g.q),
        "bwd_data": (g.n, g.groups, g.h, g.w),
        "bwd_weight": (g.groups, cg, g.r, g.s),
    }
    out = {}
    for pass_, shape in shapes.items():
        d, z = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        for key, v in dense[pass_].items():
            d[key] = v
        for key, v in nonzero[pass_].items():
            z[key] = v
        out[pass_] = (d, z)
    return out


def _per_group(t: np.ndarray, pass_: str) -> np.ndarray:
    """[.., G, ..] keyed as in `_streams` → [G, positions] in raster order."""
    axis = 0 if pass_ == "bwd_weight" else 1
    return np.moveaxis(t, axis, 0).reshape(t.shape[axis], -1)


def _row_of(g: LayerGeometry, pass_: str, raster: np.ndarray) -> np.ndarray:
    """§6 position rows: FWD (n, p), BWD-D (n, h), BWD-W c."""
    per = {"fwd": g.q, "bwd_data": g.w, "bwd_weight": g.r * g.s}[pass_]
    return raster // per


def test_the_table_states_design_section_4():
    assert tuple(MAPPINGS) == PASSES
    for pass_, row in DESIGN_TABLE.items():
        m = mapping(pass_)
        assert m.name == pass_
        assert m.label == LABELS[pass_]
        assert {key: getattr(m, key) for key in row} == row, pass_
        assert m.two_sided == (pass_ == "bwd_weight")  # only BWD-W's own operand (dY) has zeros


@pytest.mark.parametrize("pass_", ["bwd", "BWD-D", "", "backprop", None])
def test_an_unknown_pass_is_refused(pass_):
    with pytest.raises(ValueError, match="unknown pass"):
        mapping(pass_)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_positions_rows_channels_and_units_follow_the_geometry(name):
    g = GEOMETRIES[name]
    cg, kg = g.c // g.groups, g.k // g.groups
    expected = {  # (positions per group, position rows, channels per group, stream units, entries/unit)
        "fwd": (g.n * g.p * g.q, g.n * g.p, kg, cg, g.r * g.s),
        "bwd_data": (g.n * g.h * g.w, g.n * g.h, cg, kg, g.r * g.s),
        "bwd_weight": (cg * g.r * g.s, cg, kg, g.n * g.p, g.q),
    }
    for pass_, (positions, rows, ch, units, entries) in expected.items():
        m = mapping(pass_)
        got = (m.positions(g), m.rows(g), m.channels_per_group(g), m.units(g), m.unit_entries(g))
        assert got == (positions, rows, ch, units, entries), pass_
        assert m.channels(g) == g.groups * ch
        assert m.output_shape(g) == {"fwd": g.y_shape, "bwd_data": g.x_shape, "bwd_weight": g.w_shape}[pass_]


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_counts_and_layout_equal_the_enumerated_streams(name):
    """LayerWork's dense and nonzero stream fields, and the cost layout built from them through the
    table, equal the streams enumerated position by position; no stream is longer than the table's
    full enumeration (units × entries per unit)."""
    g = GEOMETRIES[name]
    masks = _masks(g)
    work = layer_work(masks)
    streams = _streams(masks)
    for pass_ in PASSES:
        m = mapping(pass_)
        dense, nonzero = streams[pass_]
        assert m.grouped_shape(g) == dense.shape, pass_
        # the dense stream of a position is the same in every group: LayerWork keeps it once
        dense_field = getattr(work, f"{pass_}_dense").numpy()
        assert (np.moveaxis(dense, m.group_axis, 0) == dense_field).all(), pass_
        assert dense.max() <= m.stream_entries(g)
        assert (work.stream_lengths(pass_).numpy() == _per_group(dense, pass_)[0]).all(), pass_
        assert (work.stream_nonzero(pass_).numpy() == _per_group(nonzero, pass_)).all(), pass_

        lay = layout(pass_, work)
        raster = lay.order
        assert sorted(raster.tolist()) == list(range(m.positions(g)))
        assert (lay.length == _per_group(dense, pass_)[0][raster]).all(), pass_
        assert (lay.nonzero == _per_group(nonzero, pass_)[:, raster]).all(), pass_
        assert (lay.row == _row_of(g, pass_, raster)).all(), pass_
        assert lay.rows == m.rows(g) and lay.ch == m.channels_per_group(g) and lay.groups == g.groups
        # work sets: one, except BWD-D with stride, whose positions split by stride phase
        phases = {pass_: 1 for pass_ in PASSES}
        if g.stride != (1, 1):
            phases["bwd_data"] = len(
                {
                    ((h + g.padding[0]) % g.stride[0], (w + g.padding[1]) % g.stride[1])
                    for h in range(g.h)
                    for w in range(g.w)
                }
            )
        assert int(lay.set_id.max()) + 1 == phases[pass_], pass_


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_per_output_counts_are_shaped_like_the_pass_output(name):
    g = GEOMETRIES[name]
    work = layer_work(_masks(g, seed=1))
    for pass_ in PASSES:
        m = mapping(pass_)
        for policy in ("dense", "input", "output", "input+output"):
            counts = work.per_output(pass_, policy)
            assert tuple(counts.shape) == m.output_shape(g)
            assert int(counts.sum()) == work.total(pass_, policy), (pass_, policy)
