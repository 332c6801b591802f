"""The report's answer on output sparsity: a finished `agos search` and `agos phase` shown in
`agos reproduce`, and each design's per-layer output-skip decisions read from its own figures."""

from __future__ import annotations

import json

import pytest
import yaml

from agos.cli import main
from agos.record import read_record
from agos.reproduce.records import Results
from tests.test_search import TINY


@pytest.fixture(scope="module")
def answered(mixed_trace, tmp_path_factory):
    root = tmp_path_factory.mktemp("answer")
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(TINY))
    search_args = ["search", str(mixed_trace), "--out", str(root / "search"), "--space", str(space)]
    assert main([*search_args, "--workers", "0"]) == 0
    assert main(["phase", str(mixed_trace), "--out", str(root / "phase")]) == 0
    args = ["reproduce", "--out", str(root / "report"), "--models", "tests.models:mixed"]
    args += ["--batch-size", "2", "--image-size", "16", "--check-images", "2", "--trained", "none"]
    args += ["--arch", "dense,output-skip,agos", "--search", str(root / "search")]
    args += ["--phase", str(root / "phase")]
    assert main(args) == 0
    return root


@pytest.mark.slow  # a search, a phase diagram and a reproduce of a tiny model (about 30 s); CI runs it
@pytest.mark.ci
def test_the_report_shows_the_search_and_the_phase_diagram(answered):
    results = read_record(Results, answered / "report" / "results.json")
    section = results.output_sparsity
    search = json.loads((answered / "search" / "search.json").read_text())
    assert section.search.model_dump(mode="json") == search  # the search as it was written
    assert section.phase is not None and section.phase_plot and section.answer_plot
    page = (answered / "report" / "index.html").read_text()
    assert 'id="output-sparsity"' in page
    for front in section.search.fronts:  # every budget of the search is in the page's table
        for budget in front.budgets:
            for design in (budget.best_with, budget.best_without):
                assert design is None or design in page
    images = {p.name for p in (answered / "report" / "plots").iterdir()}
    assert "output-sparsity-answer.png" in images and "output-sparsity-phase.png" in images


@pytest.mark.slow
@pytest.mark.ci
def test_each_layers_output_skip_decision_is_the_simulations_own(answered):
    results = read_record(Results, answered / "report" / "results.json")
    model = results.models["tests.models:mixed"]
    real = json.loads((answered / "report" / model.files["real"] / "analysis.json").read_text())
    decided = {d.design for d in model.output_skip}
    assert decided == {f"{p}@{o}" for p in ("output-skip", "agos") for o in ("systolic", "rows")}
    for decisions in model.output_skip:
        layers = real["simulation"]["designs"][decisions.design]["layers"]
        bwd = {x["name"]: x["bwd_data"] for x in layers if x["bwd_data"]["dense_macs"]}
        assert [d.layer for d in decisions.layers] == list(bwd)
        for d in decisions.layers:
            switched = any(w.startswith("output skip") for w in bwd[d.layer]["bypassed"])
            assert d.output_skip is not switched and d.why == bwd[d.layer]["bypassed"]
            assert d.predicted == bwd[d.layer]["predicted"]
        assert decisions.on == sum(d.output_skip for d in decisions.layers)
        assert decisions.on + decisions.off == len(bwd)


def test_a_folder_without_a_search_is_one_line(tmp_path, capsys):
    args = ["reproduce", "--out", str(tmp_path / "r"), "--models", "tests.models:mixed", "--trained", "none"]
    assert main([*args, "--search", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no search.json there" in err[0]
    assert not (tmp_path / "r").exists()
