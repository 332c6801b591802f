"""The bounds section of `Analysis`: `agos bounds --json` is a valid Analysis dump, unknown fields
are refused, and every layer's MACs agree with a recount from the trace's masks by convolution."""

from __future__ import annotations

import copy
import json

import pydantic
import pytest
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input

from agos.analysis.model import SECTIONS, Analysis, dump
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density.real import iter_real_masks


@pytest.fixture(scope="module")
def bounds_json(mixed_trace, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bounds") / "b.json"
    assert main(["bounds", str(mixed_trace), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_json_is_an_analysis_with_the_counted_sections(bounds_json, mixed_trace):
    analysis = Analysis.model_validate(bounds_json)
    assert analysis.bounds is not None and analysis.trace == str(mixed_trace)
    assert analysis.density.kind == "real" and analysis.density.label == "real masks"
    assert [s for s in SECTIONS if s in bounds_json] == ["realised", "bounds"]  # one pass of counts
    assert dump(analysis) == bounds_json  # nothing lost or renamed on the way through the model


@pytest.mark.parametrize(
    "where",
    [
        lambda d: d["bounds"],
        lambda d: d["bounds"]["layers"][0],
        lambda d: d["bounds"]["totals"],
        lambda d: d["bounds"]["speedups"]["input"],
        lambda d: d["bounds"]["layers"][-1]["speedups"]["input+output"],
    ],
    ids=["section", "layer", "totals", "speedups", "layer-speedups"],
)
def test_an_unknown_field_is_refused(bounds_json, where):
    doctored = copy.deepcopy(bounds_json)
    where(doctored)["surprise"] = 1
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        Analysis.model_validate(doctored)


def test_a_missing_or_mistyped_field_is_refused(bounds_json):
    doctored = copy.deepcopy(bounds_json)
    del doctored["bounds"]["layers"][0]["bwd_data"]
    with pytest.raises(pydantic.ValidationError, match="bwd_data"):
        Analysis.model_validate(doctored)
    doctored = copy.deepcopy(bounds_json)
    doctored["bounds"]["totals"]["fwd"]["dense"] = "many"
    with pytest.raises(pydantic.ValidationError):
        Analysis.model_validate(doctored)


def _recount(m) -> dict[str, dict[str, int]]:
    """Every pass and policy's MACs by convolving the masks with all-ones kernels (float64 sums
    of 0/1 products are exact): shares nothing with workload.counts or its brute force."""
    g = m.geometry
    conv = {"stride": g.stride, "padding": g.padding, "dilation": g.dilation, "groups": g.groups}
    ones_w = torch.ones(g.k, g.c_per_group, g.r, g.s, dtype=torch.float64)
    x, dy, dx = (t.to(torch.float64) for t in (m.x_nonzero, m.dy_nonzero, m.dx_needed))
    taps = F.conv2d(torch.ones_like(x), ones_w, **conv)  # valid taps of each output element
    live = F.conv2d(x, ones_w, **conv)  # its taps on a nonzero X
    assert taps.shape == dy.shape
    dense = int(taps.sum())
    fwd = {"dense": dense, "input": int(live.sum()), "output": dense, "input+output": int(live.sum())}
    bwd_w = {
        "dense": dense,
        "input": int(live.sum()),
        "output": dense,
        "input+output": int((live * dy).sum()),
    }
    if not m.needs_bwd_data:
        bwd_d = dict.fromkeys(fwd, 0)
    else:
        reach = conv2d_input(x.shape, ones_w, torch.ones_like(dy), **conv)  # products into each dX
        reach_live = conv2d_input(x.shape, ones_w, dy, **conv)  # those with a nonzero dY
        bwd_d = {
            "dense": dense,
            "input": int((taps * dy).sum()),
            "output": int((reach * dx).sum()),
            "input+output": int((reach_live * dx).sum()),
        }
    return {"fwd": fwd, "bwd_data": bwd_d, "bwd_weight": bwd_w}


def test_every_count_agrees_with_a_recount_from_the_masks(bounds_json, mixed_trace):
    section = Analysis.model_validate(bounds_json).bounds
    trace = load_trace(mixed_trace)
    kinds = set()
    for layer, m in zip(section.layers, iter_real_masks(trace), strict=True):
        kinds.add((layer.kind, m.geometry.groups > 1, m.needs_bwd_data, m.dx_all_needed))
        expected = _recount(m)
        for p in section.passes:
            assert getattr(layer, p) == expected[p], (layer.name, p)
        for policy, s in layer.speedups.items():
            for p in section.passes:
                d, e = expected[p]["dense"], expected[p][policy]
                assert getattr(s, p) == (d / e if e else None)
    assert len(kinds) >= 4  # convs and a Linear, grouped, without BWD-D, with and without a dX mask
    for p in section.passes:
        for policy in section.policies:
            assert getattr(section.totals, p)[policy] == sum(getattr(x, p)[policy] for x in section.layers)
    for policy, s in section.speedups.items():
        whole = section.totals.span("iteration")
        assert s.iteration == whole["dense"] / whole[policy]
        back = section.totals.span("backprop")
        assert s.backprop == back["dense"] / back[policy]


def test_the_table_renders_from_the_model_alone(bounds_json, capsys):
    from agos.report.bounds import print_table

    print_table(Analysis.model_validate(bounds_json))
    out = capsys.readouterr().out
    assert "model total" in out and "Ideal speedup of the whole model" in out
    assert "tests.models:mixed" in out and "X in BWD-W" in out  # the label and the notes
