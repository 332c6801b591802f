"""`agos export` (issue 22, item 3): SCALE-Sim GEMMs that SCALE-Sim itself runs to agos's count,
Timeloop problems that compute exactly the pass they name with the masks' densities, and masks
that round-trip bit for bit. docs/export.md."""

from __future__ import annotations

import configparser
import csv
import json
import math
import os
import random
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from agos.capture.trace import load_trace
from agos.density.select import resolve_density
from agos.errors import AgosError
from agos.export import accelforge, npz, scalesim, timeloop
from agos.export.folder import PROVENANCE
from agos.validate.gemm import agos_gemm_cycles
from agos.validate.scalesim import run_export
from agos.workload.gemm import Gemm, layer_gemm
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES
from tests.cli_helpers import one_error_line, run_cli


def _export(capsys, trace: Path, to: str, out: Path, *args: str) -> str:
    code, _, err = run_cli(capsys, "export", str(trace), "--to", to, "--out", str(out), *args)
    assert code == 0, err
    return err


# -- SCALE-Sim ------------------------------------------------------------------------------------


def _agreement(folder: Path) -> list[tuple[str, int, int, int]]:
    """(row name, SCALE-Sim compute cycles, its stall cycles, agos's dense@systolic count of the
    row's GEMM with SCALE-Sim's counting) for every row of an exported topology."""
    reports = run_export(folder)
    with open(folder / scalesim.GEMMS, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r.layer for r in reports] == list(range(len(rows)))
    cache: dict[tuple[int, int, int], int] = {}
    out = []
    for row, rep in zip(rows, reports, strict=True):
        shape = (int(row["M"]), int(row["N"]), int(row["K"]))
        if shape not in cache:
            cache[shape] = agos_gemm_cycles(Gemm(row["layer"], row["pass"], *shape))
        out.append((row["topology_name"], rep.compute_cycles, rep.stall_cycles, cache[shape]))
    return out


def test_scalesim_runs_the_export_and_counts_agos_minus_one_per_gemm(capsys, tmp_path, mixed_trace):
    pytest.importorskip("scalesim")
    out = tmp_path / "ss"
    _export(capsys, mixed_trace, "scalesim", out)
    trace = load_trace(mixed_trace)
    # every pass of every layer, as the GEMM of the peer agreement's conventions
    expected = []
    for layer in trace.layers:
        for pass_ in PASSES:
            if pass_ == "bwd_data" and not layer.needs_bwd_data:
                continue
            gemm = layer_gemm(layer.geometry, pass_, layer.name, 32)
            expected += [(layer.name, pass_, gemm.m, gemm.n, gemm.k)] * gemm.copies
    with open(out / scalesim.GEMMS, newline="") as f:
        got = [(r["layer"], r["pass"], int(r["M"]), int(r["N"]), int(r["K"])) for r in csv.DictReader(f)]
    assert got == expected
    topology = (out / scalesim.TOPOLOGY).read_text().splitlines()
    assert topology[0] == "Layer, M, N, K,"
    cells = [[c.strip() for c in line.split(",")] for line in topology[1:]]
    assert [(int(m), int(n), int(k), tail) for _, m, n, k, tail in cells] == [(*e[2:], "") for e in expected]
    assert {r[1] for r in got} == set(PASSES)
    rows = _agreement(out)
    for name, cycles, _stalls, agos in rows:
        assert agos - cycles == 1, (name, cycles, agos)  # SCALE-Sim reports the last cycle's index
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["target"] == "scalesim" and prov["provenance"]["model"] == "tests.models:mixed"
    assert prov["scalesim"]["topology_rows"] == len(rows) and sorted(prov["files"]) == sorted(
        [scalesim.CONFIG, scalesim.GEMMS, scalesim.LAYOUT, scalesim.TOPOLOGY]
    )


