"""Which graph ops carry output sparsity (DESIGN.md §2) and how each transforms a mask.

A "needed" mask marks the elements of a tensor whose gradient can be nonzero upstream; a
layer's dX need only be computed there. Sources of sparsity are ReLU-like ops (their local
derivative is zero where the output is clamped); pooling, dropout and shape ops carry masks;
everything else is conservative (all elements needed).
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F
from torch import fx, nn


class OpKind(Enum):
    BAND = "band"  # ReLU, ReLU6, Hardtanh: zero derivative where the output is clamped
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    DROPOUT = "dropout"
    SHAPE = "shape"  # view, flatten, permute, getitem…: elements are moved, never mixed
    CAT = "cat"
    INPUT = "input"
    OTHER = "other"


@dataclass(frozen=True)
class Band:
    """The output values lo < v < hi have a nonzero local derivative; clamped ones do not."""

    lo: float = 0.0
    hi: float = float("inf")

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        inside = value > self.lo
        if self.hi != float("inf"):
            inside &= value < self.hi
        return inside

    @property
    def label(self) -> str:
        if self.hi == float("inf") and self.lo == 0:
            return "ReLU"
        if self.lo == 0 and self.hi == 6:
            return "ReLU6"
        return f"Hardtanh({self.lo:g}, {self.hi:g})"


RELU = Band()


@dataclass(frozen=True)
class OpInfo:
    kind: OpKind
    label: str  # how reports name the op: "ReLU", "MaxPool2d", "BatchNorm2d", "add", …
    band: Band | None = None
    dropout_active: bool = False  # a training-mode dropout with p > 0
    inplace: bool = False


_MAXPOOL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
_AVGPOOL_MODULES = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_DROPOUT_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_SHAPE_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.ChannelShuffle)

_RELU_FUNCS = {torch.relu, torch.relu_, F.relu, F.relu_}
_HARDTANH_FUNCS = {F.hardtanh, F.hardtanh_}
_MAXPOOL_FUNCS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    torch.max_pool1d,
    torch.max_pool2d,
    torch.max_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
}
_AVGPOOL_FUNCS = {
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    torch.avg_pool1d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    torch.mean,
}
_DROPOUT_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.dropout}
_SHAPE_FUNCS = {
    torch.flatten,
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.permute,
    torch.transpose,
    torch.swapaxes,
    torch.narrow,
    torch.chunk,
    torch.split,
    torch.clone,
    torch.channel_shuffle,
    operator.getitem,
}
_CAT_FUNCS = {torch.cat, torch.concat, torch.concatenate}
_SHAPE_METHODS = {
    "view",
    "reshape",
    "flatten",
    "contiguous",
    "permute",
    "transpose",
    "swapaxes",
    "squeeze",
    "unsqueeze",
    "clone",
    "chunk",
    "split",
    "narrow",
    "view_as",
    "reshape_as",
}
_RELU_METHODS = {"relu", "relu_"}
_AVGPOOL_METHODS = {"mean"}
_INPLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _bound(fn, node: fx.Node) -> dict:
    """The call's arguments by name (defaults filled), for functions with Python signatures."""
    try:
        sig = inspect.signature(fn)
        bound = sig.bind(*node.args, **node.kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)
    except (TypeError, ValueError):
        return dict(node.kwargs)


def _fn_name(target) -> str:
    name = getattr(target, "__name__", None) or str(target)
    return "max_pool" if name == "fn" else name  # F.max_pool*d are boolean_dispatch wrappers


