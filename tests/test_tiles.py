"""Tile-level output sparsity (`agos.density.tiles`) against a plain-loop reference, and
`agos sparsity --tiles`."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from agos.density.tiles import TILE_SHAPES, TileShape, layer_tiles, network_tiles, position_taps, totals
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from tests.cli_helpers import one_error_line, run_cli


def _out(size: int, kernel: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (kernel - 1) - 1) // stride + 1


def _random_layer(rng: random.Random, gen: torch.Generator) -> LayerMasks:
    n, c, h, w = rng.randint(1, 3), rng.randint(1, 40), rng.randint(1, 9), rng.randint(1, 9)
    r, stride, pad, dil = rng.choice([1, 3]), rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 2)
    if _out(h, r, stride, pad, dil) < 1 or _out(w, r, stride, pad, dil) < 1:
        r, pad, dil = 1, 0, 1
    groups = rng.choice([1, 1, c]) if c > 1 else 1
    k = groups * rng.randint(1, 3)
    g = LayerGeometry(
        "conv",
        n,
        c,
        h,
        w,
        k,
        _out(h, r, stride, pad, dil),
        _out(w, r, stride, pad, dil),
        r,
        r,
        (stride, stride),
        (pad, pad),
        (dil, dil),
        groups,
    )
    density = rng.choice([0.02, 0.1, 0.5, 0.9])
    dx = torch.rand(g.x_shape, generator=gen) < density
    if rng.random() < 0.5:  # clustered zeros: whole channels and a region dark
        dx[:, rng.randrange(c) :: rng.randint(2, 4)] = False
        dx[..., : rng.randint(0, h), :] = False
    ones = torch.ones(g.y_shape, dtype=torch.bool)
    return LayerMasks("l", g, True, dx, ones, dx, False)


def _reference(lm: LayerMasks, shape: TileShape) -> tuple[int, int, int, int, int]:
    """Plain loops: tiles, empty tiles, skipped MACs, dense MACs, element-skip MACs."""
    g = lm.geometry
    mask = lm.dx_needed.numpy()

    def taps(hh: int, ww: int) -> int:
        count = 0
        for p in range(g.p):
            for q in range(g.q):
                for r in range(g.r):
                    for s in range(g.s):
                        if (
                            p * g.stride[0] + r * g.dilation[0] - g.padding[0] == hh
                            and q * g.stride[1] + s * g.dilation[1] - g.padding[1] == ww
                        ):
                            count += 1
        return count

    tap = {(hh, ww): taps(hh, ww) for hh in range(g.h) for ww in range(g.w)}
    kpg = g.k // g.groups
    rows = [(n, hh, ww) for n in range(g.n) for hh in range(g.h) for ww in range(g.w)]
    bm, bn = shape.rows, shape.cols or g.c
    tiles = empty = skipped = dense = element = 0
    for i in range(0, len(rows), bm):
        for j in range(0, g.c, bn):
            tiles += 1
            cells = [
                (rows[a], ch) for a in range(i, min(i + bm, len(rows))) for ch in range(j, min(j + bn, g.c))
            ]
            work = sum(tap[(hh, ww)] * kpg for (n, hh, ww), ch in cells)
            dense += work
            element += sum(tap[(hh, ww)] * kpg for (n, hh, ww), ch in cells if not mask[n, ch, hh, ww])
            if not any(mask[n, ch, hh, ww] for (n, hh, ww), ch in cells):
                empty += 1
                skipped += work
    return tiles, empty, skipped, dense, element


SMALL = (
    TileShape("4x4", 4, 4),
    TileShape("8x16", 8, 16),
    TileShape("16x16", 16, 16),
    TileShape("channel", 1, None),
)


def test_tile_fractions_equal_a_plain_loop():
    rng, gen = random.Random(14), torch.Generator().manual_seed(14)
    empties = 0
    for _ in range(30):
        lm = _random_layer(rng, gen)
        got = layer_tiles(lm, SMALL)
        assert got.work_dense == lm.geometry.macs
        for shape in SMALL:
            tiles, empty, skipped, dense, element = _reference(lm, shape)
            s = got.stats(shape.name)
            assert (s.tiles, s.empty_tiles, s.work_skipped) == (tiles, empty, skipped), (lm.geometry, shape)
            assert (got.work_dense, got.work_element_skip) == (dense, element)
            empties += empty
    assert empties > 0  # the layers do have empty tiles to find


def test_position_taps_sum_to_the_dense_work():
    g = LayerGeometry("conv", 2, 3, 7, 6, 4, 4, 3, 3, 3, (2, 2), (1, 1), (1, 1))
    assert int(position_taps(g).sum()) * g.n * g.c * g.k == g.macs


def test_independent_prediction_and_no_bwd_data():
    g = LayerGeometry("conv", 1, 64, 8, 8, 8, 8, 8, 1, 1)
    dx = torch.zeros(g.x_shape, dtype=torch.bool)
    dx[0, 0, 0, 0] = True  # one needed element: every tile but one is empty
    lm = LayerMasks("x", g, True, dx, torch.ones(g.y_shape, dtype=torch.bool), dx, False)
    t = layer_tiles(lm, TILE_SHAPES)
    assert t.stats("16x16").tiles == 4 * 4 and t.stats("16x16").empty_tiles == 15
    assert t.stats("channel").empty_tiles == 63  # 64 positions, one holds the needed element
    d = 1 / dx.numel()
    assert math.isclose(t.stats("16x16").independent_empty, (1 - d) ** 256)
    assert math.isclose(totals([t], "16x16")["work_skipped_fraction"], 15 / 16)
    assert layer_tiles(LayerMasks("first", g, False, dx, dx, dx, False)) is None
    assert network_tiles([LayerMasks("first", g, False, dx, dx, dx, False), lm]) == [t]


def test_partial_edge_tiles_count_as_tiles():
    g = LayerGeometry("conv", 1, 20, 5, 5, 2, 5, 5, 1, 1)  # 25 rows × 20 channels
    dx = torch.ones(g.x_shape, dtype=torch.bool)
    dx[:, 16:] = False  # the partial column of 16×16 tiles (4 channels) is all masked
    lm = LayerMasks("x", g, True, dx, torch.ones(g.y_shape, dtype=torch.bool), dx, False)
    s = layer_tiles(lm, TILE_SHAPES).stats("16x16")
    assert (s.tiles, s.empty_tiles) == (4, 2)
    assert s.work_skipped == 25 * 4 * 2  # 25 positions × 4 channels × K=2 × 1 tap


def test_cli_tiles_table_and_json(resnet18_trace, tmp_path, capsys):
    out = tmp_path / "tiles.json"
    code, stdout, err = run_cli(capsys, "sparsity", str(resnet18_trace), "--tiles", "--json", str(out))
    assert code == 0, err
    assert "All-masked dX tiles" in stdout and "resnet18" in stdout and "real masks" in stdout
    data = json.loads(out.read_text())
    assert data["density"] == {"spec": "real", "kind": "real", "seed": 0, "label": "real masks"}
    summary = data["tiles"]
    assert summary["density_source"] == "real masks"
    assert set(summary["totals"]) == {s.name for s in TILE_SHAPES}
    first = summary["layers"][0]  # resnet18's conv1 runs no BWD-D: layer1.0.conv1 comes first
    assert first["name"] == "layer1.0.conv1" and (first["rows"], first["cols"]) == (2 * 16 * 16, 64)
    code, stdout, err = run_cli(
        capsys, "sparsity", str(resnet18_trace), "--tiles", "--density", "uniform:0.99", "--seed", "1"
    )
    assert code == 0, err
    assert "uniform:0.99" in stdout and "independently per element" in stdout


@pytest.mark.parametrize(
    "args, text",
    [
        (["--tiles", "--density", "uniform:2"], "outside [0, 1]"),
        (["--density", "uniform:0.5"], "--tiles and --structure only"),
        (["--tiles", "--csv", "x.csv"], "JSON only"),
    ],
)
def test_cli_tiles_errors(resnet18_trace, capsys, args, text):
    code, _, err = run_cli(capsys, "sparsity", str(resnet18_trace), *args)
    assert code != 0
    assert text in one_error_line(err)
