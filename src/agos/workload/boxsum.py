"""Integer box sums — convolutions of binary masks with all-ones kernels, exact by construction —
and the per-axis index arithmetic they share: what `workload.counts` (whole passes) and
`workload.chunks` (stream blocks) both count with. They run on numpy arrays (CPU) or torch tensors
(CUDA) with the same slicing code."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from agos.workload.layer import LayerGeometry

# -- per-axis index arithmetic (exact, integer) ------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One spatial axis: output index o, kernel index t, input index i = o·stride + t·dil − pad."""

    out: int
    size: int
    kernel: int
    stride: int
    pad: int
    dil: int

    @cached_property
    def _valid(self) -> tuple[torch.Tensor, torch.Tensor]:
        pos = (
            torch.arange(self.out, dtype=torch.int64)[:, None] * self.stride
            + torch.arange(self.kernel, dtype=torch.int64)[None, :] * self.dil
            - self.pad
        )
        return pos, (pos >= 0) & (pos < self.size)

    @property
    def taps_per_output(self) -> torch.Tensor:  # [out]: kernel indices landing inside the input
        return self._valid[1].sum(1)

    @property
    def outputs_per_tap(self) -> torch.Tensor:  # [kernel]: output indices at which the tap is inside
        return self._valid[1].sum(0)

    @property
    def reach(self) -> torch.Tensor:  # [size]: (output, kernel) pairs landing on each input index
        pos, valid = self._valid
        return torch.bincount(pos[valid], minlength=self.size)

    @property
    def full(self) -> int:
        """Length of the zero-padded input a padding-free convolution reads:
        (out − 1)·stride + (kernel − 1)·dil + 1."""
        return (self.out - 1) * self.stride + (self.kernel - 1) * self.dil + 1


def axes_of(g: LayerGeometry) -> tuple[Axis, Axis]:
    return (
        Axis(g.p, g.h, g.r, g.stride[0], g.padding[0], g.dilation[0]),
        Axis(g.q, g.w, g.s, g.stride[1], g.padding[1], g.dilation[1]),
    )


def shift(t: torch.Tensor, offset_h: int, offset_w: int, size_h: int, size_w: int) -> torch.Tensor:
    """out[.., i, j] = t[.., i − offset_h, j − offset_w] where that index exists, else 0;
    shape [.., size_h, size_w]."""
    out = zeros(t, (*t.shape[:-2], size_h, size_w))
    src_h, src_w = t.shape[-2], t.shape[-1]
    h0, h1 = max(0, offset_h), min(size_h, src_h + offset_h)
    w0, w1 = max(0, offset_w), min(size_w, src_w + offset_w)
    if h1 > h0 and w1 > w0:
        out[..., h0:h1, w0:w1] = t[..., h0 - offset_h : h1 - offset_h, w0 - offset_w : w1 - offset_w]
    return out


def to_full(t: torch.Tensor, ah: Axis, aw: Axis) -> torch.Tensor:
    """Input-indexed [.., H, W] → padded [.., full_h, full_w] (index i + pad); zeros where padded,
    cropped where the input extends beyond the last tap."""
    if ah.pad == aw.pad == 0 and ah.full == ah.size and aw.full == aw.size:
        return t
    return shift(t, ah.pad, aw.pad, ah.full, aw.full)


def from_full(t: torch.Tensor, ah: Axis, aw: Axis) -> torch.Tensor:
    """Padded [.., full_h, full_w] → input-indexed [.., H, W] (the inverse crop of `to_full`)."""
    if ah.pad == aw.pad == 0 and ah.full == ah.size and aw.full == aw.size:
        return t
    return shift(t, -ah.pad, -aw.pad, ah.size, aw.size)


# -- integer box sums: convolutions with all-ones kernels, exact by construction -----------------
# They run on numpy arrays (CPU: several times faster than torch's small-kernel convolutions here,
# up to 30× for depthwise layers) or torch tensors (CUDA), with the same slicing code.

Array = np.ndarray | torch.Tensor


def zeros(like: Array, shape: tuple[int, ...], dtype=None) -> Array:
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=dtype or like.dtype)
    return like.new_zeros(shape, dtype=dtype or like.dtype)


