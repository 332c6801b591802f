"""Exact sparse arithmetic for Conv2d and Linear: the three passes of a training step computed with
only the work a skipping design would do (DESIGN.md §1–2).

- FWD    Y[n,k,p,q]  = Σ W[k,c,r,s] · X[n,c,h,w]           — zero X operands are skipped.
- BWD-D  dX[n,c,h,w] = Σ W[k,c,r,s] · dY[n,k,p,q]          — scatter form: each *nonzero* dY element
  scatters W·dY into the dX positions its taps reach, and only into *needed* ones (output
  sparsity); every other dX element is exactly zero.
- BWD-W  dW[k,c,r,s] = Σ X[n,c,h,w] · dY[n,k,p,q]          — a product only where both are nonzero.

with h = p·stride + r·dilation − padding (and w likewise). A tap that lands in the zero padding is
never visited, and the scatter form never visits the holes of a strided transposed convolution: only
real (input, output) pairs exist in these loops. A Linear layer is the 1×1 case (its rows are the
batch).

How the skipping is done. Before any arithmetic, each operand is turned into per-pixel lists of the
channels that matter, built with `torch.nonzero`: for every pixel (n, g, h, w) the channels where X
is nonzero, for every output pixel (n, g, p, q) the channels where dY is nonzero, for every input
pixel the channels whose dX is needed. They are stored CSR-style: pixel `row`'s channels are
`chan[ptr[row]:ptr[row + 1]]`, and for X and dY their values are stored alongside (`val`, in the same
order), so that the backward loops never read a zero operand at all. The loops below then walk only
those lists, so a skipped operand or output is never touched, and every multiplication they do is
counted: `products` is the number of products actually formed, which the tests compare with a
brute-force count.

The order of every sum is fixed, and it is the serial one: a dW[k,c,r,s] element adds its products
image by image, output pixel by output pixel (n, p, q in increasing order); a dX[n,c,h,w] element
adds them output pixel by output pixel (p, q), and within one, output channel by output channel (k).
The loops are arranged for speed within that order. BWD-W walks, per output pixel and tap, the
nonzero X channels c and, innermost, the nonzero dY channels k, so that dW is kept as [G, R, S, C/G,
K/G] and a dY row with every channel nonzero (the common case after a BatchNorm) is one contiguous
multiply-add over k; a sparse dY row is walked by four X channels together. BWD-D walks, per output
pixel and tap, the needed dX channels c, four at a time, each accumulating its products over the
nonzero dY channels k in a register. A product is formed exactly when it was before, in the same
place of the same sum, so the result is the same to the bit
(tests/test_engine_sparse_ops.py: a brute-force sum in that order).

The loops are plain Python compiled by numba (serially: a fresh machine compiles them in ~2 s, not
the ~7 s of numba's parallel mode), split over the cores without changing a single sum by running
one part per thread with the GIL released (`_in_parts`, numba's thread count): FWD and BWD-D split
by (image, group), whose outputs are disjoint; BWD-W splits by input channel, so each dW element is
still accumulated by one thread in the serial order, and the result is bit-identical for any
thread count (tested). The same element-level skipping
written with torch gather/index_add_ costs ~60 ns per product on a CPU; a resnet50 step at 224 px,
batch 8, forms ~36G backward products, so that would be ~35 minutes a step. The compiled loops cost
~0.3–1 ns per product and keep each skip readable as an `if` or a list walk.
Memory stays at the size of the operands (no per-product intermediates, so no chunking is needed).

Everything accumulates in float64 — a product of two float32 values is exact in float64, and the
float64 error of a layer's sums is far below float32 resolution — and the result is cast back to the
input's dtype: the sum, exact to float64 accuracy, rounded once. Differences to autograd are its own float32
rounding (see `agos.engine.check`).

Layouts inside: channels last, split by group — X, dX, needed: [N, G, H, W, C/G]; Y, dY:
[N, G, P, Q, K/G]; W: [G, R, S, C/G, K/G] (FWD and BWD-D), dW: [G, R, S, C/G, K/G].
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
import torch

from agos.workload.layer import LayerGeometry


class PassResult(NamedTuple):
    """The result of one pass and how many multiplications it actually formed."""

    out: torch.Tensor
    products: int


# -- the lists of channels that matter --------------------------------------------------------


def _channels_last(t: torch.Tensor, groups: int) -> torch.Tensor:
    """[N, C, H, W] → [N, G, H, W, C/G], contiguous."""
    n, c, h, w = t.shape
    return t.reshape(n, groups, c // groups, h, w).permute(0, 1, 3, 4, 2).contiguous()


def _from_channels_last(t: torch.Tensor) -> torch.Tensor:
    """[N, G, H, W, C/G] → [N, C, H, W]."""
    n, g, h, w, cg = t.shape
    return t.permute(0, 1, 4, 2, 3).reshape(n, g * cg, h, w)


def channel_lists(mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """For a bool mask [..., channels], the True channels of every row (all leading dims flattened),
    CSR-style: row i's channels are chan[ptr[i]:ptr[i + 1]], in increasing order."""
    rows = mask.reshape(-1, mask.shape[-1])
    counts = rows.sum(dim=1)
    ptr = torch.zeros(rows.shape[0] + 1, dtype=torch.int64)
    torch.cumsum(counts, dim=0, out=ptr[1:])
    chan = torch.nonzero(rows)[:, 1].to(torch.int32)  # row-major order: grouped by row, sorted
    return ptr.numpy(), chan.numpy()


