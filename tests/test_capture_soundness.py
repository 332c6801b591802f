"""Capture changes nothing, and its dX masks are sound on real torchvision models: zeroing dX
outside the masks leaves every parameter gradient bit-identical to autograd's."""

from __future__ import annotations

import copy

import pytest
import torch

from agos.capture.recorder import capture_step
from agos.capture.verify import compare_gradients, masked_step_gradients
from agos.inputs.models import build_model, resolve_model
from agos.inputs.training import plain_step
from tests.models import REAL_NETWORK, TINY


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(
    "name,size",
    [
        pytest.param("alexnet", 64, marks=[pytest.mark.slow, pytest.mark.ci]),
        pytest.param("vgg16", 32, marks=pytest.mark.slow),  # alexnet has the same rules, 4× faster
        pytest.param("resnet18", 64, marks=REAL_NETWORK),
        pytest.param("googlenet", 64, marks=REAL_NETWORK),
        pytest.param("mobilenet_v2", 64, marks=REAL_NETWORK),
        pytest.param("densenet121", 64, marks=[pytest.mark.slow, pytest.mark.ci]),  # concat rules: googlenet
        # the default tier: tiny twins (torchvision's own blocks, narrow) carry the same op families
        *[(TINY[name], 32) for name in ("resnet18", "googlenet", "mobilenet_v2", "vgg16")],
    ],
)
def test_capture_is_transparent_and_masks_are_sound(name, size):
    model = build_model(resolve_model(name), seed=0)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, size, size, generator=gen)
    labels = torch.tensor([3, 7])
    plain, masked = copy.deepcopy(model), copy.deepcopy(model)

    result = capture_step(model, images, labels, seed=5)
    loss = plain_step(plain, images, labels, seed=5)
    reference = _grads(plain)
    assert result.graph == "torch.fx"
    assert result.loss == float(loss)
    same, worst, differing = compare_gradients(reference, _grads(model))
    assert same, f"capture changed gradients of {differing[:3]} (max diff {worst})"

    grads, zeroed = masked_step_gradients(masked, images, labels, 5, result)
    same, worst, differing = compare_gradients(reference, grads)
    assert same, f"unsound masks: {differing[:3]} differ (max diff {worst})"
    assert zeroed > 0.2, f"only {zeroed:.1%} of dX was skippable"


def test_a_wrong_mask_is_caught():
    """The soundness check can fail: flip one needed element off and gradients change."""
    from agos.workload.bits import pack

    model = build_model(resolve_model("resnet18"), seed=0)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 2])
    plain, masked = copy.deepcopy(model), copy.deepcopy(model)
    result = capture_step(model, images, labels, seed=0)
    plain_step(plain, images, labels, seed=0)
    victim = next(layer for layer in result.layers if layer.dx_needed is not None)
    wrong = victim.dx_needed.tensor().clone()
    wrong.view(-1)[wrong.view(-1).nonzero()[0]] = False
    victim.dx_needed = pack(wrong)
    grads, _ = masked_step_gradients(masked, images, labels, 0, result)
    assert not compare_gradients(_grads(plain), grads)[0]


def test_reproduce_soundness_against_the_captured_gradients_can_fail():
    """`agos reproduce` judges the masked step against the capture's own gradients: sound masks pass,
    one needed element dropped fails — with either reference."""
    from agos.capture.verify import soundness_record
    from agos.workload.bits import pack

    model = build_model(resolve_model("resnet18"), seed=0)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([4, 5])
    before = copy.deepcopy(model)
    pristine = copy.deepcopy(model)
    result = capture_step(model, images, labels, seed=0)
    captured = _grads(model)
    good = soundness_record(before, images, labels, 0, result, captured)
    assert good.bit_identical and good.reference == "the captured step's gradients"
    assert soundness_record(before, images, labels, 0, result).bit_identical
    # the steps ran on `before` itself, which is left as it was (BN statistics, no gradients)
    for (name, a), b in zip(pristine.state_dict().items(), before.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert all(p.grad is None for p in before.parameters())
    victim = next(layer for layer in result.layers if layer.dx_needed is not None)
    wrong = victim.dx_needed.tensor().clone()
    wrong.view(-1)[wrong.view(-1).nonzero()[0]] = False
    victim.dx_needed = pack(wrong)
    assert not soundness_record(before, images, labels, 0, result, captured).bit_identical
    assert not soundness_record(before, images, labels, 0, result).bit_identical
