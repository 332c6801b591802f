"""Layers agos does not model are named, sized and reported — never dropped silently."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from agos.capture.unmodelled import forward_macs
from tests.cli_helpers import run_cli


@pytest.mark.parametrize(
    "module,shape",
    [
        (nn.Conv1d(6, 4, 3, stride=2, padding=1, groups=2), (2, 6, 17)),
        (nn.Conv3d(3, 5, (2, 3, 3), padding=1), (1, 3, 4, 6, 6)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (2, 4, 5, 7)),
        (nn.ConvTranspose1d(3, 2, 4, stride=3), (2, 3, 9)),
    ],
)
def test_convolution_macs_equal_torchs_flop_counter(module, shape):
    x = torch.randn(shape)
    with FlopCounterMode(display=False) as counter:
        y = module(x)
    assert 2 * forward_macs(module, (x,), y) == counter.get_total_flops()


def test_recurrent_macs_by_hand():
    lstm = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 7, 4)
    y = lstm(x)
    # per step and direction: layer 0 reads 4 inputs, layer 1 reads both directions (10); 4 gates
    per_step = 4 * 5 * (4 + 5) + 4 * 5 * (10 + 5)
    assert forward_macs(lstm, (x,), y) == 3 * 7 * 2 * per_step


def test_trace_warns_in_one_line_and_records_the_share(capsys, tmp_path):
    out = tmp_path / "t"
    code, stdout, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(out),
        "--model",
        "tests.models:unmodelled",
        "--batch-size",
        "2",
        "--image-size",
        "16",
    )
    assert code == 0 and "wrote" in stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: 3 layer call(s)")
    assert "Conv1d" in lines[0] and "ConvTranspose2d" in lines[0] and "LSTM" in lines[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"] == [lines[0].removeprefix("warning: ")]
    assert sorted(manifest["skipped_layers"]) == ["line (Conv1d)", "lstm (LSTM)", "up (ConvTranspose2d)"]
    modelled = sum(layer["macs"] for layer in manifest["layers"])
    up = 2 * 4 * 16 * 16 * 4 * 2 * 2  # input elements × (out channels × kernel)
    line = 2 * 4 * 32 * 32 * 4 * 3  # output elements × (in channels × kernel)
    lstm = 2 * 32 * 32 * 4 * 5 * (4 + 5)
    share = (up + line + lstm) / (up + line + lstm + modelled)
    assert f"{100 * share:.1f}% of the step's MACs" in lines[0]


def test_a_model_agos_models_fully_has_no_notes(mixed_trace):
    assert json.loads((mixed_trace / "manifest.json").read_text())["notes"] == []


def test_trace_says_when_the_graph_was_not_traced(capsys, tmp_path):
    out = tmp_path / "t"
    code, _, err = run_cli(
        capsys,
        "trace",
        "--out",
        str(out),
        "--model",
        "tests.models:shape_dependent",
        "--batch-size",
        "2",
        "--image-size",
        "16",
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 0 and len(lines) == 1
    assert lines[0].startswith("warning: torch.fx could not trace the model") and "autograd" in lines[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graph"].startswith("autograd") and manifest["notes"] == [lines[0][len("warning: ") :]]
    assert sum(layer["dx_needed"] is not None for layer in manifest["layers"]) == 4
