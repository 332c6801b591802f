"""Show that a capture's dX masks are sound: rerun the step with every layer's dX zeroed outside
its mask and compare the parameter gradients with autograd's (DESIGN.md §2, "Soundness")."""

from __future__ import annotations

import torch
from torch import nn

from agos.capture.graph import LAYER_TYPES
from agos.capture.recorder import CaptureResult
from agos.inputs.training import left_as_found, loss_of, plain_step, step_rng
from agos.record import Record
from agos.workload.bits import PackedMask
from agos.workload.layer import CallNames


class _ZeroGradOutside(torch.autograd.Function):
    """Identity forward; backward keeps the incoming gradient only where `needed` is True."""

    @staticmethod
    def forward(ctx, x, needed):
        ctx.save_for_backward(needed)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        (needed,) = ctx.saved_tensors
        return torch.where(needed, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)), None


def masked_step_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    capture: CaptureResult | dict[str, PackedMask | None],
) -> tuple[dict[str, torch.Tensor], float]:
    """Gradients of a step where each layer's own dX is zeroed outside its captured mask
    (`capture`: the capture itself, or layer name → dX mask as read back from a trace)."""
    if isinstance(capture, dict):
        masks = capture
    else:
        masks = {layer.name: layer.dx_needed for layer in capture.layers}
    names = {m: n for n, m in model.named_modules()}
    calls = CallNames()
    zeroed = [0, 0]

    def pre_hook(module, inputs):
        base = names[module]
        name = calls(base)
        packed = masks.get(name)
        x = inputs[0]
        if packed is None or not x.requires_grad:
            return None
        needed = packed.tensor(x.device).reshape(x.shape)
        zeroed[0] += needed.numel() - packed.count
        zeroed[1] += needed.numel()
        return (_ZeroGradOutside.apply(x, needed), *inputs[1:])

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, LAYER_TYPES)]
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        with step_rng(seed, images.device):
            loss_of(model(images), labels).backward()
    finally:
        for h in handles:
            h.remove()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}  # the step's own
    return grads, (zeroed[0] / zeroed[1] if zeroed[1] else 0.0)


def compare_gradients(
    reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]
) -> tuple[bool, float, list[str]]:
    differing, worst = [], 0.0
    for name, ref in reference.items():
        got = other.get(name)
        if got is None or got.shape != ref.shape or not torch.equal(got, ref):
            differing.append(name)
            if got is not None and got.shape == ref.shape:
                worst = max(worst, float((got - ref).abs().max()))
    differing += [n for n in other if n not in reference]
    return not differing, worst, differing


class Soundness(Record):
    """The lossless proof of one captured step: every layer's dX zeroed outside its mask, and the
    parameter gradients compared bit for bit with the reference step's."""

    bit_identical: bool
    max_abs_diff: float
    differing: list[str]  # the first few parameters whose gradients differ
    dx_zeroed_fraction: float
    parameters: int
    reference: str  # what the gradients were compared with


def soundness_record(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    seed: int,
    capture: CaptureResult | dict[str, PackedMask | None],
    reference: dict[str, torch.Tensor] | None = None,
) -> Soundness:
    """Bit-exact: every layer's dX zeroed outside its mask leaves all parameter gradients unchanged.
    `reference`: the captured step's own gradients, which are a plain step's (capture is transparent,
    tests/test_capture_soundness.py) — it saves a second full-batch step. The masked step shares no
    code with the recorder, so a capture that was not transparent would fail here, never pass.
    `model` is left as it was (the steps run on it, each from its buffers as found: `left_as_found`)."""
    source = "the captured step's gradients"
    with left_as_found(model) as reset:
        if reference is None:
            plain_step(model, images, labels, seed)
            reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
            source = "a plain autograd step"
            reset()
        grads, zeroed = masked_step_gradients(model, images, labels, seed, capture)
    identical, worst, differing = compare_gradients(reference, grads)
    return Soundness(
        bit_identical=identical,
        max_abs_diff=worst,
        differing=differing[:5],
        dx_zeroed_fraction=zeroed,
        parameters=len(reference),
        reference=source,
    )
