"""Whole-network figures equal the pinned golden ones (tests/golden_networks.py says why the masks
are seeded and how to update them deliberately)."""

from __future__ import annotations

import json

import pytest

from tests.golden_networks import DENSITY, GOLDEN, SEED, TRACES, capture, differences, figures


@pytest.fixture(scope="module")
def golden() -> dict:
    data = json.loads(GOLDEN.read_text())
    assert (data["density"], data["seed"]) == (DENSITY, SEED)
    assert {m: tuple(v) for m, v in data["traces"].items()} == TRACES
    return data["models"]


@pytest.mark.parametrize(
    "model",
    # mobilenet_v2 (depthwise, 7 s) is pinned in CI and `make test-all`
    [
        pytest.param(m, marks=[pytest.mark.slow, pytest.mark.ci]) if m == "mobilenet_v2" else m
        for m in sorted(TRACES)
    ],
)
def test_whole_network_figures_equal_the_golden_ones(model, golden, tmp_path):
    trace = capture(model, tmp_path / model)  # synthetic images (golden_networks.capture says why)
    now = json.loads(json.dumps(figures(trace)))
    diff = differences(golden[model], now)
    assert not diff, f"{len(diff)} figures changed (update deliberately: make golden):\n" + "\n".join(
        diff[:40]
    )


def test_the_diff_names_every_changed_figure():
    golden = {"agos@rows": {"cycles": {"fwd": 10, "bwd_data": 5}, "energy_j": 1.0}}
    now = {"agos@rows": {"cycles": {"fwd": 11, "bwd_data": 5}, "energy_j": 1.0 + 1e-6}}
    assert differences(golden, now) == [
        "agos@rows.cycles.fwd: 10 → 11",
        "agos@rows.energy_j: 1.0 → 1.000001 (+0.000%)",
    ]
    assert differences(golden, golden) == []
