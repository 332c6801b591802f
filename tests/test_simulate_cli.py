"""`agos simulate` end to end on real traces: the JSON every design reports, the properties its
figures must have, statistical densities and user designs, the lookahead sensitivity, errors."""

from __future__ import annotations

import json

import pytest

from agos.arch.load import all_designs
from agos.cli import main

SPANS = ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")
REQUIRED = (
    "organisation",
    "twin",
    "area_mm2",
    "speedup_over_twin",
    "mac_bound_speedup",
    "speedup_over_best_dense_equal_area",
    "energy_j",
    "flags",
)


def _strict(text: str) -> dict:
    def refuse(name):
        raise AssertionError(f"JSON holds {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def resnet18_sim(resnet18_trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    args = ["simulate", str(resnet18_trace), "--json", str(out / "s.json"), "--plot", str(out / "s.png")]
    assert main(args) == 0
    return _strict((out / "s.json").read_text()), out


def test_json_gives_every_design_its_twin_area_energy_and_flags(resnet18_sim):
    data, out = resnet18_sim
    summary = data["simulation"]
    assert (out / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["requested"] == all_designs()
    for name in summary["requested"]:
        a = summary["designs"][name]
        assert all(k in a for k in REQUIRED), name
        assert set(a["speedup_over_twin"]) == set(SPANS) == set(a["mac_bound_speedup"])
        assert a["twin"] == f"dense@{a['organisation']}" and a["twin"] in summary["designs"]
        assert isinstance(a["flags"], list) and len(a["sha256"]) == 64
        assert a["layers"][0]["bwd_data"]["cycles"] == 0  # the first layer runs no BWD-D
        assert a["cycles"]["fwd"] == sum(layer["fwd"]["cycles"] for layer in a["layers"])
        assert a["cycles"]["iteration"] == sum(
            a["cycles"][p] for p in ("fwd", "bwd_data", "bwd_weight", "vector")
        )
        if not name.startswith("ideal"):
            best = a["best_dense_equal_area"]
            assert summary["designs"][best]["area_mm2"] <= a["area_mm2"] + 1e-9
            assert name in summary["equal_area"]
    roles = {a["role"] for a in summary["designs"].values()}
    assert roles == {"design", "equal-area"}  # every twin here is a requested dense design
    assert "resnet18" in data["label"] and "real masks" in data["label"]
    assert data["density"] == {"spec": "real", "kind": "real", "seed": 0, "label": "real masks", "notes": []}


def test_figures_have_the_properties_of_the_model(resnet18_sim):
    d = resnet18_sim[0]["simulation"]["designs"]
    for org in ("systolic", "rows"):
        ideal = d[f"ideal@{org}"]
        for preset in ("dense", "zero-gate", "input-skip", "output-skip", "agos"):
            a = d[f"{preset}@{org}"]
            for span in SPANS:  # nothing beats the bound of its own mapping
                assert ideal["speedup_over_twin"][span] >= a["speedup_over_twin"][span] - 1e-12, (
                    preset,
                    span,
                )
            assert ideal["mapping_bound_cycles"]["iteration"] <= a["cycles"]["iteration"]
        assert d[f"zero-gate@{org}"]["speedup_over_twin"]["iteration"] == 1.0  # gating saves energy only
        assert d[f"zero-gate@{org}"]["energy_j"] < d[f"dense@{org}"]["energy_j"]
        assert d[f"dense@{org}"]["speedup_over_twin"]["iteration"] == 1.0
        assert ideal["cycles"]["fwd"] == ideal["mapping_bound_cycles"]["fwd"]
    # the dense designs pay for their non-convolution work like every other design
    assert len({a["cycles"]["vector"] for a in d.values()}) == 1 and d["dense@rows"]["cycles"]["vector"] > 0


def test_statistical_density_and_a_user_design(resnet18_trace, tmp_path, capsys):
    arch = tmp_path / "wide.yaml"
    arch.write_text("name: wide\norganisation: systolic\nskipping: {fwd: {stream: true}}\n")
    out = tmp_path / "u.json"
    args = ["simulate", str(resnet18_trace), "--arch", f"agos@systolic,{arch}", "--density", "uniform:0.7"]
    assert main([*args, "--json", str(out), "--lookahead", "1,3,inf"]) == 0
    data = _strict(out.read_text())
    summary = data["simulation"]
    assert summary["requested"] == ["agos@systolic", "wide"]
    assert "uniform:0.7" in data["density"]["label"] and data["density"]["kind"] == "uniform"
    assert summary["designs"]["wide"]["source"] == str(arch)
    sens = summary["lookahead_sensitivity"]
    assert set(sens) == {"agos@systolic", "wide"} and list(sens["wide"]) == ["1", "3", "inf"]
    for row in sens.values():  # a wider window never slows a row down
        assert row["1"]["iteration"] <= row["3"]["iteration"] <= row["inf"]["iteration"] + 1e-12
        assert abs(row["1"]["fwd"] - 1.0) < 0.05  # a window of one entry skips (almost) nothing
    assert "Lookahead window sensitivity" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (("--arch", "tpu"), "no preset or design file"),
        (("--arch", "agos@gpu"), "no shipped organisation"),
        (("--density", "uniform:1.5"), "uniform"),
        (("--lookahead", "0"), "--lookahead"),
        (("--lookahead", "two"), "--lookahead"),
        (("--workers", "0"), "--workers"),
    ],
)
def test_bad_input_is_one_line(resnet18_trace, capsys, args, message):
    assert main(["simulate", str(resnet18_trace), *args]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_profile_that_leaves_activations_real_is_noted_by_every_command(mixed_trace, tmp_path, capsys):
    """A 2-row profile on a trace with more ReLUs leaves the others real: `density` said so, while
    `simulate` (and `sparsity --tiles`) accepted it without a word."""
    from agos.capture.trace import load_trace

    acts = len(load_trace(mixed_trace).manifest.activations)
    assert acts > 2
    profile = tmp_path / "two.csv"
    profile.write_text("index,zero_fraction\n1,0.7\n2,0.6\n")
    note = f"{acts - 2} activation(s) without a row keep their real masks"
    density = f"profile:{profile}"
    out = tmp_path / "s.json"
    assert (
        main(
            [
                "simulate",
                str(mixed_trace),
                "--arch",
                "agos@systolic",
                "--density",
                density,
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert note in capsys.readouterr().out
    assert note in json.loads(out.read_text())["density"]["notes"][0]
    assert main(["sparsity", str(mixed_trace), "--tiles", "--density", density]) == 0
    assert note in capsys.readouterr().out
    assert main(["density", str(mixed_trace), "--density", density]) == 0
    assert note in capsys.readouterr().out
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump({"traces": [str(mixed_trace)], "archs": ["agos@systolic"], "densities": [density]})
    )
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep"), "--workers", "0"]) == 0
    assert note in capsys.readouterr().err
    assert note in (tmp_path / "sweep" / "results.csv").read_text()


def test_csv_outputs_are_plain_csv_with_their_provenance_in_columns(mixed_trace, tmp_path, capsys):
    """`sparsity --csv` once began with a `# …` provenance line, which `pandas.read_csv` silently
    read as a one-column frame; `simulate` and `bounds` had no CSV at all."""
    pd = pytest.importorskip("pandas")
    files = {name: tmp_path / f"{name}.csv" for name in ("sparsity", "bounds", "simulate")}
    assert main(["sparsity", str(mixed_trace), "--csv", str(files["sparsity"])]) == 0
    assert main(["bounds", str(mixed_trace), "--csv", str(files["bounds"])]) == 0
    args = [
        "simulate",
        str(mixed_trace),
        "--arch",
        "agos@systolic,input-skip@rows",
        "--csv",
        str(files["simulate"]),
    ]
    assert main([*args, "--json", str(tmp_path / "s.json")]) == 0
    capsys.readouterr()
    frames = {name: pd.read_csv(path) for name, path in files.items()}
    layers = json.loads((tmp_path / "s.json").read_text())["simulation"]["designs"]["agos@systolic"]["layers"]
    for name, frame in frames.items():
        assert frame["model"].eq("tests.models:mixed").all() and frame["image_size"].eq(16).all(), name
        assert frame["density"].eq("real masks").all() and frame["seed"].eq(3).all(), name
    sparsity = frames["sparsity"]
    assert len(sparsity) == len(layers) and list(sparsity["name"]) == [layer["name"] for layer in layers]
    assert sparsity["dx_skip_frac"].isna().tolist() == (~sparsity["needs_bwd_data"]).tolist()  # no dX, no 0
    assert len(frames["bounds"]) == 3 * len(layers)
    sim = frames["simulate"]
    assert len(sim) == 2 * 3 * len(layers)  # design × layer × pass
    agos = sim[(sim["design"] == "agos@systolic") & (sim["pass"] == "bwd_weight")]
    assert agos["cycles"].tolist() == [layer["bwd_weight"]["cycles"] for layer in layers]
