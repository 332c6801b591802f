"""The Python API (docs/api.md): a model in memory is traced as it is, never touched, and labelled
truthfully (its class, its code's and its weights' SHA-256, never '?'); `simulate` and `analyse` give
the CLI's own Analysis; the DataFrames are tidy and carry the provenance; the shipped notebook
example runs end to end on an image folder."""

from __future__ import annotations

import copy
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import agos
from agos.analysis import model as analysis_model
from agos.cli import main
from agos.inputs.weights import state_dict_sha256
from agos.workload.passes import PASSES
from tests.models import Mixed

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"batch_size": 4, "image_size": 16, "seed": 3, "device": "cpu"}
DESIGNS = ["dense@systolic", "input-skip@systolic", "agos@systolic"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A tiny ImageFolder: the embedded photographs, downscaled, in two classes."""
    from agos.inputs.samples import sample_images

    root = tmp_path_factory.mktemp("photos")
    for i, (name, array, _, _) in enumerate(sample_images()):
        folder = root / ("indoor" if i % 2 else "outdoor")
        folder.mkdir(exist_ok=True)
        Image.fromarray(array).resize((48, 40)).save(folder / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    torch.manual_seed(0)
    model = Mixed()
    before = copy.deepcopy(model.state_dict())
    trace = agos.trace(model, tmp_path_factory.mktemp("api") / "trace", **SMALL)
    return model, before, trace


def test_a_model_in_memory_is_traced_as_it_is_and_left_untouched(in_memory):
    model, before, trace = in_memory
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    p = trace.provenance
    assert (p.model, p.model_origin, p.model_class) == ("Mixed", "memory", "tests.models.Mixed")
    assert p.model_code.startswith("memory Mixed sha256:") and len(p.model_code.split(":")[-1]) == 64
    assert p.weights.source == "in-memory" and p.weights.sha256 == state_dict_sha256(model)
    assert "?" not in agos.analyse(trace).label


def test_the_same_model_by_name_gives_the_same_masks(in_memory):
    """The trace of a model in memory equals `agos trace` of the same class by name, with its
    weights saved to a file: the same masks, the same weights' SHA-256."""
    model, _, trace = in_memory
    weights = trace.path.parent / "w.pt"
    torch.save(model.state_dict(), weights)
    args = ["trace", "--model", "tests.models:mixed", "--weights", str(weights), "--batch-size", "4"]
    args += ["--image-size", "16", "--seed", "3", "--device", "cpu", "--out", str(trace.path.parent / "cli")]
    assert main(args) == 0
    cli = agos.load_trace(trace.path.parent / "cli")
    assert cli.manifest.masks_sha256 == trace.manifest.masks_sha256
    assert cli.provenance.weights.sha256 == trace.provenance.weights.sha256


def test_simulate_equals_the_cli_and_the_frames_are_tidy(in_memory, tmp_path):
    _, _, trace = in_memory
    analysis = agos.simulate(trace, DESIGNS)
    out = tmp_path / "s.json"
    assert main(["simulate", str(trace.path), "--arch", ",".join(DESIGNS), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["simulation"] == analysis_model.dump(analysis)["simulation"]
    designs = analysis.designs_frame()
    assert list(designs["design"]) == DESIGNS and designs["speedup_iteration"].notna().all()
    assert designs.loc[designs["design"] == "dense@systolic", "speedup_iteration"].item() == 1.0
    layers = analysis.layers_frame()
    assert len(layers) == len(trace.layers) * len(PASSES) * len(DESIGNS)
    assert not layers.duplicated(["design", "layer", "pass"]).any()
    for frame in (designs, layers):
        assert (frame["model_class"] == "tests.models.Mixed").all()
        assert (frame["weights_sha256"] == trace.provenance.weights.sha256).all()
        assert (frame["density"] == "real masks").all()
    sums = layers.groupby("design")["cycles"].sum()
    for name in DESIGNS:
        d = analysis.simulation.designs[name]
        assert sums[name] == d.cycles.fwd + d.cycles.bwd_data + d.cycles.bwd_weight


def test_bad_input_is_one_agos_error(in_memory):
    _, _, trace = in_memory
    with pytest.raises(agos.AgosError, match="not a zero fraction"):
        agos.simulate(trace, DESIGNS, density="uniform:lots")
    with pytest.raises(agos.AgosError, match=r"nn\.Module or a name"):
        agos.trace(42)
    with pytest.raises(agos.AgosError, match="carries its own weights"):
        agos.trace(Mixed(), weights="init", **SMALL)
    with pytest.raises(agos.AgosError, match="no simulation section"):
        agos.analyse(trace).layers_frame()


def test_the_notebook_example_runs_with_full_provenance(photos, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["notebook.py", str(photos)])
    designs = runpy.run_path(str(ROOT / "examples" / "notebook.py"))["main"](str(photos))
    out = capsys.readouterr().out
    assert list(designs["design"]) == DESIGNS
    assert (designs["data"] == f"imagefolder:{photos}").all() and (designs["model"] == "Net").all()
    assert (
        designs["weights_sha256"].str.len().eq(64).all() and designs["model_code"].str.contains("Net").all()
    )
    for text in ("Net", "in-memory", f"imagefolder:{photos}", "agos@systolic", "batch 8", "32 px"):
        assert text in out, text
    assert "?" not in out.split("\n")[1]  # the provenance label of the figures
    assert np.isfinite(designs["speedup_iteration"]).all()
