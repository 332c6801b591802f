"""`sparse_training(model)`: train with the exact sparse engine.

Inside the context, every Conv2d/Linear call of the model runs through `_SparseLayer`, an autograd
Function whose forward is the module's own op (so the forward pass, and the loss, are the model's
arithmetic bit for bit; `sparse_forward=True` uses the sparse FWD instead) and whose backward is the
sparse arithmetic of `agos.engine.sparse_ops`: BWD-D only at the needed dX positions, BWD-W only
where X and dY are both nonzero, the bias gradient as a plain sum.

The needed-dX masks are those of the capture code: the model's forward runs through a subclass of
`agos.capture.masking.MaskingInterpreter`, which hands each layer call its mask (DESIGN.md §2). A
layer whose input needs no gradient (the first layer) runs no BWD-D at all; a layer with no mask
rule computes every dX element. Models that torch.fx cannot trace still train on the sparse engine,
through patched module forwards, with every dX element needed (input sparsity only).

The sparse loops run on the CPU; tensors on another device are copied there and back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from agos.capture.autograd_masks import needed_from_autograd
from agos.capture.graph import LAYER_TYPES, GraphPlan, LayerSite, build_plan, trace
from agos.capture.masking import MaskingInterpreter
from agos.engine import sparse_ops
from agos.errors import AgosError, first_line
from agos.workload.layer import CallNames, LayerGeometry, conv_input, geometry_of, own_forward, static_padding


@dataclass
class LayerProducts:
    """One layer call of a step on the sparse engine: its dense work and the products it formed."""

    name: str
    geometry: LayerGeometry | None  # None until the call's forward has run
    needs_bwd_data: bool  # False: the layer's input needs no gradient, no BWD-D ran (or is counted)
    dx_reason: str | None  # why every dX element was needed, when it was
    fwd_products: int | None = None  # None: FWD ran as the module's own (dense) op
    bwd_data_products: int | None = None  # None: BWD-D did not run
    bwd_weight_products: int | None = None  # None: BWD-W did not run

    @property
    def dense_macs(self) -> int:
        """MACs of one dense pass, valid taps only (the same for FWD, BWD-D and BWD-W)."""
        return self.geometry.macs if self.geometry is not None else 0


@dataclass
class SparseEngine:
    """What `sparse_training` yields: how the model was run, and the work of each layer call."""

    sparse_forward: bool = False
    graph: str = "torch.fx"  # or "autograd (…why fx failed)": masks from the autograd graph
    layers: list[LayerProducts] = field(default_factory=list)

    def take_layers(self) -> list[LayerProducts]:
        """The layer calls recorded since the last take (one training step, when taken per step)."""
        layers, self.layers = self.layers, []
        return layers

    # -- one layer call ------------------------------------------------------------------------
    def layer_call(
        self, module: nn.Module, name: str, x: torch.Tensor, needed: torch.Tensor | None, reason: str | None
    ) -> torch.Tensor:
        if needed is not None and tuple(needed.shape) != tuple(x.shape):
            raise ValueError(f"{name}: needed mask {tuple(needed.shape)} does not match X {tuple(x.shape)}")
        work = LayerProducts(
            name=name,
            geometry=None,
            needs_bwd_data=bool(x.requires_grad),
            dx_reason=None if needed is not None else reason,
        )
        self.layers.append(work)
        _check_reproducible(module, name)
        call = _Call(module, work, needed, self.sparse_forward)
        return _SparseLayer.apply(x, module.weight, module.bias, call)


@dataclass
class _Call:
    module: nn.Module
    work: LayerProducts
    needed: torch.Tensor | None
    sparse_forward: bool


class _SparseLayer(torch.autograd.Function):
    """A Conv2d/Linear call whose backward is the exact sparse arithmetic."""

    @staticmethod
    def forward(ctx, x, weight, bias, call: _Call):
        module, work = call.module, call.work
        if not call.sparse_forward:
            y = _dense_op(module, x, weight, bias)
        elif isinstance(module, nn.Conv2d):
            meta = torch.device("meta")  # the output's shape, without computing it
            geometry = geometry_of(module, x, _dense_op(module, x.to(meta), weight.to(meta), None), work.name)
            y, work.fwd_products = sparse_ops.conv_forward(x, weight, bias, geometry)
        else:
            y, work.fwd_products = sparse_ops.linear_forward(x, weight, bias)
        work.geometry = geometry_of(module, x, y, work.name)
        ctx.call = call
        ctx.save_for_backward(x, weight)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        call: _Call = ctx.call
        work, geometry = call.work, call.work.geometry
        dy = dy.contiguous()
        dx = dw = db = None
        if geometry.kind == "conv":
            if ctx.needs_input_grad[0]:
                dx, work.bwd_data_products = sparse_ops.conv_backward_data(dy, weight, call.needed, geometry)
            if ctx.needs_input_grad[1]:
                dw, work.bwd_weight_products = sparse_ops.conv_backward_weight(x, dy, geometry)
        else:
            if ctx.needs_input_grad[0]:
                dx, work.bwd_data_products = sparse_ops.linear_backward_data(dy, weight, call.needed)
            if ctx.needs_input_grad[1]:
                dw, work.bwd_weight_products = sparse_ops.linear_backward_weight(x, dy)
        if ctx.needs_input_grad[2]:
            db = sparse_ops.bias_backward(dy, geometry.kind)
        return dx, dw, db, None


class _Float64Backward(torch.autograd.Function):
    """A Conv2d/Linear call with the module's own forward and a dense backward by torch's own
    convolution in float64: every product, accumulated in float64, rounded once to the input dtype.
    The reference the sparse engine must match (no skipping, no float32 rounding in the sums).

    A plain Conv2d's backward is the very `convolution_backward` call that autograd makes for the
    float64 convolution (`_conv_backward`), without running that convolution's forward first;
    every other layer (Linear, static padding, string padding) is differentiated by autograd
    through a float64 rerun of its forward (`_autograd_backward`). Both give the same bits
    (tests/test_check.py)."""

    @staticmethod
    def forward(ctx, x, weight, bias, module):
        ctx.module = module
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight, *(() if bias is None else (bias,)))
        return _dense_op(module, x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight, *rest = ctx.saved_tensors
        bias = rest[0] if ctx.has_bias else None
        need = tuple(ctx.needs_input_grad[:3])
        if not any(need):
            return None, None, None, None
        if _direct_conv(ctx.module, x):
            grads = _conv_backward(ctx.module, dy, x, weight, bias, need)
        else:
            grads = _autograd_backward(ctx.module, dy, x, weight, bias, need)
        return (*(None if g is None else g.to(dy.dtype) for g in grads), None)


def _direct_conv(module: nn.Module, x: torch.Tensor) -> bool:
    """A Conv2d whose forward is exactly one `aten.convolution` of X (zero padding given as numbers,
    no padding of its own, a batched input): its backward is one `convolution_backward` call."""
    return (
        isinstance(module, nn.Conv2d)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and not any(static_padding(module) or ())
        and x.dim() == 4
    )


def _conv_backward(module: nn.Conv2d, dy, x, weight, bias, need: tuple[bool, bool, bool]):
    """dX, dW, db of a plain Conv2d in float64: the call autograd's ConvolutionBackward0 makes."""
    dx, dw, db = torch.ops.aten.convolution_backward(
        dy.double(),
        x.detach().double(),
        weight.detach().double(),
        None if bias is None else list(bias.shape),
        list(module.stride),
        list(module.padding),
        list(module.dilation),
        False,
        [0, 0],
        module.groups,
        [need[0], need[1], need[2] and bias is not None],
    )
    return (dx if need[0] else None, dw if need[1] else None, db if need[2] and bias is not None else None)


