"""Needed-dX masks read off the autograd graph (for models torch.fx cannot trace) equal the fx
masks bit for bit on every shipped model family, give real output sparsity to untraceable models,
and are sound: zeroing dX outside them leaves every parameter gradient bit-identical."""

from __future__ import annotations

import copy

import pytest
import torch

from agos.capture import recorder
from agos.capture.recorder import capture_step
from agos.capture.verify import compare_gradients, masked_step_gradients
from agos.inputs.models import build_model, resolve_model
from agos.inputs.training import plain_step
from tests.models import REAL_NETWORK, TINY, DataDependent, Mixed, ShapeDependent


def _untraced(monkeypatch):
    def refuse(model):
        raise RuntimeError("tracing refused by the test")

    monkeypatch.setattr(recorder, "trace", refuse)


def _masks(result) -> dict:
    return {
        layer.name: None if layer.dx_needed is None else layer.dx_needed.tensor() for layer in result.layers
    }


def _same_masks(fx_result, ag_result) -> None:
    fx, ag = _masks(fx_result), _masks(ag_result)
    assert list(fx) == list(ag)
    for name in fx:
        if fx[name] is None:
            assert ag[name] is None, f"{name}: fx is conservative, autograd found a mask"
        else:
            assert ag[name] is not None, f"{name}: autograd conservative where fx has a mask"
            assert torch.equal(fx[name], ag[name]), f"{name}: masks differ"


def _batch(size: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, size, size, generator=gen), torch.tensor([3, 7])


def _both(model, images, labels, monkeypatch):
    fx = capture_step(copy.deepcopy(model), images, labels, seed=5)
    assert fx.graph == "torch.fx"
    with monkeypatch.context() as m:
        _untraced(m)
        ag = capture_step(copy.deepcopy(model), images, labels, seed=5)
    assert ag.graph.startswith("autograd (not traceable by torch.fx")
    return fx, ag


FAMILIES = [
    pytest.param(
        "alexnet", 64, marks=[pytest.mark.slow, pytest.mark.ci]
    ),  # its ops all occur in resnet18/mobilenet_v2
    pytest.param("vgg16", 32, marks=pytest.mark.slow),  # alexnet has the same rules, 4× faster
    pytest.param("resnet18", 64, marks=REAL_NETWORK),
    pytest.param("googlenet", 64, marks=REAL_NETWORK),
    pytest.param("mobilenet_v2", 64, marks=REAL_NETWORK),
    pytest.param("densenet121", 64, marks=[pytest.mark.slow, pytest.mark.ci]),  # concat rules: googlenet
    pytest.param("resnet50", 64, marks=pytest.mark.slow),
    # the default tier: tiny twins (torchvision's own blocks, narrow) carry the same op families
    *[(TINY[name], 32) for name in ("resnet18", "googlenet", "mobilenet_v2", "resnet50")],
]


@pytest.mark.parametrize("name,size", FAMILIES)
def test_autograd_masks_equal_fx_masks_and_are_sound(name, size, monkeypatch):
    model = build_model(resolve_model(name), seed=0)
    images, labels = _batch(size)
    fx, ag = _both(model, images, labels, monkeypatch)
    _same_masks(fx, ag)
    assert sum(layer.dx_needed is not None for layer in ag.layers) >= len(ag.layers) // 2
    plain = copy.deepcopy(model)
    plain_step(plain, images, labels, seed=5)
    reference = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
    grads, zeroed = masked_step_gradients(copy.deepcopy(model), images, labels, 5, ag)
    same, worst, differing = compare_gradients(reference, grads)
    assert same, f"unsound autograd masks: {differing[:3]} (max diff {worst})"
    assert zeroed > 0.1


def test_every_mask_rule_of_the_mixed_model(monkeypatch):
    """ReLU, ReLU6, max/avg pool, cat, dropout, flatten, residual add, BN, SiLU, GELU, groups."""
    torch.manual_seed(0)
    fx, ag = _both(Mixed(), torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]), monkeypatch)
    _same_masks(fx, ag)
    reasons = {layer.name: layer.dx_reason for layer in ag.layers}
    assert "batch norm" in reasons["e"] and "Silu" in reasons["f"] and "Gelu" in reasons["h"]


def test_untraceable_models_get_the_masks_of_their_traceable_twin():
    """Branching on a shape and a tensor built in forward break fx, not the masks."""
    torch.manual_seed(0)
    images, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2])
    twin = ShapeDependent(traceable=True)
    user = ShapeDependent()
    user.load_state_dict(twin.state_dict())
    fx = capture_step(twin, images, labels, seed=2)
    ag = capture_step(user, images, labels, seed=2)
    assert fx.graph == "torch.fx" and ag.graph.startswith("autograd (not traceable by torch.fx")
    _same_masks(fx, ag)
    masks = _masks(ag)
    assert all(m is not None for name, m in masks.items() if name != "a")  # a reads the images
    skip = {name: 1 - float(m.float().mean()) for name, m in masks.items() if m is not None}
    assert all(0.05 < s < 0.95 for s in skip.values()), skip
    assert [layer.x_producer for layer in ag.layers][1:] == [
        "MaxPool2DWithIndices ← ReLU",
        "Mul ← Hardtanh",
        "ReLU",
        "Mul ← AvgPool2D ← ReLU",
    ]


def test_untraceable_masks_are_sound_and_drive_the_sparse_engine():
    from agos.engine.check import check_batch

    torch.manual_seed(0)
    for model in (ShapeDependent(), DataDependent()):
        images, labels = torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 2])
        plain = copy.deepcopy(model)
        plain_step(plain, images, labels, seed=4)
        result = capture_step(copy.deepcopy(model), images, labels, seed=4)
        grads, _ = masked_step_gradients(copy.deepcopy(model), images, labels, 4, result)
        reference = {n: p.grad for n, p in plain.named_parameters() if p.grad is not None}
        assert compare_gradients(reference, grads)[0]
        step, graph = check_batch(model, images, labels, seed=4)
        assert graph.startswith("autograd") and step.problem is None
        assert step.bwd_data_skipped > 0.05


def test_a_mask_that_cannot_be_read_is_conservative_with_its_reason():
    from agos.capture.autograd_masks import needed_from_autograd

    # an in-place add after the ReLU: autograd sees the add as the producer

    x = torch.relu(torch.randn(2, 4, 8, 8, requires_grad=True) * 1)
    pooled = torch.nn.functional.max_pool2d(x, 2)
    pooled.add_(1.0)
    assert needed_from_autograd(pooled) == (None, "input produced by add")
    y = torch.relu(torch.randn(2, 4, 8, 8, requires_grad=True) * 1)
    z = torch.nn.functional.max_pool2d(y, 2)
    y.mul_(2.0)  # max-pool's saved input changed after the fact
    mask, reason = needed_from_autograd(z)
    assert mask is None and "modified in place" in reason
