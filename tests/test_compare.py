"""`agos compare`: a thing compared with itself changes nothing; two real traces (two seeds of one
small model), two analyses (two densities) and two reproduce runs give exactly the differences a
direct computation from each side gives; layers of different models are matched by name with the
unmatched listed; what cannot be compared is one line and a non-zero exit."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import BaseModel

from agos import api
from agos.analysis import model as analysis_model
from agos.compare.model import Change, Comparison
from agos.errors import AgosError
from agos.record import read_record
from agos.schemas import registry
from tests.cli_helpers import one_error_line, run_cli

DESIGNS = "agos@systolic"


def _trace(tmp_path_factory, model: str, seed: int):
    from agos.inputs.options import RunOptions

    out = tmp_path_factory.mktemp("traces") / f"{model.split(':')[-1]}-{seed}"
    api.trace(RunOptions(model=model, batch_size=4, image_size=16, seed=seed, device="cpu"), out)
    return out


@pytest.fixture(scope="module")
def seed5_trace(tmp_path_factory):
    return _trace(tmp_path_factory, "tests.models:mixed", 5)


@pytest.fixture(scope="module")
def simulated(mixed_trace, tmp_path_factory):
    """Two analyses of one trace: statistical masks of two densities, simulated (files, as the CLI
    writes them)."""
    folder = tmp_path_factory.mktemp("analyses")
    paths = []
    for density in ("uniform:0.3:structure=channels", "uniform:0.7:structure=channels"):
        analysis = api.simulate(mixed_trace, DESIGNS, density=density, seed=1, workers=1)
        path = folder / f"{density.split(':')[1]}.json"
        analysis_model.write(analysis, path)
        paths.append(path)
    return paths


def _changes(record) -> list[Change]:
    """Every Change inside a record, wherever it sits."""
    found = []

    def walk(value) -> None:
        if isinstance(value, Change):
            found.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))

    walk(record)
    return found


def _assert_unchanged(c: Comparison) -> None:
    changes = _changes(c)
    assert changes
    for ch in changes:
        assert ch.a == ch.b
        assert ch.delta in (0, None) and (ch.delta is None) == (ch.a is None)
        assert ch.ratio in (1, None)
    for e in c.entries:
        assert not (e.layers_only_a or e.layers_only_b or e.designs_only_a or e.designs_only_b)
    assert not (c.entries_only_a or c.entries_only_b)


def test_a_trace_compared_with_itself_changes_nothing(mixed_trace):
    c = api.compare(mixed_trace, mixed_trace)
    assert c.kind == "trace" and len(c.entries[0].layers) == 10
    _assert_unchanged(c)


def test_an_analysis_compared_with_itself_changes_nothing(simulated):
    c = api.compare(simulated[0], simulated[0])
    assert c.entries[0].designs and c.entries[0].designs[0].layers
    _assert_unchanged(c)


def test_two_seeds_differ_by_what_each_trace_records(mixed_trace, seed5_trace):
    """Against the traces' own mask counts (not the sparsity section the comparison reads)."""
    from agos.capture.trace import load_trace

    a, b = load_trace(mixed_trace), load_trace(seed5_trace)
    c = api.compare(mixed_trace, seed5_trace)
    e = c.entries[0]
    assert [layer.name for layer in e.layers] == [layer.name for layer in a.layers]
    moved = 0
    for row, la, lb in zip(e.layers, a.layers, b.layers, strict=True):
        xa = 1 - la.x_nonzero.count / la.geometry.x_numel
        xb = 1 - lb.x_nonzero.count / lb.geometry.x_numel
        assert row.x_zero_frac.a == pytest.approx(xa) and row.x_zero_frac.delta == pytest.approx(xb - xa)
        dya = 1 - la.dy_nonzero.count / la.geometry.y_numel
        dyb = 1 - lb.dy_nonzero.count / lb.geometry.y_numel
        assert row.dy_zero_frac.delta == pytest.approx(dyb - dya)
        if la.needs_bwd_data:
            # a layer whose dX is needed everywhere (no mask recorded) skips none of it
            dxa = 1 - la.dx_needed.count / la.geometry.x_numel if la.dx_needed is not None else 0.0
            dxb = 1 - lb.dx_needed.count / lb.geometry.x_numel if lb.dx_needed is not None else 0.0
            assert row.dx_skip_frac.delta == pytest.approx(dxb - dxa)
        else:
            assert row.dx_skip_frac.a is None and row.dx_skip_frac.delta is None
        moved += row.x_zero_frac.delta != 0
    assert moved  # two seeds: the masks differ
    sa = api.analyse(mixed_trace, sections=["sparsity"]).sparsity.totals
    sb = api.analyse(seed5_trace, sections=["sparsity"]).sparsity.totals
    for key in ("x_zero_frac", "dy_zero_frac", "dx_skip_frac"):
        assert getattr(e.totals, key).delta == pytest.approx(getattr(sb, key) - getattr(sa, key))