def test_scalesim_config_is_the_designs_organisation(capsys, tmp_path, mixed_trace):
    out = tmp_path / "ss"
    err = _export(capsys, mixed_trace, "scalesim", out, "--arch", "agos@systolic")
    assert "skips work; SCALE-Sim runs the dense GEMMs" in err  # said, not silent
    cfg = configparser.ConfigParser()
    cfg.read(out / scalesim.CONFIG)
    a = cfg["architecture_presets"]
    assert (a["ArrayHeight"], a["ArrayWidth"], a["Dataflow"]) == ("32", "32", "os")
    # 2 MiB of bf16 values in three SRAMs of 1024-value units; 256 GB/s at 1 GHz = 128 values a cycle
    assert [int(a[k]) for k in ("ifmapsramszkB", "filtersramszkB", "ofmapsramszkB")] == [341] * 3
    assert cfg["run_presets"]["InterfaceBandwidth"] == "USER" and a["Bandwidth"] == "128"
    design = tmp_path / "small.yaml"
    design.write_text(
        yaml.safe_dump(
            {
                "name": "small",
                "preset": "dense",
                "organisation": {
                    "name": "systolic",
                    "pe_array": {"rows": 16, "cols": 6},
                    "memory": {"global_buffer_bytes": 393216, "dram_gbps": 100.0},
                },
            }
        )
    )
    out2 = tmp_path / "ss2"
    _export(capsys, mixed_trace, "scalesim", out2, "--arch", str(design))
    cfg.read(out2 / scalesim.CONFIG)
    a = cfg["architecture_presets"]
    assert (a["ArrayHeight"], a["ArrayWidth"], a["ifmapsramszkB"], a["Bandwidth"]) == ("16", "6", "64", "50")
    # the GEMMs pack groups for the design's 6 columns: b's 2 groups of 4 channels no longer fit side
    # by side (as on 32 columns), so they run one after another
    with open(out2 / scalesim.GEMMS, newline="") as f:
        rows = [(r["layer"], r["pass"], r["copy"], r["N"]) for r in csv.DictReader(f)]
    assert [r for r in rows if r[:2] == ("b", "fwd")] == [("b", "fwd", "1", "4"), ("b", "fwd", "2", "4")]
    assert ("c", "fwd", "1", "8") in rows  # depthwise: 8 groups of one channel across the columns
    code, _, err = run_cli(
        capsys,
        "export",
        str(mixed_trace),
        "--to",
        "scalesim",
        "--out",
        str(tmp_path / "r"),
        "--arch",
        "dense@rows",
    )
    assert code != 0 and "independent rows" in one_error_line(err)


def test_a_grouped_layer_is_one_topology_row_per_copy():
    g = LayerGeometry("conv", 1, 128, 4, 4, 128, 4, 4, 3, 3, padding=(1, 1), groups=2)  # 64 a group
    layer = SimpleNamespace(name="wide", geometry=g, needs_bwd_data=True)
    rows = scalesim.topology_rows([layer], cols=32)
    assert [r.name for r in rows] == [
        f"wide:{p}:copy{i}/2" for p in ("fwd", "bwd_data", "bwd_weight") for i in (1, 2)
    ]
    assert all(r.gemm.n == 64 and r.gemm.copies == 2 for r in rows)
    assert "wide:fwd:copy1/2, 16, 64, 576," in scalesim.topology_text(rows)


# -- Timeloop ---------------------------------------------------------------------------------------

