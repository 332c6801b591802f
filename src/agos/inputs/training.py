"""One training step, the way every agos command runs it (loss, RNG, optional warm-up)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from agos.errors import AgosError, first_line

# GoogLeNet's paper weights each auxiliary classifier's loss by 0.3; agos uses that for every
# model whose training-mode output carries auxiliary logits (googlenet, inception_v3).
AUX_LOSS_WEIGHT = 0.3


def split_outputs(output) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Main logits and auxiliary logits of a classifier's training-mode output."""
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, dict):
        main = output.get("logits", output.get("out"))
        aux = [v for k, v in output.items() if k not in ("logits", "out") and isinstance(v, torch.Tensor)]
        return main, aux
    if isinstance(output, tuple | list):  # namedtuples: (logits, aux…)
        tensors = [t for t in output if isinstance(t, torch.Tensor)]
        return tensors[0], tensors[1:]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


def loss_of(output, labels: torch.Tensor) -> torch.Tensor:
    main, aux = split_outputs(output)
    loss = F.cross_entropy(main, labels)
    for logits in aux:
        loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(logits, labels)
    return loss


def all_finite(t: torch.Tensor) -> bool:
    """Exactly `isfinite(t).all()`, 30× faster on large tensors: a NaN or inf anywhere makes the sum
    non-finite, so a finite sum settles it; only a sum that overflows is checked element by element."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def non_finite_parameters(model: nn.Module, grads: bool = False) -> list[str]:
    """Names of parameters (or, with `grads`, parameter gradients) holding NaN or ±inf."""
    bad = []
    for name, p in model.named_parameters():
        t = p.grad if grads else p
        if t is not None and not all_finite(t):
            bad.append(name)
    return bad


def require_finite_step(model: nn.Module, output, loss: torch.Tensor, where: str) -> None:
    """A step on NaN/inf numbers says nothing about sparsity (a NaN compares unequal to zero, so
    it counts as dense): refuse it in one line, before anything is written."""
    bad = non_finite_parameters(model)
    if bad:
        raise AgosError(f"{where}: the model has non-finite weights ({_names(bad)}); check the weights file")
    main, aux = split_outputs(output)
    if not all(all_finite(t) for t in (main, *aux)):
        raise AgosError(f"{where}: the model's logits are not finite (NaN or inf) on this batch")
    if not bool(torch.isfinite(loss)):
        raise AgosError(f"{where}: the loss is {float(loss)}")
    bad = non_finite_parameters(model, grads=True)
    if bad:
        raise AgosError(f"{where}: non-finite gradients ({_names(bad)})")


@contextlib.contextmanager
def model_errors(what: str, images: torch.Tensor, kinds: tuple[type[Exception], ...] = (ValueError,)):
    """The user's model refusing the batch in training mode (BatchNorm on one value per channel,
    a shape it cannot take) is a problem with the input: one line, not an internal error."""
    try:
        yield
    except kinds as exc:
        first = first_line(exc)
        shape = "×".join(map(str, images.shape))
        raise AgosError(f"{what}: the model failed on a training batch of {shape}: {first}") from None


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


@contextlib.contextmanager
def step_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Replay the same random numbers (dropout) in every run of a step, leave the caller's RNG alone."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def plain_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Forward, loss, backward with nothing attached; gradients land in `.grad`."""
    model.train()
    model.zero_grad(set_to_none=True)
    with step_rng(seed, images.device):
        loss = loss_of(model(images), labels)
        loss.backward()
    return loss.detach()


@contextlib.contextmanager
def left_as_found(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Run steps on `model` itself instead of on a deep copy, and leave it as it was found: on exit
    its gradients, buffers (BatchNorm statistics, spectral-norm vectors: what a training forward
    updates) and train/eval modes are put back. Yields `reset()`, which puts the buffers back between
    steps, so that every step starts from the state a fresh copy would have. Parameters are not
    saved: a step without an optimizer does not change them."""
    grads = [(p, p.grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    with torch.no_grad():
        buffers = [
            (module, name, buf, buf.clone())
            for module in model.modules()
            for name, buf in module._buffers.items()
            if buf is not None
        ]

    def reset() -> None:
        with torch.no_grad():
            for module, name, buf, saved in buffers:
                buf.copy_(saved)
                module._buffers[name] = buf  # a forward that replaced the buffer gets the original back

    try:
        yield reset
    finally:
        reset()
        for p, grad in grads:
            p.grad = grad
        for m, training in modes:
            m.training = training


def num_classes_of(model: nn.Module, image_size: int, device: torch.device) -> int:
    """Run one image through the model in eval mode to learn its output width."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
    main, _ = split_outputs(out)
    return int(main.shape[-1])