def _autograd_backward(module: nn.Module, dy, x, weight, bias, need: tuple[bool, bool, bool]):
    """dX, dW, db by autograd through the layer's forward rerun in float64."""
    with torch.enable_grad():
        x64 = x.detach().double().requires_grad_(need[0])
        w64 = weight.detach().double().requires_grad_(need[1])
        b64 = None if bias is None else bias.detach().double().requires_grad_(need[2])
        y = _dense_op(module, x64, w64, b64)
        wanted = [t for t in (x64, w64, b64) if t is not None and t.requires_grad]
        found = torch.autograd.grad(y, wanted, dy.double())
    grads = {id(t): g for t, g in zip(wanted, found, strict=True)}
    return tuple(grads.get(id(t)) if t is not None else None for t in (x64, w64, b64))


@contextlib.contextmanager
def float64_backward(model: nn.Module) -> Iterator[None]:
    """Within the block, every Conv2d/Linear backward of `model` is dense and accumulated in float64
    (its forward and everything else stay as they are)."""
    with contextlib.ExitStack() as undo:
        for module in model.modules():
            if isinstance(module, LAYER_TYPES):

                def forward(x, _module=module):
                    return _Float64Backward.apply(x, _module.weight, _module.bias, _module)

                _set_forward(module, forward, undo)
        yield


