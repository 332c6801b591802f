"""Captured masks equal masks computed directly from a hand-written replay of the same step."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from agos.capture.recorder import capture_step
from agos.inputs.training import step_rng
from tests.models import Mixed


def _replay(m: Mixed, x: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    """The same forward as Mixed.forward, keeping every intermediate and each layer's dY."""
    t: dict[str, torch.Tensor] = {}
    outs: dict[str, torch.Tensor] = {}

    def layer(name, module, inp):
        t[f"{name}.x"] = inp.detach().clone()
        out = module(inp)
        out.retain_grad()
        outs[name] = out
        return out

    m.train()
    with step_rng(seed, x.device):
        x1 = F.relu(layer("stem", m.stem, x))
        p1 = F.max_pool2d(x1, 2)
        y = m.bn_a(layer("a", m.a, p1))
        r2 = F.relu(y + p1)
        r3 = F.relu(layer("b", m.b, r2))
        r4 = F.relu6(layer("c", m.c, r3))
        cat = torch.cat([r3, r4], dim=1)
        r5 = F.relu(layer("d", m.d, cat))
        bn = m.bn_after(r5)
        s = F.silu(layer("e", m.e, bn))
        r6 = F.relu(layer("f", m.f, s))
        a6 = F.avg_pool2d(r6, 2, stride=1, padding=1)
        g = F.gelu(layer("g", m.g, a6))
        r7 = F.relu(layer("h", m.h, g))
        pooled = torch.flatten(F.adaptive_max_pool2d(r7, 4), 1)
        dropped = m.drop(pooled)
        logits = layer("fc", m.fc, dropped)
        F.cross_entropy(logits, labels).backward()
    relu6_live = (r4 > 0) & (r4 < 6)
    needed = {
        "a": p1 > 0,
        "b": r2 > 0,
        "c": r3 > 0,
        "d": torch.cat([r3 > 0, relu6_live], dim=1),
        "g": F.avg_pool2d((r6 > 0).float(), 2, stride=1, padding=1) > 0,
        "fc": (pooled > 0) & ~((dropped == 0) & (pooled != 0)),
    }
    return {"inputs": t, "dy": {k: v.grad for k, v in outs.items()}, "needed": needed}


def test_masks_equal_directly_computed_ones():
    torch.manual_seed(0)
    model = Mixed()
    x = torch.randn(4, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3])
    reference = _replay(copy.deepcopy(model), x, labels, seed=11)
    result = capture_step(model, x, labels, seed=11)
    layers = {layer.name: layer for layer in result.layers}
    assert list(layers) == ["stem", "a", "b", "c", "d", "e", "f", "g", "h", "fc"]
    for name, layer in layers.items():
        assert torch.equal(layer.x_nonzero.tensor(), reference["inputs"][f"{name}.x"] != 0), name
        assert torch.equal(layer.dy_nonzero.tensor(), reference["dy"][name] != 0), name
        if name in reference["needed"]:
            assert layer.dx_reason is None, name
            assert torch.equal(layer.dx_needed.tensor(), reference["needed"][name]), name
        else:
            assert layer.dx_needed is None, name
    # every mask rule has bite in this batch: none of the expected masks is trivial
    for name, mask in reference["needed"].items():
        assert 0 < int(mask.sum()) < mask.numel(), name


def test_conservative_answers_name_their_reason():
    torch.manual_seed(0)
    model = Mixed()
    result = capture_step(model, torch.randn(2, 3, 16, 16), torch.tensor([0, 1]), seed=0)
    layers = {layer.name: layer for layer in result.layers}
    assert not layers["stem"].needs_bwd_data
    assert "network input" in layers["stem"].dx_reason
    assert layers["e"].dx_reason == "input produced by BatchNorm2d"  # BN placed after ReLU
    assert layers["f"].dx_reason == "input produced by silu"
    assert layers["h"].dx_reason == "input produced by gelu"
    assert layers["d"].x_producer == "cat(ReLU, ReLU6)"
    assert layers["a"].y_consumer == "BatchNorm2d → add → ReLU"


def test_direct_relu_makes_dy_as_sparse_as_the_activation():
    """Conv → ReLU: every position where the activation is zero has a zero dY."""
    torch.manual_seed(0)
    result = capture_step(Mixed(), torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]), seed=0)
    layers = {layer.name: layer for layer in result.layers}
    for name in ("b", "d", "f"):
        c = layers[name].correlation
        assert c["act_zero_dy_nonzero"] == 0 and c["act_zero_dy_zero"] > 0, name
    # with BN between conv and ReLU the gradient is dense where the ReLU cut
    assert layers["a"].correlation["act_zero_dy_nonzero"] > 0


def test_in_place_mutation_and_untraceable_models_are_conservative():
    from tests.models import DataDependent, MutatedInput

    torch.manual_seed(0)
    result = capture_step(MutatedInput(), torch.randn(2, 3, 8, 8), torch.tensor([0, 1]), seed=0)
    assert result.layers[1].dx_reason == "input mutated in place by add_"
    result = capture_step(DataDependent(), torch.randn(2, 3, 8, 8), torch.tensor([0, 1]), seed=0)
    assert result.graph.startswith("autograd (not traceable by torch.fx")
    assert result.layers[1].dx_needed is not None and result.layers[1].x_producer == "ReLU"
    assert result.layers[1].dy_nonzero is not None
