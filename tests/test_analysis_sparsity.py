"""The "sparsity" section of the Analysis model: `agos sparsity --json` is an Analysis dump that
validates, refuses unknown fields, and whose figures are a recount of the trace's masks."""

from __future__ import annotations

import copy
import json
import math

import pytest
from pydantic import ValidationError

from agos.analysis import model
from agos.analysis.model import SECTIONS, VERSION, Analysis
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density.real import iter_real_masks
from tests.cli_helpers import run_cli


@pytest.fixture(scope="module")
def sparsity_json(mixed_trace, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("analysis") / "sparsity.json"
    assert main(["sparsity", str(mixed_trace), "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_sparsity_json_is_an_analysis(sparsity_json, mixed_trace):
    analysis = Analysis.model_validate(sparsity_json)
    assert analysis.format == "agos-analysis" and analysis.version == VERSION
    assert analysis.trace == str(mixed_trace) and analysis.provenance.model == "tests.models:mixed"
    assert analysis.sparsity is not None
    assert [name for name in SECTIONS if getattr(analysis, name, None) is not None] == ["sparsity"]
    assert set(sparsity_json) & set(SECTIONS) == {"sparsity"}  # the sections not computed are left out
    assert model.dump(analysis) == sparsity_json  # a round trip changes nothing


@pytest.mark.parametrize(
    "where",
    [
        lambda s: s,
        lambda s: s["totals"],
        lambda s: s["layers"][0],
    ],
    ids=["section", "totals", "layer"],
)
def test_unknown_field_in_the_section_is_refused(sparsity_json, where):
    doctored = copy.deepcopy(sparsity_json)
    where(doctored["sparsity"])["x_zero_fraction"] = 0.5  # a renamed field
    with pytest.raises(ValidationError, match="x_zero_fraction"):
        Analysis.model_validate(doctored)


def test_figures_are_a_recount_of_the_masks(sparsity_json, mixed_trace):
    """Per layer, each zero fraction equals a count of the bit-packed masks (the section reads the
    manifest's recorded counts); the totals are the MAC-weighted means of those recounts."""
    section = Analysis.model_validate(sparsity_json).sparsity
    trace = load_trace(mixed_trace)
    assert (section.loss, section.graph) == (trace.manifest.loss, trace.manifest.graph)
    masks = list(iter_real_masks(trace))
    assert [s.name for s in section.layers] == [m.name for m in masks]
    recount = []
    for i, (s, m) in enumerate(zip(section.layers, masks, strict=True)):
        x = 1 - int(m.x_nonzero.sum()) / m.x_nonzero.numel()
        dy = 1 - int(m.dy_nonzero.sum()) / m.dy_nonzero.numel()
        dx = 1 - int(m.dx_needed.sum()) / m.dx_needed.numel() if m.needs_bwd_data else 0.0
        assert (s.index, s.macs, s.needs_bwd_data) == (i, m.geometry.macs, m.needs_bwd_data)
        assert (s.x_zero_frac, s.dy_zero_frac, s.dx_skip_frac) == (x, dy, dx), s.name
        recount.append((m.geometry.macs, m.needs_bwd_data, x, dy, dx))
    assert any(x > 0 for _, _, x, _, _ in recount) and any(dx > 0 for *_, dx in recount)

    def mean(k: int, only_bwd: bool) -> float:
        rows = [r for r in recount if r[1] or not only_bwd]
        return math.fsum(r[0] * r[k] for r in rows) / sum(r[0] for r in rows)

    t = section.totals
    assert t.layers == len(masks) and t.macs_per_pass == sum(r[0] for r in recount)
    assert t.bwd_data_macs == sum(r[0] for r in recount if r[1])
    assert math.isclose(t.x_zero_frac, mean(2, False), rel_tol=1e-12)
    assert math.isclose(t.dy_zero_frac, mean(3, False), rel_tol=1e-12)
    assert math.isclose(t.dx_skip_frac, mean(4, True), rel_tol=1e-12)


def test_the_table_renders_the_model(sparsity_json, mixed_trace, capsys):
    code, stdout, err = run_cli(capsys, "sparsity", str(mixed_trace))
    assert code == 0, err
    assert "Sparsity per layer" in stdout and "tests.models:mixed" in stdout
    for layer in sparsity_json["sparsity"]["layers"]:
        assert layer["name"] in stdout
