"""Needed-dX masks read off the autograd graph of the real step, for models torch.fx cannot trace.

When a layer is called, its input X already carries the backward graph that made it: X.grad_fn and
the nodes below it, with the tensors they saved. The mask rules of DESIGN.md §2 are read from those
nodes instead of from fx nodes, so Python control flow, shape-dependent code and buffers built in
forward do not matter — only the ops that ran:

- ReLU / Hardtanh (ReLU6) / threshold: a source — needed where the local derivative is nonzero,
  from the saved result or input;
- max-pool: an output is needed where the input element it took (the saved indices) is;
- avg-pool, mean: where any element of the window is;
- multiplication by a tensor that needs no gradient (dropout's scaled mask, a constant): where the
  input is needed and the factor is nonzero;
- ops that only move elements (view, reshape, flatten, permute, transpose, slice, select, split,
  chunk, squeeze, clone, cat, stack, channel/pixel shuffle…): the input's mask, moved the same way —
  found by running the node's own backward once on a tensor of positions (1, 2, 3, …), which sends
  each output position to the input element it came from;
- anything else (BatchNorm, add, SiLU, a convolution, a leaf): every element needed, with the reason.

On every model fx can trace these give the masks fx gives (tested on each shipped model family).
A saved tensor that was changed in place after it was saved cannot be read; that mask is then
conservative, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agos.capture.rules import RELU, Band

MAX_DEPTH = 64  # nodes followed below one layer input before giving up (conservatively)

# backward nodes of ops that only move elements: each output element is one input element
_MOVES = {
    "ViewBackward0",
    "UnsafeViewBackward0",
    "ReshapeAliasBackward0",
    "AliasBackward0",
    "PermuteBackward0",
    "TransposeBackward0",
    "TransposeBackward1",
    "TBackward0",
    "CloneBackward0",
    "SliceBackward0",
    "SelectBackward0",
    "NarrowBackward0",
    "SplitBackward0",
    "SplitWithSizesBackward0",
    "UnbindBackward0",
    "SqueezeBackward0",
    "SqueezeBackward1",
    "SqueezeBackward2",
    "SqueezeBackward3",
    "SqueezeBackward4",
    "UnsqueezeBackward0",
    "CatBackward0",
    "StackBackward0",
    "ChannelShuffleBackward0",
    "PixelShuffleBackward0",
    "PixelUnshuffleBackward0",
    "FlipBackward0",
    "RollBackward0",
}
_MAX_POOLS = {
    "MaxPool2DWithIndicesBackward0": 2,
    "MaxPool3DWithIndicesBackward0": 3,
    "AdaptiveMaxPool2DBackward0": 2,
    "AdaptiveMaxPool3DBackward0": 3,
}
_LABELS = {
    "NativeBatchNormBackward0": "batch norm",
    "CudnnBatchNormBackward0": "batch norm",
    "AddBackward0": "add",
    "AddBackward1": "add",
    "SubBackward0": "sub",
    "ConvolutionBackward0": "a convolution",
    "AddmmBackward0": "a linear layer",
    "MmBackward0": "a matrix product",
    "AccumulateGrad": "network input",
}


@dataclass
class Needed:
    """The needed mask of one tensor (None: every element needed, and why)."""

    mask: torch.Tensor | None
    reason: str | None = None


def _all(reason: str) -> Needed:
    return Needed(None, reason)


def _label(fn) -> str:
    name = type(fn).__name__
    return _LABELS.get(name) or re.sub(r"Backward\d*$", "", name)


def needed_from_autograd(x: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """The needed-dX mask of a layer whose input is `x` (None and the reason when all are needed)."""
    if not x.requires_grad:
        return None, "network input: no data gradient is computed"
    if x.grad_fn is None:
        return None, "input produced by network input"
    with torch.no_grad():
        found = _needed(x.grad_fn, x.output_nr, tuple(x.shape), 0)
    if found.mask is not None and tuple(found.mask.shape) != tuple(x.shape):
        return None, f"input produced by {_label(x.grad_fn)} (mask shape mismatch)"
    return found.mask, found.reason


def _needed(fn, nr: int, shape: tuple[int, ...], depth: int) -> Needed:
    if fn is None:
        return _all("input produced by network input")
    if depth > MAX_DEPTH:
        return _all(f"input produced by a chain of more than {MAX_DEPTH} ops")
    name = type(fn).__name__
    try:
        if name == "ReluBackward0":
            return Needed(RELU(fn._saved_result))
        if name == "HardtanhBackward0":
            return Needed(Band(float(fn._saved_min_val), float(fn._saved_max_val))(fn._saved_self))
        if name == "ThresholdBackward0":
            return Needed(fn._saved_self > fn._saved_threshold)
        if name in _MAX_POOLS:
            return _max_pool(fn, _MAX_POOLS[name], depth)
        if name in ("AvgPool2DBackward0", "AvgPool3DBackward0"):
            return _avg_pool(fn, name, depth)
        if name in ("AdaptiveAvgPool2DBackward0", "AdaptiveAvgPool3DBackward0"):
            return _adaptive_avg_pool(fn, name, shape, depth)
        if name in ("MeanBackward0", "MeanBackward1"):
            return _mean(fn, name, shape, depth)
        if name in ("MulBackward0", "MulBackward1"):
            return _mul_by_constant(fn, name, shape, depth)
        if name in _MOVES:
            return _moved(fn, nr, shape, depth)
    except RuntimeError as exc:  # a saved tensor was modified in place after it was saved
        if "modified by an inplace operation" in str(exc):
            return _all(f"input of {_label(fn)} modified in place")
        raise
    return _all(f"input produced by {_label(fn)}")


def _below(fn, index: int, shape: tuple[int, ...], depth: int) -> Needed:
    nxt, nr = fn.next_functions[index]
    return _needed(nxt, nr, shape, depth + 1)


def _max_pool(fn, spatial: int, depth: int) -> Needed:
    source = fn._saved_self
    below = _below(fn, 0, tuple(source.shape), depth)
    if below.mask is None:
        return below
    indices = fn._saved_result1
    planes = below.mask.flatten(-spatial)
    taken = planes.gather(-1, indices.flatten(-spatial))
    return Needed(taken.view(indices.shape))


def _avg_pool(fn, name: str, depth: int) -> Needed:
    source = fn._saved_self
    below = _below(fn, 0, tuple(source.shape), depth)
    if below.mask is None:
        return below
    pool = F.avg_pool2d if name == "AvgPool2DBackward0" else F.avg_pool3d
    pooled = pool(
        below.mask.to(torch.float32),
        fn._saved_kernel_size,
        fn._saved_stride,
        fn._saved_padding,
        fn._saved_ceil_mode,
        fn._saved_count_include_pad,
        fn._saved_divisor_override,
    )
    return Needed(pooled > 0)


def _adaptive_avg_pool(fn, name: str, shape: tuple[int, ...], depth: int) -> Needed:
    source = fn._saved_self
    below = _below(fn, 0, tuple(source.shape), depth)
    if below.mask is None:
        return below
    spatial = 2 if name == "AdaptiveAvgPool2DBackward0" else 3
    pool = F.adaptive_avg_pool2d if spatial == 2 else F.adaptive_avg_pool3d
    return Needed(pool(below.mask.to(torch.float32), shape[-spatial:]) > 0)


def _mean(fn, name: str, shape: tuple[int, ...], depth: int) -> Needed:
    sizes = tuple(int(s) for s in fn._saved_self_sym_sizes)
    below = _below(fn, 0, sizes, depth)
    if below.mask is None:
        return below
    as_int = below.mask.to(torch.uint8)
    if name == "MeanBackward0":
        return Needed(as_int.amax().bool().reshape(shape))
    # negative dims come back as unsigned 64-bit numbers
    dims = tuple((int(d) - (1 << 64) if int(d) >= 1 << 63 else int(d)) % len(sizes) for d in fn._saved_dim)
    dims = dims or tuple(range(len(sizes)))
    return Needed(as_int.amax(dim=dims, keepdim=bool(fn._saved_keepdim)).bool())


def _mul_by_constant(fn, name: str, shape: tuple[int, ...], depth: int) -> Needed:
    """x · c with c needing no gradient: the gradient of x is dY · c, zero where c is."""
    if name == "MulBackward1":  # a Python number
        factor = torch.tensor(fn._saved_other)
        index = 0
    else:
        grads = [nxt is not None for nxt, _ in fn.next_functions]
        if grads.count(True) != 1:
            return _all("input produced by mul")
        index = grads.index(True)
        factor = fn._saved_other if index == 0 else fn._saved_self
        if factor is None:
            return _all("input produced by mul")
    sent = fn(torch.zeros(shape, dtype=torch.float64))
    sent = sent if isinstance(sent, tuple) else (sent,)
    if sent[index] is None or tuple(sent[index].shape) != tuple(shape):
        return _all("input produced by mul (broadcast)")
    below = _below(fn, index, shape, depth)
    if below.mask is None:
        return below
    if torch.broadcast_shapes(below.mask.shape, factor.shape) != torch.Size(shape):
        return _all("input produced by mul (broadcast)")
    return Needed((below.mask & (factor != 0)).expand(shape).contiguous())


def _moved(fn, nr: int, shape: tuple[int, ...], depth: int) -> Needed:
    """Ops that only move elements: send positions 1…numel back through the node's own backward."""
    numel = 1
    for s in shape:
        numel *= s
    outputs = [tuple(m.shape) for m in fn._input_metadata]
    probe = torch.arange(1, numel + 1, dtype=torch.float64).reshape(shape)
    grads = [probe if i == nr else torch.zeros(s, dtype=torch.float64) for i, s in enumerate(outputs)]
    sent = fn(*grads)
    sent = sent if isinstance(sent, tuple) else (sent,)
    out = torch.zeros(numel, dtype=torch.bool)
    found_any = False
    reasons = []
    for index, positions in enumerate(sent):
        if positions is None:
            continue
        nxt = fn.next_functions[index][0]
        below = _needed(nxt, fn.next_functions[index][1], tuple(positions.shape), depth + 1)
        hit = positions > 0
        if not bool(hit.any()):
            continue
        targets = positions[hit].to(torch.int64) - 1
        if below.mask is None:
            reasons.append(below.reason)
            out[targets] = True
        else:
            found_any = True
            out[targets] = below.mask.expand(positions.shape)[hit]
    if not found_any:
        return _all(next((r for r in reasons if r), f"input produced by {_label(fn)}"))
    return Needed(out.view(shape))


_PASSES = (
    set(_MOVES)
    | set(_MAX_POOLS)
    | {
        "AvgPool2DBackward0",
        "AvgPool3DBackward0",
        "AdaptiveAvgPool2DBackward0",
        "AdaptiveAvgPool3DBackward0",
        "MeanBackward0",
        "MeanBackward1",
        "MulBackward0",
        "MulBackward1",
    }
)
_SOURCES = {"ReluBackward0": "ReLU", "HardtanhBackward0": "Hardtanh", "ThresholdBackward0": "threshold"}


def describe_producer(x: torch.Tensor) -> str:
    """What made a layer's input, as the autograd graph says: "MaxPool2DWithIndices ← ReLU"."""
    if not x.requires_grad or x.grad_fn is None:
        return "network input"
    steps, fn = [], x.grad_fn
    for _ in range(8):
        name = type(fn).__name__
        if name in _SOURCES:
            steps.append(_SOURCES[name])
            break
        if name not in _PASSES:
            steps.append(_label(fn))
            break
        if name not in _MOVES:
            steps.append(_label(fn))
        fn = next((n for n, _ in fn.next_functions if n is not None), None)
        if fn is None:
            steps.append("network input")
            break
    return " ← ".join(steps) if steps else _label(x.grad_fn)
