"""agos's dense `systolic` count agrees with SCALE-Sim 3.0.0 (issue 10, item 3; docs/validation.md).

resnet18's layers at 32 px, batch 1 (so that SCALE-Sim, which steps every cycle in Python, stays
fast) plus a depthwise conv, each pass as its im2col GEMM (padding taps and stride holes as work):
agos's cost model, run on the GEMM, counts SCALE-Sim's compute cycles + 1 per GEMM copy (SCALE-Sim
reports the last cycle's zero-based index)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from agos.validate.gemm import agos_gemm_cost, agos_gemm_cycles, compute_cycles
from agos.workload.gemm import Gemm, layer_gemm
from agos.workload.layer import LayerGeometry, geometry_of

pytest.importorskip("scalesim")

from agos.validate import scalesim

CASES = [
    ("conv1", "fwd"),  # 7×7 stride 2, padded
    ("conv1", "bwd_weight"),
    ("layer1.0.conv1", "fwd"),  # 3×3 stride 1
    ("layer1.0.conv1", "bwd_data"),
    ("layer1.0.conv1", "bwd_weight"),
    ("layer2.0.conv1", "fwd"),  # 3×3 stride 2
    ("layer2.0.conv1", "bwd_data"),  # transposed conv: stride holes counted
    ("layer2.0.conv1", "bwd_weight"),
    ("layer2.0.downsample.0", "fwd"),  # 1×1 stride 2
    ("layer2.0.downsample.0", "bwd_data"),
    ("layer2.0.downsample.0", "bwd_weight"),
    ("layer2.0.conv2", "fwd"),
    ("layer3.0.conv1", "fwd"),
    ("layer3.0.downsample.0", "fwd"),
    ("layer3.0.downsample.0", "bwd_weight"),
    ("layer4.0.downsample.0", "fwd"),
    ("fc", "fwd"),  # Linear as a GEMM
    ("depthwise", "fwd"),  # 64 groups of 1 channel, packed across the columns
    ("depthwise", "bwd_data"),
    ("depthwise", "bwd_weight"),
]


def _geometries() -> dict[str, LayerGeometry]:
    model = torchvision.models.resnet18(weights=None).eval()
    depthwise = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False)
    wanted = {name for name, _ in CASES}
    out: dict[str, LayerGeometry] = {}

    def hook(name: str):
        def record(mod: torch.nn.Module, x: tuple, y: torch.Tensor) -> None:
            out.setdefault(name, geometry_of(mod, x[0], y, name))

        return record

    modules = [*model.named_modules(), ("depthwise", depthwise)]
    hooks = [m.register_forward_hook(hook(name)) for name, m in modules if name in wanted]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
        depthwise(torch.zeros(1, 64, 8, 8))
    for h in hooks:
        h.remove()
    return out


@pytest.fixture(scope="module")
def gemms() -> list[Gemm]:
    geometries = _geometries()
    return [layer_gemm(geometries[name], pass_, name) for name, pass_ in CASES]


def _agree(gemms: list[Gemm], method: str) -> list:
    ours = [agos_gemm_cycles(g) for g in gemms]
    theirs = scalesim.simulate(gemms, method=method)
    for g, a, s in zip(gemms, ours, theirs, strict=True):
        assert s.stall_cycles == 0
        # agos = SCALE-Sim + 1 per copy: within one cycle of SCALE-Sim per GEMM (per group run)
        assert a - s.cycles == g.copies, (g, a, s.cycles)
    return theirs


def test_agos_counts_scalesim_cycles_plus_one_per_gemm(gemms):
    """All 20 GEMMs against SCALE-Sim's one-fold extrapolation (exact: the slow test below and
    benchmarks/scalesim.py check it against full runs); the four smallest in a full run too."""
    assert len(gemms) >= 20
    _agree(gemms, "fold")
    smallest = sorted(gemms, key=lambda g: g.m * g.n * g.k * g.copies)[:4]
    _agree(smallest, "full")


@pytest.mark.slow
def test_scalesim_full_runs_equal_the_fold_extrapolation(gemms):
    full = _agree(gemms, "full")
    folded = scalesim.simulate(gemms, method="fold")
    assert [f.cycles for f in folded] == [s.cycles for s in full]


def test_agos_side_is_work_and_fill_drain_without_stalls(gemms):
    for g in gemms[:4]:
        cost = agos_gemm_cost(g)
        assert cost.components["delivery"] == 0
        assert compute_cycles(cost) == cost.components["work"] + cost.components["fill_drain"]
        assert cost.components["work"] > 0 and cost.components["fill_drain"] > 0


def test_gemm_conventions():
    g = _geometries()
    conv1 = g["conv1"]  # 3→64, 7×7, stride 2, pad 3, 32 → 16 px
    assert layer_gemm(conv1, "fwd").shape == (16 * 16, 64, 3 * 49)
    assert layer_gemm(conv1, "bwd_data").shape == (32 * 32, 3, 64 * 49)
    assert layer_gemm(conv1, "bwd_weight").shape == (3 * 49, 64, 16 * 16)
    # im2col counts padding taps: more MACs than agos's valid-tap count
    assert layer_gemm(conv1, "fwd").macs > conv1.macs
    ds = g["layer2.0.downsample.0"]  # 1×1 stride 2, no padding: FWD and BWD-W have no padding taps
    assert layer_gemm(ds, "fwd").macs == ds.macs == layer_gemm(ds, "bwd_weight").macs
    assert layer_gemm(ds, "bwd_data").macs == 4 * ds.macs  # stride holes of the transposed conv
    fc = g["fc"]
    assert layer_gemm(fc, "fwd").shape == (1, 1000, 512)
    assert layer_gemm(fc, "bwd_data").shape == (1, 512, 1000)
    assert layer_gemm(fc, "bwd_weight").shape == (512, 1000, 1)
    dw = g["depthwise"]  # 64 groups of one channel: one GEMM of 64 packed columns
    assert layer_gemm(dw, "fwd") == Gemm("layer", "fwd", 64, 64, 9)
    assert layer_gemm(dw, "bwd_weight") == Gemm("layer", "bwd_weight", 9, 64, 64)
    wide = LayerGeometry("conv", 1, 128, 4, 4, 128, 4, 4, 3, 3, padding=(1, 1), groups=2)
    assert layer_gemm(wide, "fwd") == Gemm("layer", "fwd", 16, 64, 64 * 9, copies=2)
    odd = LayerGeometry("conv", 1, 60, 4, 4, 60, 4, 4, 1, 1, groups=5)  # 12 channels a group: 2 a tile
    assert layer_gemm(odd, "fwd") == Gemm("layer", "fwd", 16, 24, 12, copies=3)