def classify(node: fx.Node, modules: dict[str, nn.Module]) -> OpInfo:
    """What `node` does to the gradient sparsity of its output."""
    if node.op == "placeholder":
        return OpInfo(OpKind.INPUT, "network input")
    if node.op == "call_module":
        mod = modules[node.target]
        label = type(mod).__name__
        inplace = bool(getattr(mod, "inplace", False))
        if isinstance(mod, nn.ReLU):
            return OpInfo(OpKind.BAND, label, band=RELU, inplace=inplace)
        if isinstance(mod, nn.Hardtanh):  # ReLU6 included
            return OpInfo(OpKind.BAND, label, band=Band(mod.min_val, mod.max_val), inplace=inplace)
        if isinstance(mod, _MAXPOOL_MODULES) and not getattr(mod, "return_indices", False):
            return OpInfo(OpKind.MAXPOOL, label)
        if isinstance(mod, _AVGPOOL_MODULES):
            return OpInfo(OpKind.AVGPOOL, label)
        if isinstance(mod, _DROPOUT_MODULES):
            return OpInfo(OpKind.DROPOUT, label, dropout_active=mod.training and mod.p > 0, inplace=inplace)
        if isinstance(mod, _SHAPE_MODULES):
            return OpInfo(OpKind.SHAPE, label)
        return OpInfo(OpKind.OTHER, label, inplace=inplace)
    if node.op == "call_function":
        fn = node.target
        name = _fn_name(fn)
        if fn in _RELU_FUNCS:
            inplace = fn in (torch.relu_, F.relu_) or bool(_bound(fn, node).get("inplace", False))
            return OpInfo(OpKind.BAND, "ReLU", band=RELU, inplace=inplace)
        if fn is F.relu6:
            return OpInfo(
                OpKind.BAND,
                "ReLU6",
                band=Band(0.0, 6.0),
                inplace=bool(_bound(fn, node).get("inplace", False)),
            )
        if fn in _HARDTANH_FUNCS:
            args = _bound(fn, node)
            band = Band(float(args.get("min_val", -1.0)), float(args.get("max_val", 1.0)))
            return OpInfo(
                OpKind.BAND,
                band.label,
                band=band,
                inplace=fn is F.hardtanh_ or bool(args.get("inplace", False)),
            )
        if fn in _MAXPOOL_FUNCS:
            if _bound(fn, node).get("return_indices", False):
                return OpInfo(OpKind.OTHER, name)
            return OpInfo(OpKind.MAXPOOL, name)
        if fn in _AVGPOOL_FUNCS:
            return OpInfo(OpKind.AVGPOOL, name)
        if fn in _DROPOUT_FUNCS:
            args = _bound(fn, node)
            p = float(args.get("p", 0.5))
            train = bool(args.get("training", args.get("train", True)))
            return OpInfo(
                OpKind.DROPOUT, name, dropout_active=train and p > 0, inplace=bool(args.get("inplace", False))
            )
        if fn in _CAT_FUNCS:
            return OpInfo(OpKind.CAT, "cat")
        if fn in _SHAPE_FUNCS:
            return OpInfo(OpKind.SHAPE, name)
        return OpInfo(OpKind.OTHER, name, inplace=fn in _INPLACE_OPERATORS)
    if node.op == "call_method":
        name = str(node.target)
        if name in _RELU_METHODS:
            return OpInfo(OpKind.BAND, "ReLU", band=RELU, inplace=name.endswith("_"))
        if name in _SHAPE_METHODS:
            return OpInfo(OpKind.SHAPE, name)
        if name in _AVGPOOL_METHODS:
            return OpInfo(OpKind.AVGPOOL, name)
        return OpInfo(OpKind.OTHER, name, inplace=name.endswith("_") and not name.startswith("_"))
    return OpInfo(OpKind.OTHER, str(node.op))


def tensor_inputs(node: fx.Node, info: OpInfo) -> list[fx.Node]:
    """The inputs whose masks the op carries to its output (empty for sources)."""
    if info.kind == OpKind.CAT:
        parts = node.args[0] if node.args else node.kwargs.get("tensors", ())
        return [p for p in parts if isinstance(p, fx.Node)]
    if info.kind in (OpKind.MAXPOOL, OpKind.AVGPOOL, OpKind.DROPOUT, OpKind.SHAPE):
        first = node.args[0] if node.args else next(iter(node.kwargs.values()), None)
        return [first] if isinstance(first, fx.Node) else []
    return []