def nonzero_lists(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`channel_lists` of t ≠ 0 for a tensor [..., channels], with the nonzero values themselves
    (float64, in the same order): the operand as the backward loops read it."""
    rows = t.detach().cpu().reshape(-1, t.shape[-1])
    nonzero = rows != 0
    ptr, chan = channel_lists(nonzero)
    return ptr, chan, rows[nonzero].to(torch.float64).numpy()


def _f64(t: torch.Tensor) -> np.ndarray:
    """A contiguous float64 copy on the CPU."""
    return t.detach().to(device="cpu", dtype=torch.float64, memory_format=torch.contiguous_format).numpy()


# -- the three passes, as loops ---------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _forward_loops(y, x, x_ptr, x_chan, w_rsck, stride, padding, dilation, part, parts):
    """Y = conv(X, W), visiting only nonzero X elements, into the slices (n, g) of y
    [N,G,P,Q,Kg] with n·G + g ≡ part (mod parts). x: [N,G,H,W,Cg]; w_rsck: [G,R,S,Cg,Kg]."""
    batch, groups, in_h, in_w, _ = x.shape
    out_h, out_w = y.shape[2], y.shape[3]
    kernel_h, kernel_w, k_per_group = w_rsck.shape[1], w_rsck.shape[2], w_rsck.shape[4]
    products = 0
    for ng in range(part, batch * groups, parts):  # disjoint slices of Y
        n, g = ng // groups, ng % groups
        for p in range(out_h):
            for q in range(out_w):
                for r in range(kernel_h):
                    h = p * stride[0] + r * dilation[0] - padding[0]
                    if h < 0 or h >= in_h:
                        continue  # the tap lands in the zero padding: never work
                    for s in range(kernel_w):
                        w = q * stride[1] + s * dilation[1] - padding[1]
                        if w < 0 or w >= in_w:
                            continue
                        row = ((n * groups + g) * in_h + h) * in_w + w
                        for i in range(x_ptr[row], x_ptr[row + 1]):  # input sparsity: X ≠ 0 only
                            c = x_chan[i]
                            xv = x[n, g, h, w, c]
                            for k in range(k_per_group):
                                y[n, g, p, q, k] += w_rsck[g, r, s, c, k] * xv
                            products += k_per_group
    return products


@numba.njit(cache=True, nogil=True)
def _backward_data_loops(
    dx, dy_ptr, dy_chan, dy_val, w, need_ptr, need_chan, y_shape, stride, padding, dilation, part, parts
):
    """dX: each needed dX element gathers W·dY over the nonzero dY elements its taps reach, output
    pixel by output pixel and, within one, k by k; into the slices (n, g) of dx [N,G,H,W,Cg] (zeros
    on entry; left zero where not needed) with n·G + g ≡ part (mod parts). dY: lists per output
    pixel of y_shape [N,G,P,Q,Kg] (values `dy_val`); needed: lists per pixel of dX; w: [G,R,S,Cg,Kg]."""
    batch, groups, in_h, in_w, _ = dx.shape
    out_h, out_w, k_per_group = y_shape[2], y_shape[3], y_shape[4]
    kernel_h, kernel_w = w.shape[1], w.shape[2]
    products = 0
    for ng in range(part, batch * groups, parts):  # disjoint slices of dX
        n, g = ng // groups, ng % groups
        for p in range(out_h):
            for q in range(out_w):
                dy_row = ((n * groups + g) * out_h + p) * out_w + q
                first, last = dy_ptr[dy_row], dy_ptr[dy_row + 1]
                if first == last:
                    continue  # every dY of this output pixel is zero: nothing to send back
                dense = last - first == k_per_group  # every dY channel nonzero: k runs contiguously
                for r in range(kernel_h):
                    h = p * stride[0] + r * dilation[0] - padding[0]
                    if h < 0 or h >= in_h:
                        continue  # the tap lands in the zero padding: never work
                    for s in range(kernel_w):
                        w_col = q * stride[1] + s * dilation[1] - padding[1]
                        if w_col < 0 or w_col >= in_w:
                            continue
                        x_row = ((n * groups + g) * in_h + h) * in_w + w_col
                        needed_first, needed_last = need_ptr[x_row], need_ptr[x_row + 1]
                        out = dx[n, g, h, w_col]
                        j = needed_first
                        while j + 4 <= needed_last:  # output sparsity: needed dX only, four at a time
                            c0, c1 = need_chan[j], need_chan[j + 1]
                            c2, c3 = need_chan[j + 2], need_chan[j + 3]
                            w0, w1, w2, w3 = w[g, r, s, c0], w[g, r, s, c1], w[g, r, s, c2], w[g, r, s, c3]
                            a0, a1, a2, a3 = out[c0], out[c1], out[c2], out[c3]
                            if dense:
                                for k in range(k_per_group):
                                    grad = dy_val[first + k]
                                    a0 += w0[k] * grad
                                    a1 += w1[k] * grad
                                    a2 += w2[k] * grad
                                    a3 += w3[k] * grad
                            else:
                                for i in range(first, last):  # input sparsity: dY ≠ 0 only
                                    k = dy_chan[i]
                                    grad = dy_val[i]
                                    a0 += w0[k] * grad
                                    a1 += w1[k] * grad
                                    a2 += w2[k] * grad
                                    a3 += w3[k] * grad
                            out[c0], out[c1], out[c2], out[c3] = a0, a1, a2, a3
                            j += 4
                        while j < needed_last:
                            c = need_chan[j]
                            wc = w[g, r, s, c]
                            acc = out[c]
                            for i in range(first, last):
                                acc += wc[dy_chan[i]] * dy_val[i]
                            out[c] = acc
                            j += 1
                        products += (last - first) * (needed_last - needed_first)
    return products


@numba.njit(cache=True, nogil=True)
def _backward_weight_loops(
    dw,
    x_ptr,
    x_chan,
    x_val,
    dy_ptr,
    dy_chan,
    dy_val,
    x_shape,
    y_shape,
    stride,
    padding,
    dilation,
    part,
    parts,
):
    """dW, forming X·dY only where both are nonzero, into dw [G,R,S,Cg,Kg] (zeros on entry). X:
    lists per pixel of x_shape [N,G,H,W,Cg] (values `x_val`); dY: lists per output pixel of y_shape
    [N,G,P,Q,Kg]. This part owns the input channels g·Cg + c ≡ part (mod parts) and walks every
    image in order, so each dW element's sum is the serial one."""
    batch, groups, in_h, in_w, c_per_group = x_shape
    out_h, out_w, k_per_group = y_shape[2], y_shape[3], y_shape[4]
    kernel_h, kernel_w = dw.shape[1], dw.shape[2]
    held_c, held_x = np.empty(4, np.int64), np.empty(4)
    products = 0
    for n in range(batch):
        for g in range(groups):
            for p in range(out_h):
                for q in range(out_w):
                    dy_row = ((n * groups + g) * out_h + p) * out_w + q
                    first, last = dy_ptr[dy_row], dy_ptr[dy_row + 1]
                    if first == last:
                        continue  # every dY of this output pixel is zero
                    dense = last - first == k_per_group  # every dY channel nonzero: k runs contiguously
                    for r in range(kernel_h):
                        h = p * stride[0] + r * dilation[0] - padding[0]
                        if h < 0 or h >= in_h:
                            continue  # the tap lands in the zero padding: never work
                        for s in range(kernel_w):
                            w_col = q * stride[1] + s * dilation[1] - padding[1]
                            if w_col < 0 or w_col >= in_w:
                                continue
                            x_row = ((n * groups + g) * in_h + h) * in_w + w_col
                            held = 0  # X channels waiting to walk a sparse dY row together
                            for j in range(x_ptr[x_row], x_ptr[x_row + 1]):  # X ≠ 0 …
                                c = x_chan[j]
                                if (g * c_per_group + c) % parts != part:
                                    continue  # another part's input channel
                                products += last - first
                                if dense:
                                    row, xv = dw[g, r, s, c], x_val[j]
                                    for k in range(k_per_group):
                                        row[k] += xv * dy_val[first + k]
                                    continue
                                held_c[held], held_x[held] = c, x_val[j]
                                held += 1
                                if held == 4:  # four dW rows share each dY index and value read
                                    r0, r1 = dw[g, r, s, held_c[0]], dw[g, r, s, held_c[1]]
                                    r2, r3 = dw[g, r, s, held_c[2]], dw[g, r, s, held_c[3]]
                                    x0, x1, x2, x3 = held_x[0], held_x[1], held_x[2], held_x[3]
                                    for i in range(first, last):  # … and dY ≠ 0
                                        k, grad = dy_chan[i], dy_val[i]
                                        r0[k] += x0 * grad
                                        r1[k] += x1 * grad
                                        r2[k] += x2 * grad
                                        r3[k] += x3 * grad
                                    held = 0
                            for t in range(held):
                                row, xv = dw[g, r, s, held_c[t]], held_x[t]
                                for i in range(first, last):
                                    row[dy_chan[i]] += xv * dy_val[i]
    return products


# -- running the loops in parts ----------------------------------------------------------------


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="agos-sparse")


