"""The density_mapping section of `Analysis`: `agos density --json` is a valid Analysis dump, unknown
fields are refused, and the real and realised fractions agree with a recount from the masks."""

from __future__ import annotations

import copy
import json

import pydantic
import pytest

from agos.analysis.model import SECTIONS, Analysis, dump
from agos.capture.trace import load_trace
from agos.cli import main
from agos.density.real import iter_real_masks
from agos.density.select import resolve_density

SEED = 5


@pytest.fixture(scope="module")
def profile_csv(tmp_path_factory):
    f = tmp_path_factory.mktemp("profile") / "p.csv"
    f.write_text("index,zero_fraction\n1,0.3\n2,0.8\n4,0.5\n")
    return f


@pytest.fixture(scope="module", params=["uniform:0.6", "profile"])
def density_json(request, mixed_trace, profile_csv, tmp_path_factory) -> tuple[str, dict]:
    spec = f"profile:{profile_csv}" if request.param == "profile" else request.param
    out = tmp_path_factory.mktemp("density") / "d.json"
    assert (
        main(["density", str(mixed_trace), "--density", spec, "--seed", str(SEED), "--json", str(out)]) == 0
    )
    return spec, json.loads(out.read_text())


def test_the_json_is_an_analysis_with_only_the_mapping_section(density_json, mixed_trace):
    spec, data = density_json
    analysis = Analysis.model_validate(data)
    assert analysis.trace == str(mixed_trace)
    assert analysis.density.spec == spec and analysis.density.seed == SEED
    assert analysis.density.label == resolve_density(load_trace(mixed_trace), spec, SEED).label
    assert analysis.density.label in analysis.label
    assert [s for s in SECTIONS if s in data] == ["density_mapping"]
    assert dump(analysis) == data
    section = analysis.density_mapping
    if spec.startswith("profile"):
        assert [r.row for r in section.rows] == [1, 2, 4] and section.profile.source == str(spec[8:])
        assert [a.row for a in section.activations[:4]] == ["1", "2", None, "4"]
    else:
        assert section.rows == [] and section.profile is None


@pytest.mark.parametrize(
    "where",
    [
        lambda d: d["density_mapping"],
        lambda d: d["density_mapping"]["layers"][1]["dy"],
        lambda d: d["density_mapping"]["activations"][0],
        lambda d: d["density_mapping"]["totals"],
    ],
    ids=["section", "layer-part", "activation", "totals"],
)
def test_an_unknown_field_is_refused(density_json, where):
    doctored = copy.deepcopy(density_json[1])
    where(doctored)["surprise"] = 1
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        Analysis.model_validate(doctored)


def _zero(mask) -> float:
    return 1 - int(mask.sum()) / mask.numel()


def test_fractions_agree_with_a_recount_from_the_masks(density_json, mixed_trace):
    spec, data = density_json
    section = Analysis.model_validate(data).density_mapping
    trace = load_trace(mixed_trace)
    drawn = resolve_density(trace, spec, SEED).masks(trace)
    for layer, real, stat in zip(section.layers, iter_real_masks(trace), drawn, strict=True):
        assert layer.name == real.name == stat.name and layer.macs == real.geometry.macs
        assert layer.x.real == _zero(real.x_nonzero)
        assert layer.dy.real == _zero(real.dy_nonzero)
        assert layer.x.realised == _zero(stat.x_nonzero)
        assert layer.dy.realised == _zero(stat.dy_nonzero)
        if layer.needs_bwd_data:
            assert layer.dx_skip.realised == _zero(stat.dx_needed)
        else:
            assert layer.dx_skip.realised == 0.0 and layer.dx_skip.target is None
        if layer.x.target is None:  # kept real
            assert layer.x.realised == layer.x.real
    macs = sum(layer.macs for layer in section.layers)
    for part in ("x", "dy"):
        for key in ("real", "realised"):
            mean = sum(getattr(getattr(s, part), key) * s.macs for s in section.layers) / macs
            assert getattr(section.totals, f"{part}_{key}") == pytest.approx(mean, rel=1e-12)
    bwd = [s for s in section.layers if s.needs_bwd_data]
    mean = sum(s.dx_skip.realised * s.macs for s in bwd) / sum(s.macs for s in bwd)
    assert section.totals.dx_skip_realised == pytest.approx(mean, rel=1e-12)


def test_the_tables_render_from_the_model_alone(density_json, capsys):
    from agos.report.density import print_tables

    analysis = Analysis.model_validate(density_json[1])
    print_tables(analysis)
    out = capsys.readouterr().out
    assert "total (MAC-weighted)" in out and "Zero fractions per layer" in out


def test_real_masks_are_refused_in_one_line(mixed_trace, capsys):
    assert main(["density", str(mixed_trace), "--density", "real"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "shows statistical sources" in lines[0]
