"""`agos simulate` end to end on real traces: JSON structure, the ordering of designs, errors."""

from __future__ import annotations

import json

import pytest

from agos.cli import main

SPANS = ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")


@pytest.fixture(scope="module")
def resnet18_sim(resnet18_trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert (
        main(["simulate", str(resnet18_trace), "--json", str(out / "s.json"), "--plot", str(out / "s.png")])
        == 0
    )
    return json.loads((out / "s.json").read_text()), out


def test_json_structure(resnet18_sim):
    summary, out = resnet18_sim
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert list(summary["archs"]) == ["dense", "zero-gate", "input-skip", "output-skip", "agos", "ideal"]
    for name, a in summary["archs"].items():
        assert len(a["sha256"]) == 64, name
        for key in ("fwd_cycles", "bwd_data_cycles", "bwd_weight_cycles", "energy_pj"):
            assert a["totals"][key] >= 0, (name, key)
        assert a["layers"][0]["bwd_data"]["cycles"] == 0  # the first layer runs no BWD-D
        for layer in a["layers"]:
            for p in ("fwd", "bwd_data", "bwd_weight"):
                assert {"cycles", "energy_pj", "dram_bytes"} <= set(layer[p])
        assert a["totals"]["fwd_cycles"] == sum(layer["fwd"]["cycles"] for layer in a["layers"])
    assert "resnet18" in summary["label"] and "real masks" in summary["label"]


def test_designs_are_ordered_on_a_real_trace(resnet18_sim):
    summary, _ = resnet18_sim
    s = {name: a["speedup"] for name, a in summary["archs"].items()}
    for span in SPANS:
        assert s["ideal"][span] >= s["agos"][span] >= s["output-skip"][span] >= s["dense"][span] - 1e-12, span
        assert s["agos"][span] >= s["input-skip"][span] >= s["dense"][span] - 1e-12, span
        assert s["zero-gate"][span] == pytest.approx(1.0)
    # the bound holds layer by layer and pass by pass, on compute alone
    for agos, ideal in zip(
        summary["archs"]["agos"]["layers"], summary["archs"]["ideal"]["layers"], strict=True
    ):
        for p in ("fwd", "bwd_data", "bwd_weight"):
            assert agos[p]["compute_cycles"] >= ideal[p]["cycles"], (agos["name"], p)
    # zero-gating saves energy, never time
    e = {name: a["totals"]["energy_pj"] for name, a in summary["archs"].items()}
    assert e["zero-gate"] < e["dense"] and e["agos"] < e["dense"]


def test_statistical_density_and_a_user_arch(resnet18_trace, tmp_path, capsys):
    arch = tmp_path / "wide.yaml"
    arch.write_text("name: wide\npe_array: {rows: 16, cols: 64}\nskipping: {fwd: {stream: true}}\n")
    assert (
        main(
            [
                "simulate",
                str(resnet18_trace),
                "--arch",
                f"agos,{arch}",
                "--density",
                "uniform:0.7",
                "--json",
                str(tmp_path / "u.json"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "u.json").read_text())
    assert list(summary["archs"]) == ["dense", "agos", "wide"]  # dense is added as the baseline
    assert "uniform:0.7" in summary["density"]
    assert summary["archs"]["wide"]["source"] == str(arch)
    capsys.readouterr()


@pytest.mark.parametrize(
    "args,message",
    [(("--arch", "tpu"), "no preset or arch file"), (("--density", "uniform:1.5"), "uniform")],
)
def test_bad_input_is_one_line(resnet18_trace, capsys, args, message):
    assert main(["simulate", str(resnet18_trace), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_own_speedup_of_the_ideal_design_is_the_mac_bound(resnet18_sim, resnet18_trace, tmp_path):
    summary, _ = resnet18_sim
    assert main(["bounds", str(resnet18_trace), "--json", str(tmp_path / "b.json")]) == 0
    bound = json.loads((tmp_path / "b.json").read_text())["speedups"]["input+output"]
    own = summary["archs"]["ideal"]["sparsity_speedup"]
    for span in SPANS:
        assert own[span] == pytest.approx(bound[span], rel=0.01), span  # ⌈·⌉ per layer aside
    assert summary["archs"]["dense"]["sparsity_speedup"]["iteration"] == 1.0
    assert summary["archs"]["agos"]["sparsity_speedup"]["iteration"] > 1.0
