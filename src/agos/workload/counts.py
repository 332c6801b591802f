"""Exact work counts: how many multiply-accumulates each skipping policy does, per output element
and in total, in each pass of a layer (DESIGN.md §1, §2, §4).

Every count is a per-*position* stream length in the §4 mapping; the per-output counts follow from
it by broadcasting over channels. The stream lengths are convolutions of binary masks with all-ones
kernels — never an enumeration of MACs — so that a whole ResNet-50 batch costs less than a training
step:

- FWD       position (n, p, q) of group g, stream = X taps (c in g, valid r, s):
            `fwd_nonzero` = box sum over the R×S taps of Σ_{c∈g} X≠0.
- BWD-D     position (n, h, w) of group g, stream = dY taps (k in g, r, s) reaching it (scatter form:
            stride holes and padding are never work): `bwd_data_nonzero` = the transposed box sum
            (each dY position scattered onto the R×S input pixels it reaches) of Σ_{k∈g} dY≠0.
- BWD-W     position = weight tap (c, r, s), stream = X at that tap over every valid (n, p, q):
            `bwd_weight_nonzero` = Σ over output pixels of Σ_n X≠0 at each tap;
            `bwd_weight_both` (X and dY both nonzero) = the weight gradient of the two binary masks.

Policies. `dense` forms every product over valid taps (BWD-D is 0 for a layer that needs no BWD-D:
nobody is charged for the first layer's). `input` skips zero operands of the shared stream: X in
FWD, dY in BWD-D, and **X in BWD-W** (X is the stream broadcast along a row in §4's BWD-W mapping;
dY is each PE's own operand). `output` skips the dX elements the needed-dX mask drops (BWD-D only:
every Y and every dW is needed). `input+output` does both; in BWD-W it counts a product only where X
and dY are both nonzero (PE skip).

Precision. The all-ones convolutions are separable integer box sums (R + S strided slice additions
in the narrowest integer type that holds the largest possible count): exact by construction. The
two-sided BWD-W count is a real weight-gradient convolution of 0/1 floats. Its counts are sums of
0/1 products, so every partial sum of a plain summation is an integer no larger than the final
count: fp32 is exact while N·P·Q (the largest possible count) stays below 2^24, and agos computes in
float64 (exact below 2^53) above that. Because a backend may use an algorithm that does not form
plain sums (Winograd, FFT, TF32/bf16 "fast fp32" modes — which agos switches off while counting),
every result is also checked: it must be integral and in range, and its sum must equal an
independent int64 figure, Σ_{n,g,p,q} (Σ_{k∈g} dY≠0) · fwd_nonzero. A result failing either check is
recomputed in float64; failing again is a bug and raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import torch

from agos.workload.boxsum import (
    Array,
    Axis,
    axes_of,
    box_scatter,
    box_sum,
    exact_arithmetic,
    from_full,
    int64_tensor,
    int_dtype,
    tap_sums,
    to_full,
)
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks
from agos.workload.passes import MAPPINGS, PassMapping, mapping

POLICIES = ("dense", "input", "output", "input+output")

FP32_EXACT = 2**24  # every integer below this is representable in float32
FP64_EXACT = 2**53


def _dtype_for(bound: int) -> torch.dtype:
    if bound < FP32_EXACT:
        return torch.float32
    if bound < FP64_EXACT:
        return torch.float64
    raise OverflowError(f"a count may reach {bound}, beyond exact float64 arithmetic")


class InexactCountError(RuntimeError):
    """A count failed its integrality or checksum test even in float64 (a bug, never user error)."""


def _exact(
    compute, bound: int, checksum, what: str, into: torch.Tensor | None = None, rows=None
) -> torch.Tensor:
    """Run `compute(dtype)` in the cheapest exact dtype; verify; fall back to float64 once.

    `checksum(total) -> bool` compares the sum of the counts with an independent int64 figure. On the
    CPU the counts are written as they are checked: into rows `rows` of `into` ([K, ·] int64) when
    given (each row of the layer's result written once), else into a new tensor shaped as the
    result."""
    dtypes = [_dtype_for(bound)]
    if dtypes[0] != torch.float64:
        dtypes.append(torch.float64)
    for dtype in dtypes:
        out = compute(dtype)
        if out.device.type != "cpu":
            counts = _integral_counts(out, bound)
            if counts is not None and checksum(int(counts.sum())):
                return counts
            continue
        values = np.ascontiguousarray(out.numpy()).reshape(out.shape[0], -1)
        dest = into if into is not None else torch.empty(values.shape, dtype=torch.int64)
        at = rows if into is not None else np.arange(values.shape[0], dtype=np.int64)
        ok, total = _as_counts(values, float(bound), dest.numpy(), at)
        if ok and checksum(total):
            return dest if into is not None else dest.reshape(out.shape)
    raise InexactCountError(f"{what}: convolution counts are not exact even in float64")


def _integral_counts(out: torch.Tensor, bound: int) -> torch.Tensor | None:
    """`out` (CUDA) as int64 counts when every value is an integer in [0, bound], else None."""
    rounded = out.round()
    if torch.equal(rounded, out) and (out.numel() == 0 or (out.min() >= 0 and out.max() <= bound)):
        return rounded.to(torch.int64)
    return None


@numba.njit(cache=True)
def _as_counts(values, bound, dest, rows):
    """Writes row r of `values` [k, L] (floats) to row rows[r] of `dest` as int64 and returns (True,
    their sum) when each is an integer in [0, bound]; (False, ·) at the first that is not (NaN fails
    every comparison). One pass, where torch's round, compare, min, max, cast and sum are six."""
    total = 0
    for r in range(values.shape[0]):
        to = rows[r]
        for i in range(values.shape[1]):
            v = values[r, i]
            if not (v >= 0 and v <= bound and v == np.floor(v)):
                return False, total
            dest[to, i] = np.int64(v)
            total += np.int64(v)
    return True, total


def _count(mask: torch.Tensor, dims: tuple[int, ...], bound: int | None = None) -> Array:
    """Exact counts of True over `dims` of a bool mask. On the CPU a numpy array, summed with the
    narrowest accumulator that cannot overflow (an order of magnitude faster than torch's bool sums)
    and returned in the narrowest type that holds `bound` (default: the counts themselves); on CUDA a
    tensor. `_count_int64` gives int64 tensors."""
    most = math.prod(mask.shape[d] for d in dims)
    if mask.device.type != "cpu":
        return mask.sum(dims, dtype=int_dtype(max(most, bound or 0), mask))
    acc = next(t for t in (np.uint8, np.uint16, np.uint32, np.int64) if most <= np.iinfo(t).max)
    counts = np.asarray(np.sum(mask.numpy().view(np.uint8), axis=dims, dtype=acc))
    return counts.astype(int_dtype(max(most, bound or 0), counts), copy=False)


def _count_int64(mask: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return int64_tensor(_count(mask, dims, 2**62))


def _as_float(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as 0/1 floats (numpy's cast is several times faster than torch's on the CPU)."""
    if mask.device.type != "cpu":
        return mask.to(dtype)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    return torch.from_numpy(mask.numpy().view(np.uint8).astype(np_dtype))


# -- the work of one layer ---------------------------------------------------------------------


@dataclass
class LayerWork:
    """Per-work-item stream lengths (DESIGN.md §4 mapping) from which every per-output count follows."""

    name: str
    geometry: LayerGeometry
    needs_bwd_data: bool
    # FWD: a position is (n, p, q) in group g; its stream is the X taps (c in g, valid r, s)
    fwd_dense: torch.Tensor  # int64 [P, Q]       = C_g × valid taps at (p, q)
    fwd_nonzero: torch.Tensor  # int64 [N, G, P, Q] nonzero X among those taps
    # BWD-D (scatter form): a position is (n, h, w) in group g; its stream is the dY taps (k in g, r, s)
    # that reach it
    bwd_data_dense: torch.Tensor  # int64 [H, W]      = K_g × reaching taps (stride holes / padding excluded)
    bwd_data_nonzero: torch.Tensor  # int64 [N, G, H, W] nonzero dY among them
    dx_needed: torch.Tensor  # bool [N, C, H, W]
    # BWD-W: a position is a weight tap (c, r, s); its stream is X at that tap over valid (n, p, q)
    bwd_weight_dense: torch.Tensor  # int64 [R, S]      = N × valid p for r × valid q for s
    bwd_weight_nonzero: torch.Tensor  # int64 [C, R, S]   nonzero X over (n, p, q)
    bwd_weight_both: torch.Tensor  # int64 [K, C_g, R, S] products with X and dY both nonzero

    # -- per output element -------------------------------------------------------------------

    def per_output(self, pass_: str, policy: str) -> torch.Tensor:
        """MACs per output element (int64), shaped like the pass's output (workload.passes):
        FWD [N,K,P,Q], BWD-D [N,C,H,W], BWD-W [K,C_g,R,S]. Every channel of a position's group
        walks the position's stream: the per-group counts repeat over its channels."""
        m = _check(pass_, policy)
        g = self.geometry
        shape = m.output_shape(g)
        if pass_ == "bwd_data" and not self.needs_bwd_data:
            return torch.zeros(shape, dtype=torch.int64)
        if policy in ("dense", "output"):
            counts = self._dense(m).expand(shape)
        elif policy == "input+output" and m.two_sided:  # a product only where both operands are nonzero
            counts = self.bwd_weight_both
        else:
            grouped = self._nonzero(m).reshape(m.grouped_shape(g))
            counts = grouped.repeat_interleave(m.channels_per_group(g), dim=m.group_axis).reshape(shape)
        if m.output_skip and policy in ("output", "input+output"):
            return counts * self.dx_needed
        return counts.clone()

    # -- the streams of the positions (the cost model's layout) ------------------------------

    def _dense(self, m: PassMapping) -> torch.Tensor:
        """The dense stream length of a position, indexed by its position without the leading
        dimension (the same for every n (FWD, BWD-D) or c (BWD-W)): fwd_dense, bwd_data_dense, …"""
        return getattr(self, f"{m.name}_dense")

    def _nonzero(self, m: PassMapping) -> torch.Tensor:
        return getattr(self, f"{m.name}_nonzero")

    def stream_lengths(self, pass_: str) -> torch.Tensor:
        """T of every position of a group, raster order (workload.passes), int64 [positions]."""
        m = mapping(pass_)
        return self._dense(m)[None].expand(m.position_shape(self.geometry)).reshape(-1)

    def stream_nonzero(self, pass_: str) -> torch.Tensor:
        """s (nonzero stream entries) per group and position, raster order, int64 [G, positions]."""
        m = mapping(pass_)
        g = self.geometry
        grouped = self._nonzero(m).reshape(m.grouped_shape(g))
        return grouped.movedim(m.group_axis, 0).reshape(g.groups, -1)

    # -- totals (never materialise the per-output arrays) -----------------------------------

    def total(self, pass_: str, policy: str) -> int:
        _check(pass_, policy)
        return self.totals[pass_][policy]

    @cached_property
    def totals(self) -> dict[str, dict[str, int]]:
        g = self.geometry

        def total(t: torch.Tensor) -> int:  # numpy's int64 sums are far faster than torch's on the CPU
            return int(t.numpy().sum(dtype=np.int64)) if t.device.type == "cpu" else int(t.sum())

        out = {}
        for m in MAPPINGS.values():  # every channel of the pass walks its position's stream
            dense_t = self._dense(m)
            dense = m.channels(g) * (m.positions(g) // dense_t.numel()) * total(dense_t)
            one_sided = m.channels_per_group(g) * total(self._nonzero(m))
            both = total(self.bwd_weight_both) if m.two_sided else one_sided
            out[m.name] = {"dense": dense, "input": one_sided, "output": dense, "input+output": both}
        if self.needs_bwd_data:  # output skipping (BWD-D): only the needed dX elements
            needed = _count_int64(self.dx_needed.reshape(g.n, g.groups, g.c_per_group, g.h, g.w), (2,))
            out["bwd_data"]["output"] = total(self.bwd_data_dense * needed.sum((0, 1)))
            out["bwd_data"]["input+output"] = total(self.bwd_data_nonzero * needed)
        else:  # nobody is charged for the first layer's BWD-D
            out["bwd_data"] = dict.fromkeys(POLICIES, 0)
        return out


def _check(pass_: str, policy: str) -> PassMapping:
    m = mapping(pass_)
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    return m


def layer_work(masks: LayerMasks, shortcuts: bool = True) -> LayerWork:
    """Exact stream lengths of one layer from its masks (CPU or CUDA tensors; results on CPU).

    `shortcuts=False` convolves every output channel for the BWD-W both-nonzero count, even those whose
    dY is all nonzero or all zero (same result, slower: for tests and benchmarks)."""
    with exact_arithmetic(masks.geometry.macs):
        return _layer_work(masks, shortcuts)


def _layer_work(masks: LayerMasks, shortcuts: bool) -> LayerWork:
    g = masks.geometry
    ah, aw = axes_of(g)
    G, Cg, Kg = g.groups, g.c_per_group, g.k_per_group
    n = g.n
    x = masks.x_nonzero.reshape(g.x_shape)
    dy = masks.dy_nonzero.reshape(g.y_shape)

    # dense stream lengths: pure index arithmetic
    fwd_dense = Cg * torch.outer(ah.taps_per_output, aw.taps_per_output)
    bwd_data_dense = Kg * torch.outer(ah.reach, aw.reach)
    bwd_weight_dense = n * torch.outer(ah.outputs_per_tap, aw.outputs_per_tap)

    # FWD: per-group channel sums of X≠0, box-summed over the valid taps of each output pixel
    x_group = _count(x.reshape(n, G, Cg, g.h, g.w), (2,), bound=Cg * g.r * g.s)  # [N, G, H, W]
    fwd_nonzero = int64_tensor(box_sum(to_full(x_group, ah, aw), ah, aw))

    # BWD-D: per-group channel sums of dY≠0, scattered onto the input pixels each tap reaches
    dy_group = _count(dy.reshape(n, G, Kg, g.p, g.q), (2,), bound=Kg * g.r * g.s)  # [N, G, P, Q]
    bwd_data_nonzero = int64_tensor(from_full(box_scatter(dy_group, ah, aw), ah, aw))

    # BWD-W, X stream: batch sums of X≠0, summed over every output pixel of each tap
    x_channel = _count(x, (0,), bound=n * g.p * g.q)  # [C, H, W]
    bwd_weight_nonzero = int64_tensor(tap_sums(to_full(x_channel, ah, aw), ah, aw))

    bwd_weight_both = _both(masks.name, g, x, dy, fwd_nonzero, bwd_weight_nonzero, ah, aw, shortcuts)

    return LayerWork(
        name=masks.name,
        geometry=g,
        needs_bwd_data=masks.needs_bwd_data,
        fwd_dense=fwd_dense,
        fwd_nonzero=fwd_nonzero.cpu(),
        bwd_data_dense=bwd_data_dense,
        bwd_data_nonzero=bwd_data_nonzero.cpu(),
        dx_needed=masks.dx_needed.reshape(g.x_shape).cpu(),
        bwd_weight_dense=bwd_weight_dense,
        bwd_weight_nonzero=bwd_weight_nonzero.cpu(),
        bwd_weight_both=bwd_weight_both.cpu(),
    )


def _both(
    name: str,
    g: LayerGeometry,
    x: torch.Tensor,
    dy: torch.Tensor,
    fwd_nonzero: torch.Tensor,
    bwd_weight_nonzero: torch.Tensor,
    ah: Axis,
    aw: Axis,
    shortcuts: bool = True,
) -> torch.Tensor:
    """[K, C_g, R, S]: products with X≠0 and dY≠0 — the weight gradient of the two binary masks.

    Exact shortcuts first: an output channel whose dY is nonzero everywhere (the usual case when BN
    sits between the conv and its ReLU) pairs with every nonzero X, so its counts are the X-stream
    counts; one whose dY is zero everywhere has none. Only the remaining channels are convolved."""
    G, Cg, Kg = g.groups, g.c_per_group, g.k_per_group
    per_k = _count_int64(dy.reshape(g.n, g.k, -1), (0, 2))  # nonzero dY per output channel
    size = g.n * g.p * g.q
    all_nonzero, all_zero = per_k == size, per_k == 0
    mixed = ~(all_nonzero | all_zero)
    if not shortcuts or bool(mixed.all()) or (G > 1 and bool(mixed.any())):
        # one convolution for every channel (a grouped conv is not split: its groups are small)
        return _both_conv(name, g, x, dy, fwd_nonzero, ah, aw)
    x_stream = bwd_weight_nonzero.reshape(G, 1, Cg, g.r, g.s)  # broadcast over the K_g channels of g
    if x_stream.device.type == "cpu":  # each row written once (a where over R·S-long rows is 10x slower)
        out = torch.empty((G, Kg, Cg * g.r * g.s), dtype=torch.int64)  # torch's memory: no huge-page
        rows = out.numpy()  # advice, whose first touch stalls where huge pages are not to be had
        rows[all_zero.numpy().reshape(G, Kg)] = 0
        group, k = np.nonzero(all_nonzero.numpy().reshape(G, Kg))
        rows[group, k] = x_stream.numpy().reshape(G, -1)[group]
        both = out.reshape(g.k, Cg, g.r, g.s)  # the mixed channels' rows: their convolution, below
    else:
        both = torch.where(all_nonzero.reshape(G, Kg, 1, 1, 1), x_stream, 0).reshape(g.k, Cg, g.r, g.s)
    if bool(mixed.any()):  # ungrouped: convolve the mixed output channels only
        ks = mixed.nonzero().flatten()
        if x_stream.device.type == "cpu":  # their counts written into their rows as they are checked
            rows_of = (out.reshape(g.k, -1), ks.numpy())
            _both_conv(name, g, x, dy[:, ks.to(dy.device)], fwd_nonzero, ah, aw, *rows_of)
        else:
            both[ks] = _both_conv(name, g, x, dy[:, ks.to(dy.device)], fwd_nonzero, ah, aw)
    return both


def _native_padding(ax: Axis) -> bool:
    """True when PyTorch's symmetric padding by `pad` yields exactly `out` outputs on this axis."""
    return (ax.size + 2 * ax.pad - ax.dil * (ax.kernel - 1) - 1) // ax.stride + 1 == ax.out


def _both_conv(
    name: str,
    g: LayerGeometry,
    x: torch.Tensor,
    dy_sel: torch.Tensor,
    fwd_nonzero: torch.Tensor,
    ah: Axis,
    aw: Axis,
    into: torch.Tensor | None = None,
    rows: np.ndarray | None = None,
) -> torch.Tensor:
    """Weight gradient of binary masks for the selected output channels of `g` (all of them when
    grouped), exact; checked against Σ_{n,g,p,q} (Σ_{k∈g} dY) · fwd_nonzero, which equals the sum of
    every count. With `into`, the counts go to its rows `rows` (`_exact`)."""
    ksel = dy_sel.shape[1]
    cg = g.c_per_group
    one_by_one = g.r == g.s == 1 and g.stride == (1, 1) and g.padding == (0, 0)
    one_by_one = one_by_one and g.groups == 1 and (g.p, g.q) == (g.h, g.w)
    native = _native_padding(ah) and _native_padding(aw)

    def compute(dtype):
        xf, dyf = _as_float(x, dtype), _as_float(dy_sel, dtype)
        if one_by_one:  # a GEMM over (n, p, q): dY^T · X
            xm = xf.permute(1, 0, 2, 3).reshape(g.c, -1)
            dm = dyf.permute(1, 0, 2, 3).reshape(ksel, -1)
            return (dm @ xm.T).reshape(ksel, cg, 1, 1)
        padding = g.padding if native else (0, 0)
        if not native:
            xf = to_full(xf, ah, aw)
        return torch.nn.grad.conv2d_weight(
            xf,
            (ksel, cg, g.r, g.s),
            dyf,
            stride=g.stride,
            padding=padding,
            dilation=g.dilation,
            groups=g.groups,
        )

    dy_per_group = _count_int64(dy_sel.reshape(g.n, g.groups, ksel // g.groups, g.p, g.q), (2,))
    expected = int((dy_per_group * fwd_nonzero.to(dy_per_group.device)).sum())
    what = f"{name} BWD-W (X and dY)"
    return _exact(compute, g.n * g.p * g.q, lambda total: total == expected, what, into, rows)