def test_two_densities_differ_by_what_each_analysis_holds(simulated):
    a, b = (analysis_model.load(p) for p in simulated)
    c = api.compare(*simulated)
    e = c.entries[0]
    assert e.totals.source == "realised" and not e.layers
    for key in ("x_zero_frac", "dy_zero_frac", "dx_skip_frac"):
        assert getattr(e.totals, key).delta == pytest.approx(
            getattr(b.realised, key) - getattr(a.realised, key)
        )
    assert [d.name for d in e.designs] == a.simulation.requested
    for d in e.designs:
        da, db = a.simulation.designs[d.name], b.simulation.designs[d.name]
        for span in ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration"):
            ca, cb = getattr(da.cycles, span), getattr(db.cycles, span)
            got = getattr(d.cycles, span)
            assert (got.a, got.b, got.delta) == (ca, cb, cb - ca)
            sa, sb = getattr(da.speedup_over_twin, span), getattr(db.speedup_over_twin, span)
            assert getattr(d.speedup_over_twin, span).ratio == pytest.approx(sb / sa)
        for row, la, lb in zip(d.layers, da.layers, db.layers, strict=True):
            assert row.name == la.name
            assert row.bwd_data.delta == lb.bwd_data.cycles - la.bwd_data.cycles
    assert e.designs[0].cycles.iteration.delta != 0  # density 0.3 and 0.7: other work


def test_layers_of_different_models_are_matched_by_name_and_none_dropped(mixed_trace, tmp_path_factory):
    other = _trace(tmp_path_factory, "tests.models:data_dependent", 0)
    c = api.compare(mixed_trace, other)
    e = c.entries[0]
    names_a = [layer.name for layer in api.load_trace(mixed_trace).layers]
    names_b = [layer.name for layer in api.load_trace(other).layers]
    matched = [layer.name for layer in e.layers]
    assert matched == [n for n in names_a if n in names_b] and matched
    assert sorted(matched + e.layers_only_a) == sorted(names_a)
    assert sorted(matched + e.layers_only_b) == sorted(names_b)
    assert e.layers_only_a  # mixed has layers data_dependent lacks


def test_the_cli_writes_a_valid_comparison_and_a_plot(simulated, tmp_path, capsys):
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    code, printed, err = run_cli(
        capsys, "compare", *map(str, simulated), "--json", str(out), "--plot", str(png)
    )
    assert code == 0, err
    assert "agos@systolic" in printed and "uniform:0.3" in printed and "uniform:0.7" in printed
    cls, schema = registry()["comparison"]
    jsonschema.validate(json.loads(out.read_text()), json.loads(schema.read_text()))
    assert read_record(cls, out) == api.compare(*simulated)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_long_design_name_is_printed_whole_in_an_80_column_terminal(simulated):
    from rich.console import Console

    from agos.compare import render

    c = api.compare(*simulated)
    c.entries[0].designs[0].name = "agos@systolic[33x32 PEs, 1 MiB buffer, a long name]"  # 51 characters
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    render.print_comparison(c, console)
    assert c.entries[0].designs[0].name in console.export_text()


def test_what_cannot_be_compared_is_one_line(mixed_trace, simulated, tmp_path, capsys):
    cases = {
        "cannot compare an analysis": (str(simulated[0]), str(mixed_trace)),
        "does not exist": (str(tmp_path / "nothing"), str(mixed_trace)),
        "is neither a trace": (str(tmp_path), str(mixed_trace)),
    }
    other = tmp_path / "other.json"
    other.write_text('{"format": "agos-search", "version": 1}')
    cases["is neither an agos analysis"] = (str(other), str(simulated[0]))
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "agos-analysis", ')
    cases["not valid JSON"] = (str(broken), str(simulated[0]))
    tiles = tmp_path / "tiles.json"
    analysis_model.write(api.analyse(mixed_trace, sections=["tiles"]), tiles)
    cases["no figure in common"] = (str(tiles), str(tiles))
    for expected, (a, b) in cases.items():
        code, _, err = run_cli(capsys, "compare", a, b)
        assert code != 0 and expected in one_error_line(err), (expected, err)
    with pytest.raises(AgosError, match="not int"):
        api.compare(3, mixed_trace)


@pytest.mark.slow
def test_two_reproduce_runs_differ_by_their_results(tmp_path, capsys):
    from agos.reproduce.records import Results

    runs = []
    for seed in (0, 1):
        out = tmp_path / f"run{seed}"
        code, _, err = run_cli(
            capsys, "reproduce", "--models", "tests.models:mixed", "--batch-size", "2", "--image-size", "16",
            "--check-images", "0", "--arch", DESIGNS, "--trained", "none", "--seed", str(seed),
            "--out", str(out),
        )  # fmt: skip
        assert code == 0, err
        runs.append(out)
    _assert_unchanged(api.compare(runs[0], runs[0] / "results.json"))
    a, b = (read_record(Results, r / "results.json") for r in runs)
    c = api.compare(*runs)
    e = c.entries[0]
    assert c.kind == "results" and e.name == "tests.models:mixed"
    ma, mb = a.models[e.name], b.models[e.name]
    assert e.totals.x_zero_frac.delta == pytest.approx(mb.sparsity.x_zero_frac - ma.sparsity.x_zero_frac)
    for d in e.designs:
        assert (
            d.cycles.iteration.delta
            == mb.designs[d.name].cycles.iteration - ma.designs[d.name].cycles.iteration
        )
