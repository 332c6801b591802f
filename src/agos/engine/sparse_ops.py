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
`chan[ptr[row]:ptr[row + 1]]`. The loops below then walk only those lists, so a skipped operand or
output is never touched, and every multiplication they do is counted: `products` is the number of
products actually formed, which the tests compare with a brute-force count.

The loops are plain Python compiled by numba, split over the cores without changing a single
sum: FWD and BWD-D split by (image, group), whose outputs are disjoint; BWD-W splits by output
channel, so each dW element is still accumulated by one thread in the serial order, and the result
is bit-identical for any thread count (tested). The same element-level skipping
written with torch gather/index_add_ costs ~60 ns per product on a CPU; a resnet50 step at 224 px,
batch 8, forms ~36G backward products, so that would be ~35 minutes a step. The compiled loops cost
~2–3 ns per product (70–100 s for that step) and keep each skip readable as an `if` or a list walk.
Memory stays at the size of the operands (no per-product intermediates, so no chunking is needed).

Everything accumulates in float64 — a product of two float32 values is exact in float64, and the
float64 error of a layer's sums is far below float32 resolution — and the result is cast back to the
input's dtype: the sum, exact to float64 accuracy, rounded once. Differences to autograd are its own float32
rounding (see `agos.engine.check`).

Layouts inside: channels last, split by group — X, dX, needed: [N, G, H, W, C/G]; Y, dY:
[N, G, P, Q, K/G]; W: [G, K/G, R, S, C/G] (FWD reads it as [G, R, S, C/G, K/G] so its inner loop over
output channels is contiguous).
"""

from __future__ import annotations

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


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).contiguous().numpy()


# -- the three passes, as loops ---------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
def _forward_loops(x, x_ptr, x_chan, w_rsck, out_h, out_w, stride, padding, dilation):
    """Y = conv(X, W), visiting only nonzero X elements. x: [N,G,H,W,Cg]; w_rsck: [G,R,S,Cg,Kg]."""
    batch, groups, in_h, in_w, _ = x.shape
    kernel_h, kernel_w, k_per_group = w_rsck.shape[1], w_rsck.shape[2], w_rsck.shape[4]
    y = np.zeros((batch, groups, out_h, out_w, k_per_group))
    counts = np.zeros(batch * groups, dtype=np.int64)
    for ng in numba.prange(batch * groups):  # disjoint slices of Y
        n, g = ng // groups, ng % groups
        products = 0
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
        counts[ng] = products
    return y, counts.sum()


@numba.njit(cache=True, parallel=True)
def _backward_data_loops(dy, dy_ptr, dy_chan, w, need_ptr, need_chan, in_h, in_w, stride, padding, dilation):
    """dX in scatter form: each nonzero dY element sends W·dY to the needed dX elements its taps
    reach. dy: [N,G,P,Q,Kg]; w: [G,Kg,R,S,Cg]; returns dX [N,G,H,W,Cg], zero where not needed."""
    batch, groups, out_h, out_w, _ = dy.shape
    kernel_h, kernel_w = w.shape[2], w.shape[3]
    dx = np.zeros((batch, groups, in_h, in_w, w.shape[4]))
    counts = np.zeros(batch * groups, dtype=np.int64)
    for ng in numba.prange(batch * groups):  # disjoint slices of dX
        n, g = ng // groups, ng % groups
        products = 0
        for p in range(out_h):
            for q in range(out_w):
                dy_row = ((n * groups + g) * out_h + p) * out_w + q
                first, last = dy_ptr[dy_row], dy_ptr[dy_row + 1]
                if first == last:
                    continue  # every dY of this output pixel is zero: nothing to scatter
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
                        for i in range(first, last):  # input sparsity: dY ≠ 0 only
                            k = dy_chan[i]
                            grad = dy[n, g, p, q, k]
                            for j in range(needed_first, needed_last):  # output sparsity: needed dX only
                                c = need_chan[j]
                                dx[n, g, h, w_col, c] += w[g, k, r, s, c] * grad
                            products += needed_last - needed_first
        counts[ng] = products
    return dx, counts.sum()


@numba.njit(cache=True, parallel=True)
def _backward_weight_loops(
    x, x_ptr, x_chan, dy, dy_ptr, dy_chan, kernel_h, kernel_w, stride, padding, dilation, parts
):
    """dW, forming X·dY only where both are nonzero. x: [N,G,H,W,Cg]; dy: [N,G,P,Q,Kg];
    returns dW [G,Kg,R,S,Cg]. Part t of `parts` owns the output channels g·Kg + k ≡ t (mod parts)
    and walks every image in order, so each dW element's sum is the serial one."""
    batch, groups, in_h, in_w, c_per_group = x.shape
    out_h, out_w, k_per_group = dy.shape[2], dy.shape[3], dy.shape[4]
    dw = np.zeros((groups, k_per_group, kernel_h, kernel_w, c_per_group))
    counts = np.zeros(parts, dtype=np.int64)
    for part in numba.prange(parts):
        products = 0
        for n in range(batch):
            for g in range(groups):
                for p in range(out_h):
                    for q in range(out_w):
                        dy_row = ((n * groups + g) * out_h + p) * out_w + q
                        first, last = dy_ptr[dy_row], dy_ptr[dy_row + 1]
                        if first == last:
                            continue  # every dY of this output pixel is zero
                        for r in range(kernel_h):
                            h = p * stride[0] + r * dilation[0] - padding[0]
                            if h < 0 or h >= in_h:
                                continue  # the tap lands in the zero padding: never work
                            for s in range(kernel_w):
                                w_col = q * stride[1] + s * dilation[1] - padding[1]
                                if w_col < 0 or w_col >= in_w:
                                    continue
                                x_row = ((n * groups + g) * in_h + h) * in_w + w_col
                                x_first, x_last = x_ptr[x_row], x_ptr[x_row + 1]
                                for i in range(first, last):  # dY ≠ 0 …
                                    k = dy_chan[i]
                                    if (g * k_per_group + k) % parts != part:
                                        continue  # another part's output channel
                                    grad = dy[n, g, p, q, k]
                                    for j in range(x_first, x_last):  # … and X ≠ 0
                                        c = x_chan[j]
                                        dw[g, k, r, s, c] += x[n, g, h, w_col, c] * grad
                                    products += x_last - x_first
        counts[part] = products
    return dw, counts.sum()


