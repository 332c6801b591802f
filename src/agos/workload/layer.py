"""The geometry of a Conv2d or Linear layer, and its dense work per pass.

A Linear layer is the 1×1 case: its rows (the product of all leading input dims) are the batch.
Dense work counts valid taps only: a tap that lands in the zero padding is never work, for any
design, so MACs here are below the textbook N·K·P·Q·C·R·S/g when a layer pads.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import torch
from torch import nn

from agos.errors import AgosError


class CallNames:
    """A layer module called N times in one step is N layers: `name`, `name#2`, …. These are the
    trace's layer names; every part that finds a layer again (recorder, fx plan, verification,
    sparse engine, unmodelled-layer census) must name its calls this one way."""

    def __init__(self) -> None:
        self._calls: Counter[str] = Counter()

    def __call__(self, base: str) -> str:
        self._calls[base] += 1
        n = self._calls[base]
        return base if n == 1 else f"{base}#{n}"

    def clear(self) -> None:
        self._calls.clear()


@dataclass(frozen=True)
class LayerGeometry:
    kind: str  # "conv" | "linear"
    n: int  # batch (rows for a Linear layer)
    c: int  # input channels
    h: int
    w: int
    k: int  # output channels
    p: int  # output height
    q: int  # output width
    r: int  # kernel height
    s: int  # kernel width
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)  # top, left (bottom/right follow from the output size)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False

    def __post_init__(self) -> None:
        """A geometry read from a file is checked here: no zero sizes or groups, groups dividing
        both channel counts (every count and cost divides by them)."""
        if self.kind not in ("conv", "linear"):
            raise ValueError(f"kind must be conv or linear, not {self.kind!r}")
        sizes = {k: getattr(self, k) for k in ("n", "c", "h", "w", "k", "p", "q", "r", "s", "groups")}
        bad = [f"{k}={v}" for k, v in sizes.items() if not isinstance(v, int) or v < 1]
        bad += [f"stride={self.stride}"] if min(self.stride) < 1 else []
        bad += [f"dilation={self.dilation}"] if min(self.dilation) < 1 else []
        bad += [f"padding={self.padding}"] if min(self.padding) < 0 else []
        if bad:
            raise ValueError(f"impossible layer geometry ({', '.join(bad)})")
        if self.c % self.groups or self.k % self.groups:
            raise ValueError(f"groups={self.groups} does not divide c={self.c} and k={self.k}")

    @property
    def c_per_group(self) -> int:
        return self.c // self.groups

    @property
    def k_per_group(self) -> int:
        return self.k // self.groups

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.p, self.q)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c_per_group, self.r, self.s)

    @property
    def x_numel(self) -> int:
        return math.prod(self.x_shape)

    @property
    def y_numel(self) -> int:
        return math.prod(self.y_shape)

    @property
    def w_numel(self) -> int:
        return math.prod(self.w_shape)

    def valid_pairs(self, axis: int) -> int:
        """How many (output index, kernel index) pairs along one axis land inside the input."""
        out, size, kernel = (self.p, self.h, self.r) if axis == 0 else (self.q, self.w, self.s)
        stride, pad, dil = self.stride[axis], self.padding[axis], self.dilation[axis]
        return sum(1 for o in range(out) for t in range(kernel) if 0 <= o * stride + t * dil - pad < size)

    @property
    def macs(self) -> int:
        """Dense MACs of one pass (FWD = BWD-D in scatter form = BWD-W), valid taps only."""
        return self.n * self.k * self.c_per_group * self.valid_pairs(0) * self.valid_pairs(1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stride"], d["padding"], d["dilation"] = (list(d[k]) for k in ("stride", "padding", "dilation"))
        return d


def _conv_padding(module: nn.Conv2d) -> tuple[int, int]:
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return (0, 0)
        # 'same': PyTorch puts the smaller half of the total padding on top/left.
        return tuple(  # type: ignore[return-value]
            module.dilation[i] * (module.kernel_size[i] - 1) // 2 for i in range(2)
        )
    return (int(module.padding[0]), int(module.padding[1]))


def static_padding(module: nn.Module) -> tuple[int, int, int, int] | None:
    """(left, right, top, bottom) zero padding that a Conv2d subclass applies in its own forward
    before the convolution (TensorFlow-style static "same" padding: `module.static_padding`)."""
    pad = getattr(module, "static_padding", None)
    if isinstance(pad, nn.Identity) or (  # the 1×1 and "valid" cases (libraries ship their own)
        isinstance(pad, nn.Module) and type(pad).__name__ == "Identity" and not list(pad.parameters())
    ):
        return 0, 0, 0, 0
    if isinstance(pad, nn.ZeroPad2d) or (isinstance(pad, nn.ConstantPad2d) and pad.value == 0):
        left, right, top, bottom = (int(v) for v in pad.padding)
        return left, right, top, bottom
    return None


def conv_input(module: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The tensor the module's own `_conv_forward` sees: X with its static padding, if any."""
    pad = static_padding(module)
    return x if pad is None or not any(pad) else torch.nn.functional.pad(x, pad)


def own_forward(module: nn.Module) -> bool:
    """True when the layer is a subclass with a forward of its own (not torch's Conv2d/Linear)."""
    base = nn.Conv2d if isinstance(module, nn.Conv2d) else nn.Linear
    return type(module).forward is not base.forward


def _out_size(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def geometry_of(module: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str) -> LayerGeometry:
    """Geometry from the module and the tensors of one real call."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            raise AgosError(f"layer {name} pads with '{module.padding_mode}'; agos models zero padding only")
        if x.dim() != 4:
            raise AgosError(f"layer {name} got a {x.dim()}-D input; agos expects batched 4-D conv inputs")
        n, c, h, w = x.shape
        _, k, p, q = y.shape
        padding = _conv_padding(module)
        extra = static_padding(module)
        if extra is not None:
            padding = (padding[0] + extra[2], padding[1] + extra[0])
        if own_forward(module):  # the padding must explain the output size, or the layer is not a conv
            rows = _out_size(
                h,
                2 * _conv_padding(module)[0] + (extra[2] + extra[3] if extra else 0),
                module.kernel_size[0],
                module.stride[0],
                module.dilation[0],
            )
            cols = _out_size(
                w,
                2 * _conv_padding(module)[1] + (extra[0] + extra[1] if extra else 0),
                module.kernel_size[1],
                module.stride[1],
                module.dilation[1],
            )
            if (rows, cols) != (p, q):
                raise AgosError(
                    f"layer {name} ({type(module).__name__}) reshapes its input inside its own forward "
                    f"({h}×{w} → {p}×{q} does not follow from its padding); agos cannot model it"
                )
        return LayerGeometry(
            kind="conv",
            n=n,
            c=c,
            h=h,
            w=w,
            k=k,
            p=p,
            q=q,
            r=module.kernel_size[0],
            s=module.kernel_size[1],
            stride=(module.stride[0], module.stride[1]),
            padding=padding,
            dilation=(module.dilation[0], module.dilation[1]),
            groups=module.groups,
            bias=module.bias is not None,
        )
    if isinstance(module, nn.Linear):
        rows = math.prod(x.shape[:-1]) if x.dim() > 1 else 1
        return LayerGeometry(
            kind="linear",
            n=rows,
            c=module.in_features,
            h=1,
            w=1,
            k=module.out_features,
            p=1,
            q=1,
            r=1,
            s=1,
            bias=module.bias is not None,
        )
    raise TypeError(f"not a Conv2d or Linear layer: {type(module).__name__}")