GEOMETRIES = [  # (c, k, h, w, kernel, stride, padding, dilation, groups): (height, width) or both
    (3, 4, 9, 8, 3, 1, 1, 1, 1),
    (4, 6, 9, 10, 3, 2, 1, 1, 1),  # strided, odd sizes
    (4, 4, 8, 8, 1, 2, 0, 1, 1),  # 1×1 stride 2: a row the window never reads
    (4, 6, 11, 11, 7, 2, 3, 1, 1),  # conv1-like
    (6, 4, 9, 9, 3, 1, 2, 2, 2),  # dilated, grouped
    (4, 4, 7, 7, 3, 2, 1, 1, 4),  # depthwise, strided
    (3, 4, 10, 9, (3, 5), (2, 1), (1, 2), (1, 2), 1),  # every axis its own
]


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _layer(c, k, h, w, kernel, stride, padding, dilation, groups, n=2, seed=0):
    """A conv with zeros in X and dY (ReLU'd), its Y, dX, dW from autograd, and its masks."""
    kernel, stride, padding, dilation = (_pair(v) for v in (kernel, stride, padding, dilation))
    gen = torch.Generator().manual_seed(seed)
    conv = torch.nn.Conv2d(c, k, kernel, stride, padding, dilation, groups, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=torch.float64))
    x = F.relu(torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)).requires_grad_()
    y = conv(x)
    dy = F.relu(torch.randn(y.shape, generator=gen, dtype=torch.float64))
    y.backward(dy)
    g = LayerGeometry(
        "conv", n, c, h, w, k, y.shape[2], y.shape[3], *kernel,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    needed = torch.rand(x.shape, generator=gen) < 0.6
    masks = LayerMasks("l", g, True, x.detach() != 0, dy != 0, needed, False)
    record = SimpleNamespace(name="l", w_nonzero=int((conv.weight != 0).sum()), w_numel=conv.weight.numel())
    return g, masks, record, x.detach(), conv.weight.detach(), y.detach(), dy, x.grad, conv.weight.grad


def _window(t: torch.Tensor, top: int, left: int, eh: int, ew: int) -> torch.Tensor:
    """`t` [N, C, H, W] placed at (top, left) in a zero window eh × ew (cropped where it overhangs)."""
    return F.pad(t, (left, ew - left - t.shape[3], top, eh - top - t.shape[2]))


def _spread(t: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """(stride − 1) zeros between the entries of each spatial axis."""
    n, c, p, q = t.shape
    out = t.new_zeros(n, c, (p - 1) * sh + 1, (q - 1) * sw + 1)
    out[:, :, ::sh, ::sw] = t
    return out


def _run_problem(inst: dict, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Timeloop's convolution problem, loop by loop over the kernel: Outputs[n, g, m, q, p] =
    Σ_{c, r, s} Inputs[n, g, c, r·Wdilation + p·Wstride, s·Hdilation + q·Hstride] · Weights[g, c, m, r, s]."""
    out = inputs.new_zeros(inst["N"], inst.get("G", 1), inst["M"], inst["Q"], inst["P"])
    p = torch.arange(inst["P"]) * inst["Wstride"]
    q = torch.arange(inst["Q"]) * inst["Hstride"]
    for r in range(inst["R"]):
        for s in range(inst["S"]):
            window = inputs[:, :, :, r * inst["Wdilation"] + p][:, :, :, :, s * inst["Hdilation"] + q]
            out += torch.einsum("ngcpq,gcm->ngmqp", window, weights[:, :, :, r, s])
    return out


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[str(g) for g in GEOMETRIES])
def test_each_timeloop_problem_computes_its_pass_and_counts_its_tensors(geometry):
    """Built independently (padding, stride holes, transposition), the tensors each problem names
    give autograd's Y, dX and dW when Timeloop's loop nest runs on them, each mask entry sits where
    Timeloop reads it, and the densities written are the tensors' nonzero fractions."""
    g, masks, record, x, wt, y, dy, dx, dw = _layer(*geometry)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw_) = (g.r, g.s), g.stride, g.padding, g.dilation
    n, h, w, G, cg, kg = g.n, g.h, g.w, g.groups, g.c_per_group, g.k_per_group
    for pass_ in PASSES:
        inst = timeloop.instance(g, pass_)
        positions = {"fwd": n * g.p * g.q, "bwd_data": n * h * w, "bwd_weight": cg * kh * kw}[pass_]
        reduction = {"fwd": cg * kh * kw, "bwd_data": kg * kh * kw, "bwd_weight": n * g.p * g.q}[pass_]
        channels = cg if pass_ == "bwd_data" else kg
        # the im2col GEMM's MACs (padding taps and stride holes included), group by group
        assert (
            math.prod(inst[d] for d in ("N", "C", "M", "R", "S", "P", "Q"))
            == positions * channels * reduction
        )
        assert inst.get("G", 1) == G
        eh = (inst["S"] - 1) * inst["Hdilation"] + (inst["Q"] - 1) * inst["Hstride"] + 1
        ew = (inst["R"] - 1) * inst["Wdilation"] + (inst["P"] - 1) * inst["Wstride"] + 1
        if pass_ == "fwd":
            xw = _window(x, ph, pw, eh, ew).reshape(n, G, cg, eh, ew)
            inputs = xw.transpose(3, 4)  # Timeloop's Inputs: [N, G, C, width, height]
            weights = wt.reshape(G, kg, cg, kh, kw).permute(0, 2, 1, 4, 3)  # [G, C, M, R=w, S=h]
            want = y.reshape(n, G, kg, g.p, g.q)
        elif pass_ == "bwd_data":
            top, left = (kh - 1) * dh - ph, (kw - 1) * dw_ - pw
            dyw = _window(_spread(dy, sh, sw), top, left, eh, ew).reshape(n, G, kg, eh, ew)
            inputs = dyw.transpose(3, 4)
            flipped = wt.flip(2, 3).reshape(G, kg, cg, kh, kw)
            weights = flipped.permute(0, 1, 2, 4, 3)  # [G, C=k, M=c, R, S]
            want = dx.reshape(n, G, cg, h, w)
        else:
            xw = _window(x, ph, pw, eh, ew).reshape(n, G, cg, eh, ew)
            inputs = xw.permute(2, 1, 0, 4, 3)  # [N=c, G, C=n, width, height]
            weights = dy.reshape(n, G, kg, g.p, g.q).permute(1, 0, 2, 4, 3)  # [G, C=n, M=k, R=q, S=p]
            want = dw.reshape(G, kg, cg, kh, kw).permute(2, 0, 1, 3, 4)  # [N=c, G, M=k, Q=r, P=s]
        got = _run_problem(inst, inputs, weights)  # [N, G, M, Q, P]: Q the height axis, P the width
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
        tensors = timeloop.densities(record, masks, pass_)
        mask = masks.dy_nonzero if pass_ == "bwd_data" else masks.x_nonzero
        window = timeloop.input_window(mask, timeloop.input_axes(g, pass_))  # [N, C, height, width]
        placed = inputs.transpose(3, 4) if pass_ != "bwd_weight" else inputs.permute(2, 1, 0, 4, 3)
        assert torch.equal(window, placed.reshape(window.shape) != 0)  # each entry where Timeloop reads it
        nonzero = {"Inputs": int((inputs != 0).sum()), "Weights": int((weights != 0).sum())}
        assert tensors["Inputs"].size == inputs.numel() and tensors["Inputs"].nonzero == nonzero["Inputs"]
        assert tensors["Weights"].size == weights.numel() and tensors["Weights"].nonzero == nonzero["Weights"]
        outputs = {"fwd": None, "bwd_data": masks.dx_needed, "bwd_weight": None}[pass_]
        assert tensors["Outputs"].size == want.numel()
        assert tensors["Outputs"].nonzero == (want.numel() if outputs is None else int(outputs.sum()))


def test_the_density_written_gives_sparseloop_the_exact_count():
    rng = random.Random(0)
    cases = [(3, 10), (1, 3), (0, 7), (7, 7), (2**31 - 1, 2**33)]
    cases += [(rng.randrange(0, s + 1), s) for s in (rng.randrange(1, 10**9) for _ in range(2000))]
    for nonzero, size in cases:
        d = timeloop.sparseloop_density(nonzero, size)
        assert 0.0 <= d <= 1.0 and math.ceil(d * size) == nonzero, (nonzero, size, d)
    assert math.ceil(7 / 25 * 25) == 8  # why the plain quotient is not written
    naive = sum(math.ceil(a / s * s) != a for a, s in cases)
    assert naive > 50  # ~4 % of random counts would be off by one with it


def _problem_files(out: Path) -> list[Path]:
    return sorted((out / timeloop.TIMELOOP).glob("*.yaml"))


def test_timeloop_export_files_are_well_formed_problems(capsys, tmp_path, mixed_trace):
    out = tmp_path / "tl"
    err = _export(capsys, mixed_trace, "timeloop", out)
    assert "no needed-dX mask" in err and "run no BWD-D" in err
    trace = load_trace(mixed_trace)
    files = _problem_files(out)
    runs = sum(3 if layer.needs_bwd_data else 2 for layer in trace.layers)
    assert len(files) == runs
    index = json.loads((out / timeloop.INDEX).read_text())
    real = {m.name: m for m in resolve_density(trace).masks(trace)}
    assert sorted(p.name for p in (out / timeloop.ACCELFORGE).glob("*.yaml")) == [p.name for p in files]
    for path, entry in zip(files, index, strict=True):
        assert path.name == entry["file"] and entry["timeloop"] == f"timeloop/{path.name}"
        text = path.read_text()
        assert "&" not in text.split("problem:")[1]  # no YAML anchors
        doc = yaml.safe_load(text)
        assert timeloop.check_problem(doc) == [], path.name
        inst = doc["problem"]["instance"]
        for space, t in entry["tensors"].items():
            assert inst["densities"][space]["density"] == t["density"]
            assert math.ceil(t["density"] * t["size"]) == t["nonzero"]
        m = real[entry["layer"]]
        if entry["pass"] == "bwd_weight":
            assert entry["tensors"]["Weights"]["nonzero"] == m.dy_count  # dY as BWD-W's kernel
        if entry["pass"] == "bwd_data":
            assert entry["tensors"]["Outputs"]["nonzero"] == m.dx_count
    d = next(e for e in index if e["layer"] == "d" and e["pass"] == "fwd")  # 1×1, no padding
    assert d["tensors"]["Inputs"]["nonzero"] == real["d"].x_count


def test_the_problem_check_fails_on_malformed_files(capsys, tmp_path, mixed_trace):
    out = tmp_path / "tl"
    _export(capsys, mixed_trace, "timeloop", out)
    good = yaml.safe_load(_problem_files(out)[3].read_text())
    assert timeloop.check_problem(good) == []

    def broken(edit) -> list[str]:
        doc = json.loads(json.dumps(good))
        edit(doc["problem"])
        return timeloop.check_problem(doc)

    assert broken(lambda p: p["instance"].pop("Q"))  # a dimension without a bound
    assert broken(lambda p: p["instance"].update(Wstrid=2))  # a misspelt coefficient
    assert broken(lambda p: p["instance"].update(P=0))
    assert broken(lambda p: p["instance"]["densities"].pop("Outputs"))
    assert broken(lambda p: p["instance"]["densities"]["Inputs"].update(density=1.5))
    assert broken(lambda p: p["instance"]["densities"]["Inputs"].update(distribution="banded"))
    assert broken(lambda p: p["shape"]["data_spaces"][1]["projection"].append([["Z"]]))
    assert broken(lambda p: p["shape"]["data_spaces"][1]["projection"][3].append(["P", "Wstrid"]))
    assert broken(lambda p: p["shape"]["data_spaces"][2].pop("read_write"))
    assert broken(lambda p: p.update(instances={}))
    assert timeloop.check_problem({"problem": []}) and timeloop.check_problem([1])


# -- AccelForge -------------------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[str(g) for g in GEOMETRIES])
def test_each_accelforge_einsum_iterates_agos_valid_taps(geometry):
    """Brute force over the Einsum's iteration space, the projected input ranks kept inside
    rank_sizes (what AccelForge does): as many points as agos's dense MACs of the pass, per group."""
    g = _layer(*geometry)[0]
    for pass_ in PASSES:
        doc = accelforge.workload("l", g, pass_)
        (einsum,) = doc["workload"]["einsums"]
        assert einsum.get("n_instances", 1) == g.groups
        bounds = {}
        for line in einsum["iteration_space_shape"]:
            var, high = re.fullmatch(r"0 <= (\w+) < (\d+)", line).groups()
            bounds[var] = int(high)
        grid = np.meshgrid(*(np.arange(bounds[v]) for v in "pqrs"), indexing="ij")
        env = dict(zip("pqrs", grid, strict=True))
        access = next(a for a in einsum["tensor_accesses"] if "H" in a["projection"])
        at = {rank: eval(access["projection"][rank], {"__builtins__": {}}, env) for rank in ("H", "W")}
        sizes = einsum["rank_sizes"]
        inside = (at["H"] >= 0) & (at["H"] < sizes["H"]) & (at["W"] >= 0) & (at["W"] < sizes["W"])
        points = int(inside.sum()) * bounds["n"] * bounds["k"] * bounds["c"]
        assert points * g.groups == g.macs, pass_
        roles = {a["name"]: a.get("output", False) for a in einsum["tensor_accesses"]}
        want = {"fwd": ("X", "W", "Y"), "bwd_data": ("dY", "W", "dX"), "bwd_weight": ("X", "dY", "dW")}[pass_]
        assert roles == {want[0]: False, want[1]: False, want[2]: True}


def test_accelforge_parses_the_export(capsys, tmp_path, mixed_trace):
    """AccelForge's own parser (PyPI accelforge 1.0.467, Python ≥ 3.12: its own environment, named
    by AGOS_ACCELFORGE_PYTHON) reads every workload, and counts agos's MACs and tensor sizes."""
    python = os.environ.get("AGOS_ACCELFORGE_PYTHON")
    if not python:
        pytest.skip("AGOS_ACCELFORGE_PYTHON names no interpreter with accelforge (it needs Python ≥ 3.12)")
    out = tmp_path / "tl"
    _export(capsys, mixed_trace, "timeloop", out)
    script = Path(__file__).with_name("accelforge_parse.py")
    done = subprocess.run([python, str(script), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout)
    trace = load_trace(mixed_trace)
    index = json.loads((out / timeloop.INDEX).read_text())
    assert len(parsed) == len(index)
    for entry in index:
        g = trace.layer(entry["layer"]).geometry
        got = parsed[entry["file"]]
        assert got["operations"] == entry["agos_macs_per_group"] == g.macs // g.groups
        assert got["n_instances"] == g.groups
        per_group = {"X": g.x_numel, "dX": g.x_numel, "Y": g.y_numel, "dY": g.y_numel, "W": g.w_numel,
                     "dW": g.w_numel}  # fmt: skip
        assert got["tensors"] == {t: per_group[t] // g.groups for t in got["tensors"]}


# -- npz -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", ["real", "uniform:0.5"])
def test_npz_masks_round_trip_exactly(capsys, tmp_path, mixed_trace, density):
    out = tmp_path / "npz"
    seed = 0 if density == "real" else 4
    _export(capsys, mixed_trace, "npz", out, "--density", density, "--seed", str(seed))
    trace = load_trace(mixed_trace)
    source = resolve_density(trace, density, seed)
    layers = json.loads((out / npz.LAYERS).read_text())
    assert [entry["layer"] for entry in layers] == [layer.name for layer in trace.layers]
    for m, entry in zip(source.masks(trace), layers, strict=True):
        got = npz.load_masks(out, m.name)
        assert got.keys() == set(npz.MASK_NAMES)
        for name in npz.MASK_NAMES:
            want = getattr(m, name).numpy()
            assert got[name].dtype == np.bool_ and got[name].shape == want.shape
            assert np.array_equal(got[name], want), (m.name, name)
            assert entry["true_counts"][name] == int(want.sum())
    assert json.loads((out / PROVENANCE).read_text())["density"] == source.label
    # the reader works on the file too, and says which layers exist
    assert np.array_equal(
        npz.load_masks(out / npz.MASKS, "fc")["x_nonzero"], npz.load_masks(out, "fc")["x_nonzero"]
    )
    with pytest.raises(AgosError, match="no layer 'nope'"):
        npz.load_masks(out, "nope")


# -- provenance.json and the API -------------------------------------------------------------------


@pytest.mark.parametrize("to", ["scalesim", "timeloop", "npz"])
def test_provenance_is_a_typed_record_and_the_api_writes_the_same(capsys, tmp_path, mixed_trace, to):
    """provenance.json is an `agos schema export` record (read back strictly, valid against the
    shipped schema); `agos.api.export` writes the same files and reports the same notes."""
    from agos import api
    from agos.export.folder import ExportRecord
    from agos.record import read_record
    from agos.schemas import registry

    cli_out, api_out = tmp_path / "cli", tmp_path / "api"
    err = _export(capsys, mixed_trace, to, cli_out)
    record = read_record(ExportRecord, cli_out / PROVENANCE)
    assert record.target == to and record.provenance == load_trace(mixed_trace).provenance
    written = [p.relative_to(cli_out) for p in cli_out.rglob("*") if p.is_file()]
    assert record.files == sorted(str(p) for p in written if p.name[0] != "." and p.name != PROVENANCE)
    schema = json.loads(registry()["export"][1].read_text())
    jsonschema.validate(json.loads((cli_out / PROVENANCE).read_text()), schema)
    notes: list[str] = []
    result = api.export(mixed_trace, to, api_out, on_note=notes.append)
    assert [f"note: {n}" for n in notes] == [line for line in err.splitlines() if line.startswith("note: ")]
    assert result.files == record.files and result.record.files == record.files
    for name in record.files:
        assert (api_out / name).read_bytes() == (cli_out / name).read_bytes(), name
    doctored = json.loads((cli_out / PROVENANCE).read_text())
    doctored[to]["surprise"] = 1
    (cli_out / PROVENANCE).write_text(json.dumps(doctored))
    with pytest.raises(AgosError, match=f"field '{to}.surprise'"):
        read_record(ExportRecord, cli_out / PROVENANCE)
    other = "npz" if to != "npz" else "timeloop"
    doctored = {**json.loads((api_out / PROVENANCE).read_text()), "target": other}
    (cli_out / PROVENANCE).write_text(json.dumps(doctored))
    with pytest.raises(AgosError, match=f"details under '{other}' only"):
        read_record(ExportRecord, cli_out / PROVENANCE)


# -- the command -----------------------------------------------------------------------------------


def test_bad_inputs_are_one_line_each(capsys, tmp_path, mixed_trace):
    out = str(tmp_path / "o")
    cases = [
        (("export", str(mixed_trace), "--to", "gem5", "--out", out), "--to 'gem5' is not one of"),
        (("export", str(tmp_path), "--to", "npz", "--out", out), "is not an agos trace"),
        (
            ("export", str(mixed_trace), "--to", "npz", "--out", out, "--arch", "dense@systolic"),
            "--arch applies",
        ),
        (
            ("export", str(mixed_trace), "--to", "scalesim", "--out", out, "--density", "uniform:0.5"),
            "SCALE-Sim",
        ),
        (
            ("export", str(mixed_trace), "--to", "npz", "--out", out, "--density", "uniform:2"),
            "outside [0, 1]",
        ),
        (("export", str(mixed_trace), "--to", "scalesim", "--out", out, "--arch", "nope"), "nope"),
        (("export", str(mixed_trace), "--to", "npz", "--out", out, "--seed", "3"), "--seed 3 seeds"),
    ]
    for args, says in cases:
        code, _, err = run_cli(capsys, *args)
        assert code != 0 and says in one_error_line(err), (args, err)
    assert not Path(out).exists()  # nothing half-made


def test_an_export_folder_is_claimed_and_replaced_whole(capsys, tmp_path, mixed_trace, monkeypatch):
    out = tmp_path / "tl"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    code, _, err = run_cli(capsys, "export", str(mixed_trace), "--to", "npz", "--out", str(foreign))
    assert code != 0 and "not made by agos export" in one_error_line(err)
    _export(capsys, mixed_trace, "timeloop", out)
    _export(capsys, mixed_trace, "timeloop", out)  # the same run again
    code, _, err = run_cli(capsys, "export", str(mixed_trace), "--to", "npz", "--out", str(out))
    assert code != 0 and "holds another agos export run" in one_error_line(err)
    # a stale file of an earlier export goes; a file agos did not write stays
    prov = json.loads((out / PROVENANCE).read_text())
    (out / "timeloop" / "999-old-fwd.yaml").write_text("stale\n")
    (out / "old").mkdir()
    (out / "old" / "x.yaml").write_text("stale\n")
    stale = ["timeloop/999-old-fwd.yaml", "old/x.yaml"]
    (out / PROVENANCE).write_text(json.dumps({**prov, "files": [*prov["files"], *stale]}))
    (out / "mine.txt").write_text("mine\n")

    def tree() -> dict:
        return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in out.rglob("*")}

    before = tree()
    # a failing export leaves the folder as it was, with no staging left behind
    calls = []

    def fail_late(*args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise AgosError("disk on fire")
        return real_problem(*args, **kwargs)

    real_problem = timeloop.problem
    monkeypatch.setattr(timeloop, "problem", fail_late)
    args = ("export", str(mixed_trace), "--to", "timeloop", "--out", str(out), "--density", "uniform:0.3")
    code, _, err = run_cli(capsys, *args, "--force")
    assert code != 0 and "disk on fire" in one_error_line(err)
    assert tree() == before  # as it was: no file replaced, no staging folder left
    monkeypatch.setattr(timeloop, "problem", real_problem)
    _export(capsys, mixed_trace, "timeloop", out, "--density", "uniform:0.3", "--force")
    assert not (out / stale[0]).exists() and not (out / "old").exists()
    assert (out / "mine.txt").read_text() == "mine\n"
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["density"].startswith("uniform:0.3") and not set(stale) & set(prov["files"])
    assert all((out / f).is_file() for f in prov["files"])


def test_an_export_never_writes_through_a_planted_link(capsys, tmp_path, mixed_trace):
    out, elsewhere = tmp_path / "tl", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "timeloop").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = run_cli(
        capsys, "export", str(mixed_trace), "--to", "timeloop", "--out", str(out), "--force"
    )
    assert code != 0 and "leads out of" in one_error_line(err)
    assert list(elsewhere.iterdir()) == [] and not (out / PROVENANCE).exists()
    assert not (out / "accelforge").exists()  # nothing moved before the check


# -- what must be shown (issue 22): resnet18, all three passes, through SCALE-Sim -------------------


@pytest.mark.slow
def test_scalesim_runs_the_resnet18_export_and_agrees_with_dense_systolic(capsys, tmp_path):
    """resnet18 at 32 px, batch 2: 62 GEMMs (the first layer runs no BWD-D), ~1.6 M cycles that
    SCALE-Sim steps one by one (minutes); benchmarks/export_scalesim.py records the figures."""
    pytest.importorskip("scalesim")
    from agos.api import trace as capture_trace
    from agos.inputs.options import RunOptions

    trace = tmp_path / "resnet18"
    capture_trace(RunOptions(model="resnet18", batch_size=2, image_size=32, seed=0, device="cpu"), trace)
    out = tmp_path / "ss"
    _export(capsys, trace, "scalesim", out)
    rows = _agreement(out)
    assert len(rows) == 62
    assert {name.split(":")[1] for name, *_ in rows} == set(PASSES)
    for name, cycles, _stalls, agos in rows:
        assert agos - cycles == 1, (name, cycles, agos)
