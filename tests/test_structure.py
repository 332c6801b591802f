"""Statistical masks with controlled structure at equal density (`structure=`), and the structure
measures (dead channels, planes, positions; co-zero lifts) against a brute-force recount."""

from __future__ import annotations

import itertools
import json
import math

import jsonschema
import pytest
import torch

from agos.analysis.analyse import analyse
from agos.analysis.model import SCHEMA_FILE
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density import layer_masks, parse_density, resolve_density
from agos.density.clustering import zero_structure
from agos.density.select import statistical_source
from agos.density.statistical import plan_layers
from agos.density.structure import Structure, structured_nonzero
from agos.errors import AgosError

STRUCTURES = (
    "independent",
    "channels",
    "channels:0.5",
    "planes",
    "planes:0.7",
    "positions",
    "positions:0.3",
    "blobs:3",
    "blobs:2:0.5",
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _structure(text: str) -> Structure:
    spec = parse_density(f"uniform:0.5:structure={text}")
    assert spec.structure is not None and spec.structure.text == text
    return spec.structure


# -- the generator ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", STRUCTURES)
@pytest.mark.parametrize("s", [0.0, 0.013, 0.37, 0.6, 0.999, 1.0])
def test_exact_zero_count(text, s):
    for shape in [(3, 7, 9, 11), (4, 5, 1, 1), (6, 13)]:
        mask = structured_nonzero(shape, s, _structure(text), _gen())
        assert mask.shape == shape and mask.dtype == torch.bool
        assert int((~mask).sum()) == math.floor(s * math.prod(shape) + 0.5), (text, s, shape)


@pytest.mark.parametrize("text", STRUCTURES)
def test_deterministic_per_seed(text):
    st = _structure(text)
    a = structured_nonzero((2, 8, 12, 12), 0.4, st, _gen(5))
    assert torch.equal(a, structured_nonzero((2, 8, 12, 12), 0.4, st, _gen(5)))
    assert not torch.equal(a, structured_nonzero((2, 8, 12, 12), 0.4, st, _gen(6)))


SHAPE = (4, 32, 24, 24)


def test_dead_channels_and_positions_take_the_structured_share():
    n, c, h, w = SHAPE
    numel = math.prod(SHAPE)
    for s, share in itertools.product((0.2, 0.55, 0.9), (1.0, 0.5)):
        zeros = math.floor(s * numel + 0.5)
        budget = math.floor(share * zeros + 0.5)
        # F = 1: the remainder is smaller than one unit, so no other unit can be all zero; F < 1: the
        # independent rest may complete a unit by chance
        chan = zero_structure(~structured_nonzero(SHAPE, s, Structure("channels", share=share), _gen()))
        pos = zero_structure(~structured_nonzero(SHAPE, s, Structure("positions", share=share), _gen()))
        plane = zero_structure(~structured_nonzero(SHAPE, s, Structure("planes", share=share), _gen()))
        want = (budget // (n * h * w), budget // c, budget // (h * w))
        got = (chan.dead_channels, pos.dead_positions, plane.dead_planes)
        if share == 1:
            assert got == want
        else:
            assert all(g >= w for g, w in zip(got, want, strict=True))
    # without units, dead channels/positions are as rare as independence says (none here)
    z = zero_structure(~structured_nonzero(SHAPE, 0.55, Structure("independent"), _gen()))
    assert z.dead_channels == 0 and z.dead_positions == 0


def _lift_tolerance(pairs_slots: int, s: float) -> float:
    """Six standard errors of a co-zero lift estimated from `slots` partner draws (each slot is a
    Bernoulli(s) draw; a zero's partners overlap, so the draws count as a quarter as many)."""
    return 6 * math.sqrt((1 - s) / (s * pairs_slots / 4))


def test_independent_lifts_are_one_within_tolerance():
    for s in (0.2, 0.5, 0.8):
        z = zero_structure(~structured_nonzero(SHAPE, s, Structure("independent"), _gen(1)))
        for name in ("same_position", "same_plane", "same_channel", "neighbour", "spatial", "aligned"):
            p = getattr(z, name)
            assert abs(p.lift - 1) <= _lift_tolerance(p.slots, s), (s, name, p.lift)


def test_each_structure_shows_where_it_puts_the_zeros():
    s = 0.5
    found = {
        text: zero_structure(~structured_nonzero(SHAPE, s, _structure(text), _gen(2)))
        for text in ("independent", "channels", "planes", "positions", "blobs:2", "blobs:4")
    }
    tol = _lift_tolerance(found["independent"].neighbour.slots, s)
    # blobs: spatial clustering beyond each plane's density, none across channels
    assert found["blobs:2"].spatial.lift > 1 + 10 * tol
    assert found["blobs:4"].spatial.lift > found["blobs:2"].spatial.lift
    assert abs(found["blobs:4"].aligned.lift - 1) <= tol
    # dead channels: uneven planes (plane lift ≈ 1/s), no spatial or positional clustering beyond it
    ch = found["channels"]
    assert ch.same_plane.lift == pytest.approx(1 / s, rel=0.01)
    assert abs(ch.spatial.lift - 1) <= tol and abs(ch.aligned.lift - 1) <= tol
    # silent planes: uneven planes, nothing else; a channel dies only when all N of its planes do
    pl = found["planes"]
    assert pl.same_plane.lift == pytest.approx(1 / s, rel=0.01)
    assert pl.dead_channels <= 3 * SHAPE[1] * s ** SHAPE[0]
    assert abs(pl.spatial.lift - 1) <= tol and abs(pl.aligned.lift - 1) <= tol
    # all-zero positions: aligned across channels, not in space
    pos = found["positions"]
    assert pos.aligned.lift == pytest.approx(1 / s, rel=0.01)
    assert abs(pos.spatial.lift - 1) <= tol


def test_blob_grid_has_random_offsets():
    """One blob's worth of zeros in a 12×12 plane: whenever they form one B×B square, its corner lies
    on the grid of that draw; over seeds the corners fall at several offsets (no grid aligned at 0)."""
    b = 3
    corners = set()
    for seed in range(30):
        mask = structured_nonzero((1, 1, 12, 12), b * b / 144, Structure("blobs", b), _gen(seed))
        ys, xs = torch.nonzero(~mask[0, 0], as_tuple=True)
        if int(ys.max() - ys.min()) == b - 1 and int(xs.max() - xs.min()) == b - 1:
            corners.add((int(ys.min()) % b, int(xs.min()) % b))
    assert len(corners) >= 3


# -- the measures against a brute-force recount -------------------------------------------------


def _brute(zero: torch.Tensor) -> dict:
    n, c, h, w = zero.shape
    z = zero.tolist()
    zeros = sum(z[i][j][y][x] for i in range(n) for j in range(c) for y in range(h) for x in range(w))
    out = {"zeros": zeros}
    out["dead_channels"] = sum(
        all(z[i][j][y][x] for i in range(n) for y in range(h) for x in range(w)) for j in range(c)
    )
    out["dead_planes"] = sum(
        all(z[i][j][y][x] for y in range(h) for x in range(w)) for i in range(n) for j in range(c)
    )
    out["dead_positions"] = sum(
        all(z[i][j][y][x] for j in range(c)) for i in range(n) for y in range(h) for x in range(w)
    )
    cells = [(i, j, y, x) for i in range(n) for j in range(c) for y in range(h) for x in range(w)]
    zs = [e for e in cells if z[e[0]][e[1]][e[2]][e[3]]]
    dead = {
        "channels": lambda e: all(z[i][e[1]][y][x] for i in range(n) for y in range(h) for x in range(w)),
        "planes": lambda e: all(z[e[0]][e[1]][y][x] for y in range(h) for x in range(w)),
        "positions": lambda e: all(z[e[0]][j][e[2]][e[3]] for j in range(c)),
    }
    out["in_dead"] = {unit: sum(1 for e in zs if is_dead(e)) for unit, is_dead in dead.items()}
    pairs = {"same_position": [0, 0], "same_plane": [0, 0], "same_channel": [0, 0], "neighbour": [0, 0]}
    for a in zs:
        for b in cells:
            if a == b:
                continue
            zb = z[b[0]][b[1]][b[2]][b[3]]
            groups = {
                "same_position": a[0] == b[0] and a[2:] == b[2:],
                "same_plane": a[:2] == b[:2],
                "same_channel": a[1] == b[1],
                "neighbour": a[:2] == b[:2] and abs(a[2] - b[2]) + abs(a[3] - b[3]) == 1,
            }
            for name, same in groups.items():
                if same:
                    pairs[name][0] += zb
                    pairs[name][1] += 1
    out.update({k: tuple(v) for k, v in pairs.items()})
    # spatial null: each plane's zeros uniformly placed; E[ordered adjacent zero pairs] by enumeration
    m = h * w
    adjacent = sum(
        1
        for y, x, y2, x2 in itertools.product(range(h), range(w), range(h), range(w))
        if abs(y - y2) + abs(x - x2) == 1
    )
    per_plane = [sum(z[i][j][y][x] for y in range(h) for x in range(w)) for i in range(n) for j in range(c)]
    out["spatial_expected"] = sum(adjacent * k * (k - 1) / (m * (m - 1)) for k in per_plane) if m > 1 else 0
    # aligned null: planes independent; E[ordered same-position pairs] = Σ_pos Σ_{c≠c'} p_c p_c'
    aligned = 0.0
    for i in range(n):
        p = [sum(z[i][j][y][x] for y in range(h) for x in range(w)) / m for j in range(c)]
        aligned += m * sum(p[a] * p[b] for a in range(c) for b in range(c) if a != b)
    out["aligned_expected"] = aligned
    return out


def _cases():
    g = _gen(11)
    yield torch.rand((2, 3, 4, 5), generator=g) < 0.5
    yield torch.rand((3, 4, 1, 1), generator=g) < 0.6  # a Linear input: no spatial extent
    yield torch.ones((2, 2, 3, 3), dtype=torch.bool)
    yield torch.zeros((2, 2, 3, 3), dtype=torch.bool)
    yield torch.rand((1, 1, 6, 2), generator=g) < 0.4  # one channel
    yield ~structured_nonzero((2, 4, 5, 5), 0.5, Structure("blobs", 2), _gen(3))
    yield ~structured_nonzero((2, 4, 5, 5), 0.5, Structure("channels"), _gen(3))
    yield ~structured_nonzero((2, 4, 5, 5), 0.5, Structure("positions"), _gen(3))
    yield ~structured_nonzero((2, 4, 5, 5), 0.5, Structure("planes"), _gen(3))


@pytest.mark.parametrize("case", range(9))
def test_measures_equal_a_brute_force_recount(case):
    zero = list(_cases())[case]
    got = zero_structure(zero)
    want = _brute(zero)
    assert got.zeros == want["zeros"]
    assert (got.dead_channels, got.dead_planes, got.dead_positions) == (
        want["dead_channels"],
        want["dead_planes"],
        want["dead_positions"],
    )
    assert got.zeros_in_dead == want["in_dead"]
    s = got.zeros / got.numel
    for name in ("same_position", "same_plane", "same_channel", "neighbour"):
        p = getattr(got, name)
        assert (p.pairs, p.slots) == want[name], name
        assert p.expected == pytest.approx(p.slots * s)
    assert (got.spatial.pairs, got.spatial.slots) == want["neighbour"]
    assert got.spatial.expected == pytest.approx(want["spatial_expected"])
    assert (got.aligned.pairs, got.aligned.slots) == want["same_position"]
    assert got.aligned.expected == pytest.approx(want["aligned_expected"])


# -- as density sources on a trace --------------------------------------------------------------


def _plans(trace, spec):
    return plan_layers(trace, statistical_source(trace, spec).fractions)


def test_equal_density_across_structures_on_a_trace(resnet18_trace, tmp_path):
    """Every generated X and dX has exactly the zeros of its activation(s), the same count under every
    structure (a profile with a different fraction per activation too)."""
    trace = load_trace(resnet18_trace)
    acts = {a.name: a for a in trace.manifest.activations}
    profile = tmp_path / "p.csv"
    profile.write_text("index,zero_fraction\n" + "".join(f"{i},{0.05 * i:.2f}\n" for i in range(1, 18)))
    for base, structures in (
        ("uniform:0.45", STRUCTURES),
        (f"profile:{profile}", ("independent", "planes", "blobs:2:0.5")),
    ):
        fractions = statistical_source(trace, base).fractions.activations
        counts = {}
        for text in structures:
            spec = f"{base}:structure={text}"
            plans = _plans(trace, spec)
            for plan, m in zip(plans, layer_masks(trace, spec, seed=3), strict=True):
                x_zero = int((~m.x_nonzero).sum())
                if plan.x.kind == "reuse" and plan.x.keep == 1:
                    want = sum(
                        math.floor(fractions[a] * math.prod(acts[a].shape) + 0.5) for a in plan.x.parts
                    )
                    assert x_zero == want, (spec, m.name)
                if plan.x.kind == "draw":  # a pooled X drawn afresh: exact too, and structured
                    assert x_zero == math.floor(plan.x.target * m.x_nonzero.numel() + 0.5), (spec, m.name)
                    n, _, h, w = m.x_nonzero.shape
                    if text == "channels":
                        assert zero_structure(~m.x_nonzero).dead_channels == x_zero // (n * h * w)
                if plan.x.kind != "real":  # the rule names the structure, or why it cannot apply
                    flat = text.split(":")[0] in ("blobs", "planes") and "zeros independent (" in plan.x.rule
                    assert f"zeros: {text}" in plan.x.rule or (flat and m.x_nonzero.shape[2:] == (1, 1))
                if plan.dx.kind == "from_x" and plan.dx.keep == 1:
                    assert torch.equal(m.dx_needed, m.x_nonzero)  # needed dX == X > 0
                counts.setdefault(m.name, set()).add(x_zero)
        assert all(len(v) == 1 for v in counts.values()), counts  # equal density, every structure


def test_dy_follows_the_structured_activation(mixed_trace):
    """Where Y feeds a ReLU directly, dY's zeros cover the structured activation's zeros, and dY's
    density is the same under every structure within binomial tolerance (its live-position thinning
    is the trace's rate, drawn independently, as for the unstructured source)."""
    trace = load_trace(mixed_trace)
    got: dict[str, list[float]] = {}
    for text in ("independent", "channels", "blobs:2"):
        spec = f"uniform:0.5:structure={text}"
        plans = _plans(trace, spec)
        masks = list(layer_masks(trace, spec, seed=1))
        for i, (plan, m) in enumerate(zip(plans, masks, strict=True)):
            if plan.dy.kind != "act":
                continue
            got.setdefault(m.name, []).append(1 - m.dy_nonzero.float().mean().item())
            nxt = masks[i + 1] if i + 1 < len(masks) else None
            if nxt is not None and plans[i + 1].x.parts == (plan.dy.act,) and plans[i + 1].x.keep == 1:
                assert not (m.dy_nonzero & ~nxt.x_nonzero.reshape(m.dy_nonzero.shape)).any()
    assert got
    for name, values in got.items():
        numel = next(m for m in layer_masks(trace, "real") if m.name == name).dy_nonzero.numel()
        p = sum(values) / len(values)
        assert max(values) - min(values) <= 2 * (5 * math.sqrt(p * (1 - p) / numel) + 1 / numel), name


def test_structured_source_deterministic_and_labelled(resnet18_trace):
    trace = load_trace(resnet18_trace)
    spec = "uniform:0.5:structure=blobs:2"
    source = resolve_density(trace, spec, seed=4)
    assert source.label == "uniform:0.5:structure=blobs:2 (seed 4)" and source.text == spec
    a, b = list(source.masks(trace)), list(resolve_density(trace, spec, seed=4).masks(trace))
    c = list(resolve_density(trace, spec, seed=5).masks(trace))
    for ma, mb in zip(a, b, strict=True):
        assert ma.source == source.label
        for f in ("x_nonzero", "dy_nonzero", "dx_needed"):
            assert torch.equal(getattr(ma, f), getattr(mb, f))
    assert any(not torch.equal(ma.x_nonzero, mc.x_nonzero) for ma, mc in zip(a, c, strict=True))
    # independent with exact counts is not the Bernoulli default, but the same density
    bern = list(layer_masks(trace, "uniform:0.5", seed=4))
    exact = list(layer_masks(trace, "uniform:0.5:structure=independent", seed=4))
    assert any(not torch.equal(x.x_nonzero, y.x_nonzero) for x, y in zip(bern, exact, strict=True))


def test_structure_section_sees_the_structure(resnet18_trace):
    """The section computed from each source's LayerMasks: blobs raise the spatial lift, positions the
    aligned lift, the independent source stays near 1 (pooled); per layer of a reused activation, dead
    channels and dead positions are the whole units the zero budget holds."""
    trace = load_trace(resnet18_trace)
    plans = {p.name: p for p in _plans(trace, "uniform:0.5:structure=independent")}

    def section(text: str):
        return analyse(
            trace, resolve_density(trace, f"uniform:0.5:structure={text}"), ["structure"]
        ).structure

    ind, blobs, chan, pos = (section(t) for t in ("independent", "blobs:3", "channels", "positions"))
    t = {name: s.totals["x"] for name, s in (("ind", ind), ("blobs", blobs), ("chan", chan), ("pos", pos))}
    # independent zeros still kill a few of fc's 2-element channels (s² each)
    assert (
        abs(t["ind"].spatial - 1) < 0.05
        and abs(t["ind"].aligned - 1) < 0.05
        and t["ind"].dead_channels < 0.01
    )
    assert t["blobs"].spatial > 1.3 and abs(t["blobs"].aligned - 1) < 0.05 and t["pos"].aligned > 1.8
    assert len({x.zero_fraction for x in t.values()}) == 1  # equal density
    half = section("planes:0.5").totals["x"]  # F comes back as the share of zeros in dead planes
    assert 0.45 < half.zeros_in_dead_planes < 0.55 and t["ind"].zeros_in_dead_planes < 0.01
    reused = 0
    for c, p in zip(chan.layers, pos.layers, strict=True):
        if plans[c.name].x.kind != "reuse":
            continue
        reused += 1
        n, ch, h, w = c.shape
        zeros = (n * ch * h * w) // 2
        assert c.x.dead_channels == (zeros // (n * h * w)) / ch
        assert p.x.dead_positions == (zeros // ch) / (n * h * w)
    assert reused >= 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uniform:0.6:structure=lumps", "is not independent, channels"),
        ("uniform:0.6:structure=blobs", "blobs need a size"),
        ("uniform:0.6:structure=blobs:0", "not an integer ≥ 1"),
        ("uniform:0.6:structure=blobs:x", "not an integer ≥ 1"),
        ("uniform:0.6:structure=channels:1.5", "outside [0, 1]"),
        ("uniform:0.6:structure=channels:half", "not a share of zeros"),
        ("uniform:0.6:structure=positions:0.5:3", "too many parts"),
        ("uniform:0.6:structure=independent:2", "takes no parameters"),
        ("real:structure=channels", "real masks have their own structure"),
        ("uniform:x:structure=channels", "not a zero fraction"),
    ],
)
def test_bad_structure_specs_are_one_line(mixed_trace, capsys, text, message):
    with pytest.raises(AgosError) as err:
        parse_density(text)
    assert message in str(err.value) and "\n" not in str(err.value)
    code = main(["sparsity", str(mixed_trace), "--structure", "--density", text])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_cli_structure(mixed_trace, tmp_path, capsys):
    out = tmp_path / "structure.json"
    assert main(["sparsity", str(mixed_trace), "--structure", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Structure of the zeros of X" in printed and "skippable dX" in printed
    data = json.loads(out.read_text())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    section = data["structure"]
    assert section["density_source"] == "real masks" and set(section["totals"]) == {"x", "dx", "dy"}
    trace = load_trace(mixed_trace)
    assert [layer["name"] for layer in section["layers"]] == [layer.name for layer in trace.layers]
    # a layer without an output mask has no dX structure
    conservative = {x.name for x in trace.layers if x.dx_needed is None or not x.needs_bwd_data}
    assert {layer["name"] for layer in section["layers"] if layer["dx"] is None} == conservative
    assert main(["sparsity", str(mixed_trace), "--structure", "--tiles"]) == 2


def test_tiles_see_structured_sources_as_structured(resnet18_trace):
    """All-zero positions empty the tiles section's *channel* tiles (one position's whole channel
    vector); independent zeros leave none, and only independent masks carry the independence note."""
    trace = load_trace(resnet18_trace)

    def tiles(spec: str):
        return analyse(trace, resolve_density(trace, spec), ["tiles"]).tiles

    ind, pos = tiles("uniform:0.5:structure=independent"), tiles("uniform:0.5:structure=positions")
    assert ind.statistical and tiles("uniform:0.5").statistical and not pos.statistical
    assert ind.totals["channel"].empty_fraction < 0.01 < 0.3 < pos.totals["channel"].empty_fraction