def _in_parts(loops, *args) -> int:
    """Run `loops(*args, part, parts)` for every part, on numba's thread count (`parts`): the parts
    write disjoint elements of the output and release the GIL, so they run in parallel on threads
    (this thread takes part 0). Compiled serially, the loops cost a fraction of numba's parallel
    compilation on a fresh machine. Returns the products the parts formed."""
    parts = numba.get_num_threads()
    others = [_pool(parts).submit(loops, *args, part, parts) for part in range(1, parts)]
    return int(loops(*args, 0, parts)) + sum(int(f.result()) for f in others)


# -- public functions -------------------------------------------------------------------------


def _check(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, the geometry says {tuple(shape)}")


def _w_rsck(w: torch.Tensor, g: LayerGeometry) -> torch.Tensor:
    """W [K, C/G, R, S] as a contiguous [G, R, S, C/G, K/G] (a Linear weight, or any 1×1 ungrouped
    one, by torch's 2-D transpose: several times faster than a general permuted copy)."""
    w = w.detach().cpu()
    if g.groups == 1 and g.r == 1 and g.s == 1:
        return w.reshape(g.k, g.c).t().contiguous().reshape(1, 1, 1, g.c, g.k)
    return w.reshape(g.groups, g.k_per_group, g.c_per_group, g.r, g.s).permute(0, 3, 4, 2, 1).contiguous()


def _w_kcrs(dw: torch.Tensor, g: LayerGeometry) -> torch.Tensor:
    """The inverse of `_w_rsck`: [G, R, S, C/G, K/G] → a contiguous [K, C/G, R, S]."""
    if g.groups == 1 and g.r == 1 and g.s == 1:
        return dw.reshape(g.c, g.k).t().contiguous().reshape(g.w_shape)
    return dw.permute(0, 4, 3, 1, 2).reshape(g.w_shape)


def _x_shape(g: LayerGeometry) -> tuple[int, int, int, int, int]:
    return (g.n, g.groups, g.h, g.w, g.c_per_group)


def _y_shape(g: LayerGeometry) -> tuple[int, int, int, int, int]:
    return (g.n, g.groups, g.p, g.q, g.k_per_group)


def _conv_params(g: LayerGeometry):
    return (
        (int(g.stride[0]), int(g.stride[1])),
        (int(g.padding[0]), int(g.padding[1])),
        (int(g.dilation[0]), int(g.dilation[1])),
    )


def conv_forward(
    x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, geometry: LayerGeometry
) -> PassResult:
    """FWD with input sparsity: a zero X element is never read, so none of the K/G products it would
    take part in is formed. Y = Σ over nonzero X of W·X (+ bias, an addition, not a product)."""
    g = geometry
    _check("x", x, g.x_shape)
    _check("w", w, g.w_shape)
    stride, padding, dilation = _conv_params(g)
    xs = _channels_last(x.detach(), g.groups)
    x_ptr, x_chan = channel_lists(xs.cpu() != 0)
    w_rsck = _f64(_w_rsck(w, g))
    y = np.zeros(_y_shape(g))
    products = _in_parts(_forward_loops, y, _f64(xs), x_ptr, x_chan, w_rsck, stride, padding, dilation)
    out = _from_channels_last(torch.from_numpy(y))
    if bias is not None:
        out += bias.detach().to(device="cpu", dtype=torch.float64).view(1, -1, 1, 1)
    return PassResult(out.to(device=x.device, dtype=x.dtype), products)


def conv_backward_data(
    dy: torch.Tensor, w: torch.Tensor, needed: torch.Tensor | None, geometry: LayerGeometry
) -> PassResult:
    """BWD-D in scatter form with input and output sparsity. `needed` (bool, shaped like X; None: all
    needed) says which dX elements the op that produced X lets through; only those are computed, and
    the rest of dX is exactly zero. Each nonzero dY[n,k,p,q] visits the taps (r,s) that land inside
    the input and adds W[k,c,r,s]·dY to dX[n,c,h,w] for the needed channels c of that pixel; a zero
    dY element is never read."""
    g = geometry
    _check("dy", dy, g.y_shape)
    _check("w", w, g.w_shape)
    params = _conv_params(g)
    dy_ptr, dy_chan, dy_val = nonzero_lists(_channels_last(dy.detach(), g.groups))
    if needed is None:
        needed_cl = torch.ones((g.n, g.groups, g.h, g.w, g.c_per_group), dtype=torch.bool)
    else:
        _check("needed", needed, g.x_shape)
        needed_cl = _channels_last(needed.cpu().bool(), g.groups)
    need_ptr, need_chan = channel_lists(needed_cl)
    w_rsck = _f64(_w_rsck(w, g))
    dx = np.zeros(_x_shape(g))
    products = _in_parts(
        _backward_data_loops, dx, dy_ptr, dy_chan, dy_val, w_rsck, need_ptr, need_chan, _y_shape(g), *params
    )
    out = _from_channels_last(torch.from_numpy(dx))
    return PassResult(out.to(device=dy.device, dtype=dy.dtype), products)


def conv_backward_weight(x: torch.Tensor, dy: torch.Tensor, geometry: LayerGeometry) -> PassResult:
    """BWD-W with two-sided input sparsity: for every output pixel, the nonzero dY channels meet
    the nonzero X channels of each tap's input pixel, and only those pairs form a product
    X[n,c,h,w]·dY[n,k,p,q] into dW[k,c,r,s]."""
    g = geometry
    _check("x", x, g.x_shape)
    _check("dy", dy, g.y_shape)
    dw, products = _weight_pass(x, dy, g)
    out = _w_kcrs(dw.to(dy.dtype), g)  # rounded once, then laid out as W
    return PassResult(out.to(device=dy.device), products)


def _weight_pass(x: torch.Tensor, dy: torch.Tensor, g: LayerGeometry) -> tuple[torch.Tensor, int]:
    """The BWD-W loops: float64 dW as [G, R, S, C/G, K/G], and the products formed."""
    params = _conv_params(g)
    x_lists = nonzero_lists(_channels_last(x.detach(), g.groups))
    dy_lists = nonzero_lists(_channels_last(dy.detach(), g.groups))
    dw = np.zeros((g.groups, g.r, g.s, g.c_per_group, g.k_per_group))
    products = _in_parts(_backward_weight_loops, dw, *x_lists, *dy_lists, _x_shape(g), _y_shape(g), *params)
    return torch.from_numpy(dw), products


def bias_backward(dy: torch.Tensor, kind: str) -> torch.Tensor:
    """db[k] = Σ of dY over everything but the channel — additions only, no products.
    kind "conv": dY is [N, K, P, Q]; kind "linear": dY is [..., K]."""
    dims = [0, 2, 3] if kind == "conv" else list(range(dy.dim() - 1))
    return dy.detach().to(torch.float64).sum(dim=dims).to(dy.dtype)


# -- Linear: the 1×1 case ----------------------------------------------------------------------


def linear_geometry(rows: int, in_features: int, out_features: int, bias: bool = False) -> LayerGeometry:
    return LayerGeometry(
        kind="linear", n=rows, c=in_features, h=1, w=1, k=out_features, p=1, q=1, r=1, s=1, bias=bias
    )


def _as_pixels(t: torch.Tensor) -> torch.Tensor:
    """[..., F] → [rows, F, 1, 1]."""
    return t.reshape(-1, t.shape[-1], 1, 1)


def linear_forward(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> PassResult:
    """Y = X Wᵀ (+ b) for X [..., C], skipping zero X elements (a 1×1 conv over the rows)."""
    geometry = linear_geometry(x.numel() // x.shape[-1], w.shape[1], w.shape[0], bias is not None)
    y, products = conv_forward(_as_pixels(x), w.reshape(*w.shape, 1, 1), bias, geometry)
    return PassResult(y.reshape(*x.shape[:-1], w.shape[0]), products)


def linear_backward_data(dy: torch.Tensor, w: torch.Tensor, needed: torch.Tensor | None) -> PassResult:
    """dX = dY W for dY [..., K], only at needed elements (bool, shaped like X), skipping zero dY."""
    geometry = linear_geometry(dy.numel() // dy.shape[-1], w.shape[1], w.shape[0])
    mask = _as_pixels(needed) if needed is not None else None
    dx, products = conv_backward_data(_as_pixels(dy), w.reshape(*w.shape, 1, 1), mask, geometry)
    return PassResult(dx.reshape(*dy.shape[:-1], w.shape[1]), products)


def linear_backward_weight(x: torch.Tensor, dy: torch.Tensor) -> PassResult:
    """dW = dYᵀ X over all rows, a product only where both X and dY are nonzero. Computed as the
    BWD-W of the 1×1 layer with the roles of X and dY swapped, whose dW comes out as [K, C] without
    a transpose: each element is the same products (dY·X = X·dY) summed over the rows in order."""
    rows = x.numel() // x.shape[-1]
    swapped = linear_geometry(rows, dy.shape[-1], x.shape[-1])
    dw, products = _weight_pass(_as_pixels(dy), _as_pixels(x), swapped)
    return PassResult(dw.to(dy.dtype).reshape(dy.shape[-1], x.shape[-1]).to(device=dy.device), products)