# -- public functions -------------------------------------------------------------------------


def _check(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(t.shape)}, the geometry says {tuple(shape)}")


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
    # W as [G, R, S, C/G, K/G]
    w_rsck = w.detach().reshape(g.groups, g.k_per_group, g.c_per_group, g.r, g.s).permute(0, 3, 4, 2, 1)
    y, products = _forward_loops(_f64(xs), x_ptr, x_chan, _f64(w_rsck), g.p, g.q, stride, padding, dilation)
    out = _from_channels_last(torch.from_numpy(y))
    if bias is not None:
        out += bias.detach().to(device="cpu", dtype=torch.float64).view(1, -1, 1, 1)
    return PassResult(out.to(device=x.device, dtype=x.dtype), int(products))


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
    stride, padding, dilation = _conv_params(g)
    dys = _channels_last(dy.detach(), g.groups)
    dy_ptr, dy_chan = channel_lists(dys.cpu() != 0)
    if needed is None:
        needed_cl = torch.ones((g.n, g.groups, g.h, g.w, g.c_per_group), dtype=torch.bool)
    else:
        _check("needed", needed, g.x_shape)
        needed_cl = _channels_last(needed.cpu().bool(), g.groups)
    need_ptr, need_chan = channel_lists(needed_cl)
    w_krsc = w.detach().reshape(g.groups, g.k_per_group, g.c_per_group, g.r, g.s).permute(0, 1, 3, 4, 2)
    dx, products = _backward_data_loops(
        _f64(dys), dy_ptr, dy_chan, _f64(w_krsc), need_ptr, need_chan, g.h, g.w, stride, padding, dilation
    )
    out = _from_channels_last(torch.from_numpy(dx))
    return PassResult(out.to(device=dy.device, dtype=dy.dtype), int(products))


def conv_backward_weight(x: torch.Tensor, dy: torch.Tensor, geometry: LayerGeometry) -> PassResult:
    """BWD-W with two-sided input sparsity: for every output pixel, the nonzero dY channels meet
    the nonzero X channels of each tap's input pixel, and only those pairs form a product
    X[n,c,h,w]·dY[n,k,p,q] into dW[k,c,r,s]."""
    g = geometry
    _check("x", x, g.x_shape)
    _check("dy", dy, g.y_shape)
    stride, padding, dilation = _conv_params(g)
    xs = _channels_last(x.detach(), g.groups)
    dys = _channels_last(dy.detach(), g.groups)
    x_ptr, x_chan = channel_lists(xs.cpu() != 0)
    dy_ptr, dy_chan = channel_lists(dys.cpu() != 0)
    parts = numba.get_num_threads()
    dw, products = _backward_weight_loops(
        _f64(xs), x_ptr, x_chan, _f64(dys), dy_ptr, dy_chan, g.r, g.s, stride, padding, dilation, parts
    )
    # [G, K/G, R, S, C/G] → [K, C/G, R, S]
    out = torch.from_numpy(dw).permute(0, 1, 4, 2, 3).reshape(g.w_shape)
    return PassResult(out.to(device=dy.device, dtype=dy.dtype), int(products))


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
    """dW = dYᵀ X over all rows, a product only where both X and dY are nonzero."""
    geometry = linear_geometry(x.numel() // x.shape[-1], x.shape[-1], dy.shape[-1])
    dw, products = conv_backward_weight(_as_pixels(x), _as_pixels(dy), geometry)
    return PassResult(dw.reshape(dy.shape[-1], x.shape[-1]), products)