def _dense_op(module: nn.Module, x, weight, bias):
    """The module's own forward arithmetic."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(conv_input(module, x), weight, bias)
    return F.linear(x, weight, bias)


def _check_reproducible(module: nn.Module, name: str) -> None:
    """The engine recomputes a layer from its weights and geometry: a subclass whose own forward
    does more than static zero padding (weight standardisation, …) cannot be run sparsely."""
    if own_forward(module) and static_padding(module) is None:
        raise AgosError(
            f"layer {name} ({type(module).__name__}) has a forward of its own; the sparse engine "
            "reproduces plain Conv2d/Linear arithmetic (and static zero padding) only"
        )


class _SparseInterpreter(MaskingInterpreter):
    """Runs the model's graph; each layer call goes through the engine with its needed-dX mask."""

    def __init__(self, plan: GraphPlan, engine: SparseEngine):
        super().__init__(plan)
        self.engine = engine

    def run_layer(self, site: LayerSite, x: torch.Tensor, needed: torch.Tensor | None, reason: str | None):
        return self.engine.layer_call(site.module, site.name, x, needed, reason)


@contextlib.contextmanager
def sparse_training(model: nn.Module, *, sparse_forward: bool = False) -> Iterator[SparseEngine]:
    """Within the block, calling `model` in training mode runs the sparse engine (see module doc).

    ```python
    with sparse_training(model) as engine:
        loss_of(model(images), labels).backward()   # gradients land in .grad as usual
        work = engine.take_layers()                  # products formed per layer call
    ```
    In eval mode the model runs its own forward (the graph was traced in training mode).
    """
    engine = SparseEngine(sparse_forward=sparse_forward)
    was_training = model.training
    try:
        plan = build_plan(trace(model))  # trace() puts the model in training mode
    except Exception as exc:  # untraceable user models: data-dependent control flow and the like
        plan = None
        first = first_line(exc)
        engine.graph = f"autograd (not traceable by torch.fx: {first})"
    model.train(was_training)
    with contextlib.ExitStack() as undo:
        if plan is not None:
            _patch_forward(model, plan, engine, undo)
        else:
            _patch_layers(model, engine, undo)
        yield engine


def _set_forward(module: nn.Module, forward, undo: contextlib.ExitStack) -> None:
    """Shadow the class's forward with an instance attribute until the context ends."""
    if "forward" in module.__dict__:
        raise ValueError(f"{type(module).__name__}.forward is already patched (nested sparse_training?)")
    module.forward = forward
    undo.callback(delattr, module, "forward")


def _patch_forward(
    model: nn.Module, plan: GraphPlan, engine: SparseEngine, undo: contextlib.ExitStack
) -> None:
    own_forward = model.forward

    def forward(*args, **kwargs):
        if not model.training or kwargs:
            return own_forward(*args, **kwargs)
        return _SparseInterpreter(plan, engine).run(*args)

    _set_forward(model, forward, undo)


def _patch_layers(model: nn.Module, engine: SparseEngine, undo: contextlib.ExitStack) -> None:
    """Without an fx graph: each layer module calls the engine with the needed-dX mask read off the
    autograd graph of its input (`agos.capture.autograd_masks`)."""
    calls = CallNames()
    for base, module in model.named_modules():
        if not isinstance(module, LAYER_TYPES):
            continue

        def forward(x, _module=module, _base=base):
            name = calls(_base)
            needed, reason = needed_from_autograd(x)
            return engine.layer_call(_module, name, x, needed, reason)

        _set_forward(module, forward, undo)
    handle = model.register_forward_pre_hook(lambda _module, _inputs: calls.clear())
    undo.callback(handle.remove)
