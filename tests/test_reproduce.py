"""A tiny `agos reproduce`: two small models, small images, the whole pipeline and the report."""

from __future__ import annotations

import json

import jsonschema
import pytest

from agos.arch.load import ORGANISATIONS, PRESETS
from agos.cli import main
from agos.record import read_record
from agos.reproduce.records import Results
from agos.schemas import registry
from agos.validate.browser import chromium_available


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    args = [
        "reproduce",
        "--models",
        "resnet34,squeezenet1_1",
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--check-images",
        "2",
        "--trained",
        "none",
        "--workers",  # the analyses in two worker processes (test_the_figures_do_not_depend_on_the_workers)
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    return out, args


@pytest.mark.slow  # the whole pipeline on two models (27 s); CI runs it
@pytest.mark.ci
def test_results_json(tiny_report):
    out, _ = tiny_report
    results = json.loads((out / "results.json").read_text())
    jsonschema.validate(results, json.loads(registry()["results"][1].read_text()))
    assert read_record(Results, out / "results.json").models["resnet34"].verify.lossless
    assert set(results["models"]) == {"resnet34", "squeezenet1_1"}
    expected = {f"{p}@{o}" for p in PRESETS for o in ORGANISATIONS}
    for name, m in results["models"].items():
        assert set(m["designs"]) == expected
        for design, d in m["designs"].items():
            s = d["speedup_over_twin"]
            assert all(
                isinstance(s[k], float) for k in ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")
            )
            assert d["twin"] == f"dense@{d['organisation']}"
            assert d["area_mm2"] > 0 and d["energy_j"] > 0
            if d["preset"] in ("dense", "zero-gate"):
                assert s["iteration"] == 1.0, design
            if d["preset"] != "ideal":
                assert isinstance(d["speedup_over_best_dense_equal_area"], float), design
        # the GPU row of the design's own precision (bf16), and the dense twin's ratio beside
        for g in m["gpu"].values():
            assert g["gpu_precision"] == "bf16-autocast" and g["twin_energy_ratio"] is not None
        prov = m["provenance"]
        assert prov["model"] == name and prov["batch_size"] == 2 and prov["image_size"] == 32
        assert m["verify"]["soundness"]["bit_identical"] and m["verify"]["engine"]["step"]["problem"] is None
        assert len(m["designs"]["agos@systolic"]["sha256"]) == 64
    # resnet34 has a published profile: early and converged statistical runs beside the real one
    densities = results["models"]["resnet34"]["densities"]
    assert len(densities) == 3 and any(d["density"] == "profile:sparsetrain:last" for d in densities.values())
    assert len(results["models"]["squeezenet1_1"]["densities"]) == 1
    ours = results["seed_comparison"]["ours"]
    assert set(ours) == set(ORGANISATIONS)
    assert ours["systolic"]["agos_backprop_real"]["low"] > 0
    has_gpu = any(m["gpu"] for m in results["models"].values())
    assert (ours["systolic"]["agos_energy_vs_gpu"] is not None) == has_gpu


@pytest.mark.slow  # the whole pipeline on two models (27 s); CI runs it
@pytest.mark.ci
def test_report_page(tiny_report):
    out, _ = tiny_report
    page = (out / "index.html").read_text()
    assert "Sarma et al. 2021" in page and "resnet34" in page and "agos-selfcheck" in page
    # the first screen: one figure per organisation, before every table; no markup shown as text
    assert page.index('id="at-a-glance"') < page.index("<table") and "&lt;span" not in page
    # the validation section cites the RTL row from the shipped record (docs/rtl.md)
    assert "the skipping PE row in RTL" in page and "row cycles / model cycles" in page
    assert sorted(p.name for p in (out / "plots").glob("summary-*.png")) == [
        "summary-rows.png",
        "summary-systolic.png",
    ]
    assert len(list((out / "plots").glob("*.png"))) == 8
    if not chromium_available():
        pytest.skip("chromium is not installed: the page cannot be opened in a browser here")
    from agos.validate.browser import check_page

    check = check_page(out / "index.html")
    assert check.ok, check.problems
    assert check.images_total == check.images_loaded == 8
    assert check.tables_total >= 6 and check.tables_with_rows == check.tables_total


@pytest.mark.slow  # the whole pipeline on two models (27 s); CI runs it
@pytest.mark.ci
def test_a_rerun_reuses_finished_stages(tiny_report, capsys):
    out, args = tiny_report
    stages = sorted(p.name for p in (out / "cache").iterdir())
    (out / "cache" / ".analysis-halfbuilt.x").mkdir()  # what an interrupted run leaves behind
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("(cached)") == 6 and "…" not in err.replace("(cached)", "")
    assert sorted(p.name for p in (out / "cache").iterdir()) == stages


def test_bad_reproduce_options(capsys, tmp_path):
    assert main(["reproduce", "--models", "resnet5", "--out", str(tmp_path / "r")]) != 0
    assert "resnet50" in capsys.readouterr().err
    assert main(["reproduce", "--models", "resnet18,vgg16", "--weights", "w.pt", "--out", str(tmp_path)]) != 0
    assert "--weights PATH needs a single model" in capsys.readouterr().err


@pytest.mark.slow  # the whole pipeline on two models (27 s); CI runs it
@pytest.mark.ci
def test_tile_section_matches_the_sparsity_command(tiny_report, tmp_path, capsys):
    """The report's whole-tile figures are `agos sparsity --tiles` of the same trace and masks."""
    out, _ = tiny_report
    results = json.loads((out / "results.json").read_text())
    r34 = results["models"]["resnet34"]
    with_tiles = {d["density"]: d["tiles"] for d in r34["densities"].values() if d.get("tiles")}
    assert set(with_tiles) == {"real", "profile:sparsetrain:last"}  # real and converged, not early
    trace = next((out / "cache").glob("trace-*/trace"))
    model = json.loads((trace / "manifest.json").read_text())["provenance"]["model"]
    entry = results["models"][model]["densities"]
    real = next(d["tiles"] for d in entry.values() if d["density"] == "real")
    assert main(["sparsity", str(trace), "--tiles", "--json", str(tmp_path / "t.json")]) == 0
    direct = json.loads((tmp_path / "t.json").read_text())["tiles"]
    assert real["element_skip_fraction"] == direct["element_skip_fraction"]
    for shape, t in direct["totals"].items():
        assert real["totals"][shape]["empty_tiles"] == t["empty_tiles"]
        assert real["totals"][shape]["tiles"] == t["tiles"]
    page = (out / "index.html").read_text()
    section = page.split('id="tiles"')[1].split("<h2")[0]
    assert section.count("<tr><td") == 3  # resnet34 real and converged, squeezenet1_1 real
    assert "independence prediction" in section


def _figures(stage_file):
    """A stage's record without what differs between two runs of it (where it ran, how long)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "trace")}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip(json.loads(stage_file.read_text()))


@pytest.mark.slow  # a second tiny run, every stage here, one after the other (27 s); CI runs it
@pytest.mark.ci
def test_the_figures_do_not_depend_on_the_workers(tiny_report, tmp_path):
    out, args = tiny_report  # its analyses ran in two worker processes
    serial = tmp_path / "serial"
    assert main([*args[:-4], "--workers", "1", "--out", str(serial)]) == 0
    stages = sorted(p.relative_to(out) for p in (out / "cache").glob("*/*.json"))
    assert stages == sorted(p.relative_to(serial) for p in (serial / "cache").glob("*/*.json"))
    for stage in stages:
        assert _figures(out / stage) == _figures(serial / stage), stage
