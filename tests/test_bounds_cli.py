"""`agos bounds`: the JSON's structure and sums, the table, and one-line errors for bad traces."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from agos.analysis.bounds import compute_bounds
from agos.capture.trace import load_trace
from agos.density.real import iter_real_masks
from agos.workload.bruteforce import brute_force
from agos.workload.counts import POLICIES
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES
from tests.cli_helpers import one_error_line, run_cli


def test_bounds_json_and_table(capsys, tmp_path, mixed_trace):
    out = tmp_path / "b.json"
    code, stdout, err = run_cli(capsys, "bounds", str(mixed_trace), "--json", str(out))
    assert code == 0, err
    assert "model total" in stdout and "Ideal speedup of the whole model" in stdout
    assert "X in BWD-W" in stdout  # the table says which operand the input policy skips in BWD-W
    data = json.loads(out.read_text())
    summary = data["bounds"]

    trace = load_trace(mixed_trace)
    assert [layer["name"] for layer in summary["layers"]] == [layer.name for layer in trace.layers]
    assert data["provenance"]["model"] == "tests.models:mixed"
    assert "real masks" in data["label"] and data["density"]["kind"] == "real"
    assert summary["density_source"] == "real masks" and data["trace"] == str(mixed_trace)
    for item, masks in zip(summary["layers"], iter_real_masks(trace), strict=True):
        work, _ = brute_force(masks)  # every MAC visited in Python loops: shares no code with counts
        for p in PASSES:
            assert set(item[p]) == set(POLICIES)
            assert all(isinstance(v, int) for v in item[p].values())
            assert item[p] == {policy: work.total(p, policy) for policy in POLICIES}
    first = summary["layers"][0]
    assert not first["needs_bwd_data"] and set(first["bwd_data"].values()) == {0}
    assert first["speedups"]["input"]["bwd_data"] is None

    totals = summary["totals"]
    assert set(totals) == set(PASSES)
    for p in PASSES:
        for policy in POLICIES:
            assert totals[p][policy] == sum(layer[p][policy] for layer in summary["layers"])
    assert totals["fwd"]["dense"] == sum(layer.macs for layer in trace.layers)

    for policy in ("input", "output", "input+output"):
        s = summary["speedups"][policy]
        eff = {p: totals[p][policy] for p in PASSES}
        dense = {p: totals[p]["dense"] for p in PASSES}
        assert s["bwd_weight"] == pytest.approx(dense["bwd_weight"] / eff["bwd_weight"])
        assert s["backprop"] == pytest.approx(
            (dense["bwd_data"] + dense["bwd_weight"]) / (eff["bwd_data"] + eff["bwd_weight"])
        )
        assert s["iteration"] == pytest.approx(sum(dense.values()) / sum(eff.values()))
    assert "dense" not in summary["speedups"]
    assert summary["speedups"]["output"]["fwd"] == summary["speedups"]["output"]["bwd_weight"] == 1.0
    # the mixed model has real sparsity: every sparse policy speeds backprop up, both together most
    backprop = {p: summary["speedups"][p]["backprop"] for p in ("input", "output", "input+output")}
    assert min(backprop.values()) > 1.0
    assert backprop["input+output"] >= max(backprop["input"], backprop["output"])


def test_bounds_takes_any_density_source():
    """A statistical source plugs in as an iterable of LayerMasks; the label says where masks came from."""
    g = LayerGeometry("conv", 2, 4, 5, 5, 3, 5, 5, 3, 3, padding=(1, 1))
    gen = torch.Generator().manual_seed(0)
    masks = [
        LayerMasks(
            f"l{i}",
            g,
            i > 0,
            torch.rand(g.x_shape, generator=gen) < 0.5,
            torch.rand(g.y_shape, generator=gen) < 0.5,
            torch.rand(g.x_shape, generator=gen) < 0.5,
            False,
            source="statistical (test profile)",
        )
        for i in range(2)
    ]
    section = compute_bounds(iter(masks))
    assert section.density_source == "statistical (test profile)"
    assert section.totals.bwd_data["dense"] == g.macs  # the first layer has none
    assert len(section.layers) == 2 and [layer.index for layer in section.layers] == [0, 1]


def test_bad_traces_are_one_line_errors(capsys, tmp_path, mixed_trace):
    code, _, err = run_cli(capsys, "bounds", str(tmp_path / "nope"))
    assert code != 0 and "does not exist" in one_error_line(err)
    d = tmp_path / "t"
    shutil.copytree(mixed_trace, d)
    (d / "masks.bin").write_bytes(b"x")
    code, _, err = run_cli(capsys, "bounds", str(d), "--json", str(tmp_path / "b.json"))
    assert code != 0 and "truncated or corrupt" in one_error_line(err)
    assert not (tmp_path / "b.json").exists()
    (d / "manifest.json").write_text("{")
    code, _, err = run_cli(capsys, "bounds", str(d))
    assert code != 0 and "not valid JSON" in one_error_line(err)
    code, _, err = run_cli(capsys, "bounds")
    assert code != 0 and "Missing argument" in one_error_line(err)
