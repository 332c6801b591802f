"""The "simulation" section of an Analysis: `agos simulate --json` is an Analysis dump that
validates and round-trips, an unknown field anywhere in the section is refused, and its MAC
figures agree with a recount from the trace's masks that shares no code with the cost model."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from pydantic import ValidationError

from agos.analysis import model
from agos.analysis.model import Analysis
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density.select import resolve_density

DESIGNS = "input-skip@systolic,agos@rows"
SPANS = {
    "fwd": ("fwd",),
    "bwd_data": ("bwd_data",),
    "bwd_weight": ("bwd_weight",),
    "backprop": ("bwd_data", "bwd_weight"),
    "iteration": ("fwd", "bwd_data", "bwd_weight"),
}


@pytest.fixture(scope="module", params=["real", "uniform:0.4"])
def simulated(request, mixed_trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis-sim") / "s.json"
    args = ["simulate", str(mixed_trace), "--arch", DESIGNS, "--density", request.param, "--seed", "5"]
    assert main([*args, "--lookahead", "1,inf", "--workers", "1", "--json", str(out)]) == 0
    return mixed_trace, json.loads(out.read_text())


def test_the_json_is_an_analysis_with_the_simulation_and_its_counts(simulated):
    trace_dir, data = simulated
    analysis = Analysis.model_validate(data)
    assert model.dump(analysis) == data  # round-trips: nothing dropped, nothing added
    assert data["format"] == "agos-analysis" and data["trace"] == str(trace_dir)
    assert {name for name in model.SECTIONS if name in data} == {"realised", "bounds", "simulation"}
    sim = analysis.simulation
    assert sim.requested == ["input-skip@systolic", "agos@rows"]
    assert set(sim.lookahead_sensitivity) == set(sim.requested)
    assert list(sim.lookahead_sensitivity["agos@rows"]) == ["1", "inf"]
    assert analysis.density.label in analysis.label


@pytest.mark.parametrize(
    "where",
    [
        (),
        ("designs", "agos@rows"),
        ("designs", "agos@rows", "cycles"),
        ("designs", "agos@rows", "layers", 0, "fwd"),
        ("designs", "agos@rows", "layers", 0, "fwd", "tiling"),
        ("designs", "dense@rows", "vector"),
        ("lookahead_sensitivity", "agos@rows", "inf"),
        ("notes",),
    ],
)
def test_an_unknown_field_in_the_section_is_refused(simulated, where):
    _, data = simulated
    doctored = copy.deepcopy(data)
    node = doctored["simulation"]
    for key in where:
        node = node[key]
    node["surplus"] = 1
    with pytest.raises(ValidationError, match="surplus"):
        Analysis.model_validate(doctored)


def test_a_renamed_field_is_refused(simulated):
    _, data = simulated
    doctored = copy.deepcopy(data)
    entry = doctored["simulation"]["designs"]["agos@rows"]
    entry["speedup_over_dense_twin"] = entry.pop("speedup_over_twin")
    with pytest.raises(ValidationError):
        Analysis.model_validate(doctored)


def _taps(size_in: int, size_out: int, k: int, stride: int, pad: int, dilation: int) -> np.ndarray:
    """How many (output position, kernel tap) pairs read each input position along one axis."""
    count = np.zeros(size_in, dtype=np.int64)
    for o in range(size_out):
        for t in range(k):
            i = o * stride - pad + t * dilation
            if 0 <= i < size_in:
                count[i] += 1
    return count


def test_fwd_macs_agree_with_a_recount_from_the_masks(simulated):
    """Dense FWD MACs and the MACs input skipping leaves, layer by layer, recounted loop by loop
    from the masks of the density the JSON names."""
    trace_dir, data = simulated
    analysis = Analysis.model_validate(data)
    trace = load_trace(trace_dir)
    source = resolve_density(trace, analysis.density.spec, analysis.density.seed)
    layers = analysis.simulation.designs["input-skip@systolic"].layers
    masks = list(source.masks(trace))
    assert [m.name for m in masks] == [layer.name for layer in layers]
    for m, layer in zip(masks, layers, strict=True):
        g = m.geometry
        per_position = np.outer(
            _taps(g.h, g.p, g.r, g.stride[0], g.padding[0], g.dilation[0]),
            _taps(g.w, g.q, g.s, g.stride[1], g.padding[1], g.dilation[1]),
        )
        dense = g.n * g.c * int(per_position.sum()) * g.k_per_group
        left = int((m.x_nonzero.numpy() * per_position[None, None]).sum()) * g.k_per_group
        assert (layer.fwd.dense_macs, layer.fwd.design_macs) == (dense, left), layer.name


def test_totals_are_the_sums_of_their_parts(simulated):
    _, data = simulated
    sim = Analysis.model_validate(data).simulation
    for name in sim.requested:
        d = sim.designs[name]
        twin = sim.designs[d.twin]
        for span, passes in SPANS.items():
            conv = sum(getattr(layer, p).cycles for layer in d.layers for p in passes)
            vector = d.cycles.vector if span == "iteration" else 0
            assert getattr(d.cycles, span) == conv + vector, (name, span)
            assert getattr(d.speedup_over_twin, span) == getattr(twin.cycles, span) / getattr(d.cycles, span)
        assert d.energy_j == pytest.approx(sum(d.energy_breakdown_j.values()), rel=1e-12)