def copied(a: Array) -> Array:
    return a.copy() if isinstance(a, np.ndarray) else a.clone()


def taps(ax: Axis, t: int) -> slice:
    """Indices o·stride + t·dil of the padded input over all outputs o (one kernel index t)."""
    start = t * ax.dil
    return slice(start, start + (ax.out - 1) * ax.stride + 1, ax.stride)


def box_sum(a: Array, ah: Axis, aw: Axis) -> Array:
    """FWD direction: out[.., o, o'] = Σ_{t, t'} a[.., o·S + t·D, o'·S' + t'·D'] over padded a [.., full_h,
    full_w]; separable, so R + S slice additions."""
    rows = copied(a[..., taps(ah, 0), :])
    for t in range(1, ah.kernel):
        rows += a[..., taps(ah, t), :]
    out = copied(rows[..., taps(aw, 0)])
    for t in range(1, aw.kernel):
        out += rows[..., taps(aw, t)]
    return out


def box_scatter(a: Array, ah: Axis, aw: Axis) -> Array:
    """Transposed direction (BWD-D scatter form): full[.., o·S + t·D, o'·S' + t'·D'] += a[.., o, o'] for
    every tap (t, t'); [.., out_h, out_w] → padded [.., full_h, full_w]."""
    cols = zeros(a, (*a.shape[:-1], aw.full))
    for t in range(aw.kernel):
        cols[..., taps(aw, t)] += a
    full = zeros(a, (*a.shape[:-2], ah.full, aw.full))
    for t in range(ah.kernel):
        full[..., taps(ah, t), :] += cols
    return full


def tap_sums(a: Array, ah: Axis, aw: Axis) -> Array:
    """BWD-W direction: out[.., t, t'] = Σ_{o, o'} a[.., o·S + t·D, o'·S' + t'·D'] → [.., R, S] (the
    same box sum with the roles of taps and outputs swapped)."""
    out = zeros(a, (*a.shape[:-2], ah.kernel, aw.kernel))
    for t in range(ah.kernel):
        rows = a[..., taps(ah, t), :].sum(-2)
        for u in range(aw.kernel):
            out[..., t, u] = rows[..., taps(aw, u)].sum(-1)
    return out


def int_dtype(bound: int, like: Array):
    """The narrowest signed integer type holding every count up to `bound`."""
    bits = next(b for b in (16, 32, 64) if bound < 2 ** (b - 1))
    if isinstance(like, np.ndarray):
        return {16: np.int16, 32: np.int32, 64: np.int64}[bits]
    return {16: torch.int16, 32: torch.int32, 64: torch.int64}[bits]


def int64_tensor(a: Array) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64, copy=False))
    return a.to(torch.int64)


# -- exact float convolutions ------------------------------------------------------------------


SMALL_LAYER_MACS = 4_000_000  # below this: one thread, no oneDNN (their start-up costs more than they save)


def precision_settings() -> list[tuple[object, str, object]]:
    """(object, attribute, exact value): fp32 convolutions and matmuls in IEEE fp32, never TF32/bf16."""
    b = torch.backends
    out = []
    for module in (b.mkldnn.conv, b.mkldnn.matmul, b.cudnn.conv, b.cuda.matmul):
        if hasattr(module, "fp32_precision"):
            out.append((module, "fp32_precision", "ieee"))
    if not out:  # older torch: the legacy switches
        out = [(b.cudnn, "allow_tf32", False), (b.cuda.matmul, "allow_tf32", False)]
    return out


@contextlib.contextmanager
def exact_arithmetic(macs: int):
    """IEEE fp32 throughout; a small layer's handful of tiny convolutions on one thread without
    oneDNN. Every global setting is restored afterwards."""
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in precision_settings()]
    threads, mkldnn = torch.get_num_threads(), torch._C._get_mkldnn_enabled()
    small = macs < SMALL_LAYER_MACS
    try:
        for obj, attr, value in precision_settings():
            setattr(obj, attr, value)
        if small:
            torch.set_num_threads(1)
            torch._C._set_mkldnn_enabled(False)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
        if small:
            torch.set_num_threads(threads)
            torch._C._set_mkldnn_enabled(mkldnn)
