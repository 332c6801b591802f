"""`agos search`: the fronts are the non-dominated points (brute force), the budgets pick the
fastest design of each family that fits (brute force), every point is a design file that
`agos simulate` re-simulates to the same figures, and a bad space is one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agos.analysis import model as analysis_model
from agos.cli import main
from agos.errors import AgosError
from agos.search.front import SearchPoint, SearchResult, budgets, pareto
from agos.search.space import SearchSpace, load_space

TINY = {
    "organisations": ["systolic", "rows"],
    "lookahead": [3],
    "broadcast_width": [1],
    "realizations": {
        "outputs": ["static", "compacted"],
        "lanes": ["modulo", "full"],
        "lane_ports": [None],
        "compaction_domain": [64],
    },
    "scale": {"arrays": [[8, 8], [16, 16]], "buffer_mib": [1], "store_entries": [256]},
    "top": 1,
}


@pytest.fixture(scope="module")
def searched(mixed_trace, tmp_path_factory) -> Path:
    import yaml

    out = tmp_path_factory.mktemp("search")
    space = out / "space.yaml"
    space.write_text(yaml.safe_dump(TINY))
    args = ["search", str(mixed_trace), "--out", str(out / "run"), "--space", str(space), "--workers", "0"]
    assert main(args) == 0
    return out / "run"


def _points(n: int, seed: int) -> list[SearchPoint]:
    r = random.Random(seed)
    return [
        SearchPoint(
            design=f"d{i}",
            family=r.choice(["with", "without"]),
            file=f"d{i}.yaml",
            area_mm2=r.choice([10.0, 11.0, 12.5, 13.0, 20.0]),
            backprop_ms=r.uniform(0.5, 2.0),
            iteration_ms=3.0,
            energy_mj=r.uniform(1, 5),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_the_front_is_exactly_the_non_dominated_points(seed):
    points = _points(40, seed)
    front = {p.design for p in pareto(points, lambda p: p.backprop_ms)}
    dominated = {
        p.design
        for p in points
        for q in points
        if q is not p
        and q.area_mm2 <= p.area_mm2
        and q.backprop_ms <= p.backprop_ms
        and (q.area_mm2, q.backprop_ms) != (p.area_mm2, p.backprop_ms)
    }
    assert front == {p.design for p in points} - dominated - _ties(points, front)


def _ties(points, front) -> set[str]:
    """Points equal to a front point in both figures (the front keeps one of them)."""
    kept = {(p.area_mm2, p.backprop_ms) for p in points if p.design in front}
    return {p.design for p in points if (p.area_mm2, p.backprop_ms) in kept and p.design not in front}


@pytest.mark.parametrize("seed", range(5))
def test_each_budget_takes_the_fastest_design_of_each_family_that_fits(seed):
    points = _points(30, seed)
    for b in budgets(points, 10.0):
        for family, name in (("with", b.best_with), ("without", b.best_without)):
            fits = [p for p in points if p.family == family and p.area_mm2 <= b.area_mm2 * (1 + 1e-9)]
            if not fits:
                assert name is None
                continue
            assert next(p for p in points if p.design == name).backprop_ms == min(p.backprop_ms for p in fits)


def test_search_writes_fronts_for_every_organisation(searched):
    result = SearchResult.model_validate_json((searched / "search.json").read_text())
    assert {f.organisation for f in result.fronts} == {"systolic", "rows"}
    for front in result.fronts:
        families = {p.family for p in front.points}
        assert families == {"with", "without"}
        assert front.time_front["with"] and front.time_front["without"]
        assert {w.design for w in front.winners} == {n for fam in front.time_front.values() for n in fam}
        assert "mixed" in front.label and "real masks" in front.label
        for p in front.points:
            assert Path(p.file).is_file()
    assert (searched / "front-1-systolic.png").stat().st_size > 10_000


def test_a_winner_re_simulated_by_agos_simulate_gives_the_same_figures(searched, mixed_trace, tmp_path):
    result = SearchResult.model_validate_json((searched / "search.json").read_text())
    front = result.fronts[0]
    name = front.time_front["with"][-1]
    point = next(p for p in front.points if p.design == name)
    winner = next(w for w in front.winners if w.design == name)
    out = tmp_path / "sim.json"
    assert main(["simulate", str(mixed_trace), "--arch", point.file, "--json", str(out)]) == 0
    sim = analysis_model.load(out).simulation.designs[name]
    clock = 1.0  # GHz: the shipped organisations
    assert sim.cycles.backprop / (clock * 1e6) == pytest.approx(point.backprop_ms, rel=1e-12)
    assert sim.area_mm2 == pytest.approx(point.area_mm2, rel=1e-12)
    assert sim.speedup_over_twin.backprop == pytest.approx(winner.speedup_backprop_over_twin, rel=1e-12)
    assert sim.speedup_over_best_dense_equal_area == pytest.approx(winner.speedup_over_best_dense_equal_area)


def test_the_shipped_space_is_the_default_and_a_bad_one_is_one_line(tmp_path):
    assert load_space(None) == SearchSpace()
    bad = tmp_path / "s.yaml"
    bad.write_text(json.dumps({**TINY, "lanes": ["modulo"]}))
    with pytest.raises(AgosError, match="lanes"):
        load_space(bad)
    bad.write_text(json.dumps({**TINY, "realizations": {"lanes": ["sideways"]}}))
    with pytest.raises(AgosError) as err:
        load_space(bad)
    assert "\n" not in str(err.value)


def test_search_json_is_a_typed_record_with_its_shipped_schema(searched, tmp_path):
    import jsonschema

    from agos.record import read_record
    from agos.schemas import registry

    data = json.loads((searched / "search.json").read_text())
    jsonschema.validate(data, json.loads(registry()["search"][1].read_text()))
    assert read_record(SearchResult, searched / "search.json").fronts
    bad = tmp_path / "search.json"
    bad.write_text(json.dumps({**data, "version": 2}))
    with pytest.raises(AgosError, match="version 2; this agos reads version 1"):
        read_record(SearchResult, bad)


def test_phase_writes_a_typed_record_with_its_shipped_schema(mixed_trace, tmp_path, capsys):
    """`agos phase`: every realization at every structure and zero fraction, phase.json a record
    that validates against its shipped schema; a zero fraction of 1 is one line, before any work."""
    import jsonschema

    from agos.record import read_record
    from agos.schemas import registry
    from agos.search.phase import PhaseResult, realizations

    out = tmp_path / "phase"
    args = ["phase", str(mixed_trace), "--out", str(out), "--structures", "independent,channels"]
    assert main([*args, "--zeros", "0.5", "--organisation", "systolic"]) == 0
    data = json.loads((out / "phase.json").read_text())
    jsonschema.validate(data, json.loads(registry()["phase"][1].read_text()))
    result = read_record(PhaseResult, out / "phase.json")
    assert len(result.points) == len(realizations("systolic")) * 2
    assert {p.structure for p in result.points} == {"independent", "channels"}
    assert (out / "phase.png").stat().st_size > 10_000
    assert main([*args, "--zeros", "1", "--out", str(tmp_path / "other")]) == 2
    assert "--zeros" in capsys.readouterr().err and not (tmp_path / "other").exists()
