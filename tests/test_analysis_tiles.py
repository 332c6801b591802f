"""The "tiles" section of the Analysis model: `agos sparsity --tiles --json` is an Analysis dump
that validates, refuses unknown fields, records its density source, and whose tile counts are a
plain recount of the needed-dX masks."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from agos.analysis import model
from agos.analysis.model import SECTIONS, Analysis
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density.select import resolve_density


@pytest.fixture(scope="module")
def tiles_json(mixed_trace, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("analysis") / "tiles.json"
    assert main(["sparsity", str(mixed_trace), "--tiles", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_tiles_json_is_an_analysis(tiles_json, mixed_trace):
    analysis = Analysis.model_validate(tiles_json)
    assert [name for name in SECTIONS if getattr(analysis, name, None) is not None] == ["tiles"]
    assert set(tiles_json) & set(SECTIONS) == {"tiles"}
    assert analysis.density.model_dump() == {
        "spec": "real",
        "kind": "real",
        "seed": 0,
        "label": "real masks",
        "notes": [],
    }
    assert analysis.label.endswith("real masks") and analysis.trace == str(mixed_trace)
    assert analysis.tiles.density_source == "real masks" and not analysis.tiles.statistical
    assert model.dump(analysis) == tiles_json


def test_statistical_source_is_recorded(mixed_trace, tmp_path):
    out = tmp_path / "u.json"
    args = ["--tiles", "--density", "uniform:0.5", "--seed", "2", "--json", str(out)]
    assert main(["sparsity", str(mixed_trace), *args]) == 0
    analysis = model.load(out)
    assert (analysis.density.kind, analysis.density.seed) == ("uniform", 2)
    assert analysis.tiles.statistical and analysis.tiles.density_source == analysis.density.label


@pytest.mark.parametrize(
    "where",
    [
        lambda t: t,
        lambda t: t["layers"][0],
        lambda t: t["layers"][0]["shapes"]["16x16"],
        lambda t: t["totals"]["32x32"],
        lambda t: t["tile_shapes"][0],
    ],
    ids=["section", "layer", "layer-shape", "totals", "tile-shape"],
)
def test_unknown_field_in_the_section_is_refused(tiles_json, where):
    doctored = copy.deepcopy(tiles_json)
    where(doctored["tiles"])["empty_fraktion"] = 0.5
    with pytest.raises(ValidationError, match="empty_fraktion"):
        Analysis.model_validate(doctored)


def _plain_tiles(dx, rows: int, cols: int | None) -> tuple[int, int]:
    """Tiles and all-masked tiles of a [N, C, H, W] mask as the [N·H·W, C] GEMM matrix, by loops."""
    matrix = dx.permute(0, 2, 3, 1).reshape(-1, dx.shape[1])
    m, c = matrix.shape
    cols = cols or c
    tiles = empty = 0
    for i in range(0, m, rows):
        for j in range(0, c, cols):
            tiles += 1
            empty += not bool(matrix[i : i + rows, j : j + cols].any())
    return tiles, empty


@pytest.mark.parametrize("density", ["real", "uniform:0.9"])
def test_tile_counts_are_a_plain_recount_of_the_masks(density, mixed_trace, tmp_path):
    """Real masks, and seeded statistical ones sparse enough that small tiles go empty."""
    out = tmp_path / "t.json"
    assert main(["sparsity", str(mixed_trace), "--tiles", "--density", density, "--json", str(out)]) == 0
    section = model.load(out).tiles
    shapes = {s.name: (s.rows, None if s.cols == "C" else s.cols) for s in section.tile_shapes}
    trace = load_trace(mixed_trace)
    bwd = [m for m in resolve_density(trace, density, 0).masks(trace) if m.needs_bwd_data]
    assert [t.name for t in section.layers] == [m.name for m in bwd]
    sums = {name: [0, 0] for name in shapes}
    for t, m in zip(section.layers, bwd, strict=True):
        dx = m.dx_needed.reshape(m.geometry.x_shape)
        assert t.work_dense == m.geometry.macs
        assert (t.rows, t.cols) == (dx.numel() // dx.shape[1], dx.shape[1])
        assert t.needed_fraction == int(dx.sum()) / dx.numel() and t.all_needed == m.dx_all_needed
        for name, (rows, cols) in shapes.items():
            s = t.shapes[name]
            assert (s.tiles, s.empty_tiles) == _plain_tiles(dx, rows, cols), (t.name, name)
            assert s.empty_fraction == s.empty_tiles / s.tiles
            assert s.work_skipped_fraction == s.work_skipped / t.work_dense
            sums[name][0] += s.tiles
            sums[name][1] += s.empty_tiles
    if density != "real":  # the small test network's real masks hold no all-masked tile
        assert sum(e for _, e in sums.values()) > 0
    work = sum(t.work_dense for t in section.layers)
    for name, (tiles, empty) in sums.items():
        total = section.totals[name]
        assert (total.shape, total.tiles, total.empty_tiles, total.work_dense) == (name, tiles, empty, work)
        assert total.work_skipped == sum(t.shapes[name].work_skipped for t in section.layers)
    assert section.element_skip_fraction == sum(t.work_element_skip for t in section.layers) / work
