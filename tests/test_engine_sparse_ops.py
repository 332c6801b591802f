"""The exact sparse passes against autograd / F.conv2d on random small layers, and their product counts
against independent counts (a convolution of the masks, and brute-force loops on tiny layers)."""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from agos.engine import sparse_ops as ops
from agos.workload.layer import LayerGeometry

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")


@dataclass
class Case:
    x: torch.Tensor
    w: torch.Tensor
    b: torch.Tensor | None
    dy: torch.Tensor
    needed: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    geometry: LayerGeometry


def _sparse(shape, zero_fraction, gen, dtype=torch.float64):
    values = torch.randn(shape, generator=gen, dtype=dtype)
    return values * (torch.rand(shape, generator=gen) >= zero_fraction)


def _conv_case(seed: int, dtype=torch.float64, wide: bool = False) -> Case:
    """A random small layer; `wide`: more channels per group (4 to 11), so that channel lists are
    longer than the loops' unrolling."""
    rnd = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    depthwise = rnd.random() < 0.25 and not wide
    groups = rnd.choice([1, 1, 2, 3])
    c_per_group = 1 if depthwise else rnd.randint(4, 11) if wide else rnd.randint(1, 3)
    k_per_group = rnd.randint(1, 6) if wide else rnd.randint(1, 3)
    if depthwise:
        groups = rnd.randint(2, 5)
    c, k = groups * c_per_group, groups * k_per_group
    r, s = rnd.randint(1, 3), rnd.randint(1, 3)
    dilation = (rnd.randint(1, 2), rnd.randint(1, 2))
    if rnd.random() < 0.15:
        stride, padding = (1, 1), "same"
    else:
        stride = (rnd.randint(1, 3), rnd.randint(1, 3))
        padding = (rnd.randint(0, 2), rnd.randint(0, 2))
    n = rnd.randint(1, 2)
    h = rnd.randint(dilation[0] * (r - 1) + 1, 9)
    w_ = rnd.randint(dilation[1] * (s - 1) + 1, 9)
    x = _sparse((n, c, h, w_), rnd.uniform(0.0, 0.8), gen, dtype)
    weight = torch.randn(k, c_per_group, r, s, generator=gen, dtype=dtype)
    bias = torch.randn(k, generator=gen, dtype=dtype) if rnd.random() < 0.5 else None
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    dy = _sparse(y.shape, rnd.uniform(0.0, 0.8), gen, dtype)
    needed = torch.rand(x.shape, generator=gen) >= rnd.uniform(0.0, 0.9)
    pads = tuple(dilation[i] * ((r, s)[i] - 1) // 2 for i in range(2)) if padding == "same" else padding
    geometry = LayerGeometry(
        kind="conv",
        n=n,
        c=c,
        h=h,
        w=w_,
        k=k,
        p=y.shape[2],
        q=y.shape[3],
        r=r,
        s=s,
        stride=stride,
        padding=pads,
        dilation=dilation,
        groups=groups,
        bias=bias is not None,
    )
    return Case(x, weight, bias, dy, needed, stride, padding, dilation, groups, geometry)


def _reference(case: Case):
    x = case.x.clone().requires_grad_()
    w = case.w.clone().requires_grad_()
    b = case.b.clone().requires_grad_() if case.b is not None else None
    y = F.conv2d(x, w, b, case.stride, case.padding, case.dilation, case.groups)
    grads = torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], case.dy)
    return y.detach(), grads[0], grads[1], grads[2] if b is not None else None


def _mask_conv(mask: torch.Tensor, case: Case) -> torch.Tensor:
    """Per output element, how many valid (c, r, s) taps land on a True element of `mask`."""
    ones = torch.ones(case.w.shape, dtype=torch.float64)
    return F.conv2d(mask.double(), ones, None, case.stride, case.padding, case.dilation, case.groups)


@pytest.mark.parametrize("seed", range(60))
def test_conv_passes_equal_autograd_and_count_only_effective_products(seed):
    case = _conv_case(seed)
    y_ref, dx_ref, dw_ref, db_ref = _reference(case)
    g = case.geometry

    y, fwd = ops.conv_forward(case.x, case.w, case.b, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)

    dx, bwd_d = ops.conv_backward_data(case.dy, case.w, case.needed, g)
    torch.testing.assert_close(dx[case.needed], dx_ref[case.needed], rtol=1e-12, atol=1e-12)
    assert torch.all(dx[~case.needed] == 0), "dX must be exactly zero where it is not needed"

    dw, bwd_w = ops.conv_backward_weight(case.x, case.dy, g)
    torch.testing.assert_close(dw, dw_ref, rtol=1e-12, atol=1e-12)
    if case.b is not None:
        torch.testing.assert_close(ops.bias_backward(case.dy, "conv"), db_ref, rtol=1e-12, atol=1e-12)

    x_nz, dy_nz = case.x != 0, case.dy != 0
    assert fwd == int(_mask_conv(x_nz, case).sum())
    assert bwd_d == int((_mask_conv(case.needed, case) * dy_nz).sum())
    assert bwd_w == int((_mask_conv(x_nz, case) * dy_nz).sum())
    dense = g.macs
    assert fwd <= dense and bwd_d <= dense and bwd_w <= dense


def _brute_force_counts(case: Case) -> tuple[int, int, int]:
    """Walk every (n, k, p, q, c, r, s) of the layer and count the products a skipping design forms."""
    g = case.geometry
    fwd = bwd_d = bwd_w = 0
    for n, k, p, q in itertools.product(range(g.n), range(g.k), range(g.p), range(g.q)):
        group = k // g.k_per_group
        for cc, r, s in itertools.product(range(g.c_per_group), range(g.r), range(g.s)):
            c = group * g.c_per_group + cc
            h = p * g.stride[0] + r * g.dilation[0] - g.padding[0]
            w = q * g.stride[1] + s * g.dilation[1] - g.padding[1]
            if not (0 <= h < g.h and 0 <= w < g.w):
                continue  # padding: no product in any pass
            x_nz = bool(case.x[n, c, h, w] != 0)
            dy_nz = bool(case.dy[n, k, p, q] != 0)
            fwd += x_nz
            bwd_d += dy_nz and bool(case.needed[n, c, h, w])
            bwd_w += x_nz and dy_nz
    return fwd, bwd_d, bwd_w


@pytest.mark.parametrize("seed", [3, 11, 17, 29])
def test_product_counts_equal_brute_force(seed):
    case = _conv_case(seed)
    g = case.geometry
    counted = (
        ops.conv_forward(case.x, case.w, case.b, g).products,
        ops.conv_backward_data(case.dy, case.w, case.needed, g).products,
        ops.conv_backward_weight(case.x, case.dy, g).products,
    )
    assert counted == _brute_force_counts(case)


def test_all_needed_and_dense_operands_cost_the_dense_macs():
    case = _conv_case(5)
    g = case.geometry
    x = torch.randn(g.x_shape, dtype=torch.float64).abs() + 0.1
    dy = torch.randn(g.y_shape, dtype=torch.float64).abs() + 0.1
    assert ops.conv_forward(x, case.w, None, g).products == g.macs
    assert ops.conv_backward_data(dy, case.w, None, g).products == g.macs
    assert ops.conv_backward_weight(x, dy, g).products == g.macs
    assert ops.conv_backward_data(dy, case.w, torch.zeros(g.x_shape, dtype=torch.bool), g).products == 0
    assert ops.conv_backward_weight(torch.zeros(g.x_shape, dtype=torch.float64), dy, g).products == 0


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 7), (1, 7)])
def test_linear_passes(shape):
    gen = torch.Generator().manual_seed(len(shape))
    x = _sparse(shape, 0.5, gen).requires_grad_()
    w = torch.randn(4, 7, generator=gen, dtype=torch.float64).requires_grad_()
    b = torch.randn(4, generator=gen, dtype=torch.float64).requires_grad_()
    y_ref = F.linear(x, w, b)
    dy = _sparse(y_ref.shape, 0.4, gen)
    needed = torch.rand(shape, generator=gen) > 0.5
    dx_ref, dw_ref, db_ref = torch.autograd.grad(y_ref, (x, w, b), dy)

    y, fwd = ops.linear_forward(x, w, b)
    torch.testing.assert_close(y, y_ref.detach(), rtol=1e-12, atol=1e-12)
    dx, bwd_d = ops.linear_backward_data(dy, w, needed)
    torch.testing.assert_close(dx[needed], dx_ref[needed], rtol=1e-12, atol=1e-12)
    assert torch.all(dx[~needed] == 0)
    dw, bwd_w = ops.linear_backward_weight(x, dy)
    torch.testing.assert_close(dw, dw_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.bias_backward(dy, "linear"), db_ref, rtol=1e-12, atol=1e-12)

    x_nz = (x != 0).reshape(-1, 7).double()
    dy_nz = (dy != 0).reshape(-1, 4).double()
    assert fwd == int(x_nz.sum()) * 4
    assert bwd_d == int((dy_nz.sum(1) * needed.reshape(-1, 7).sum(1)).sum())
    assert bwd_w == int((dy_nz.sum(1) * x_nz.sum(1)).sum())


def _serial_sums(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """dX and dW as float64 sums of exactly the products the engine forms, added in the serial order
    its docstring fixes: a dW element over (n, p, q), a dX element over (p, q) and then k."""
    g = case.geometry
    x, w, dy, needed = case.x.numpy(), case.w.numpy(), case.dy.numpy(), case.needed.numpy()
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for n, p, q, r, s in itertools.product(range(g.n), range(g.p), range(g.q), range(g.r), range(g.s)):
        h = p * g.stride[0] + r * g.dilation[0] - g.padding[0]
        col = q * g.stride[1] + s * g.dilation[1] - g.padding[1]
        if not (0 <= h < g.h and 0 <= col < g.w):
            continue
        for k in range(g.k):
            grad = dy[n, k, p, q]
            if grad == 0:
                continue
            for cc in range(g.c_per_group):
                c = k // g.k_per_group * g.c_per_group + cc
                if needed[n, c, h, col]:
                    dx[n, c, h, col] += w[k, cc, r, s] * grad
                if x[n, c, h, col] != 0:
                    dw[k, cc, r, s] += x[n, c, h, col] * grad
    return torch.from_numpy(dx), torch.from_numpy(dw)


@pytest.mark.parametrize(
    ("seed", "wide"), [(s, False) for s in (2, 6, 9, 13)] + [(s, True) for s in range(9)]
)
def test_backward_sums_are_the_serial_ones_bit_for_bit(seed, wide):
    """Float64 operands (their products are rounded, so a different order of any sum shows in the
    last bit): BWD-D and BWD-W equal the serial sums exactly, for any density of dY and of the masks
    (dense dY rows take the contiguous loops)."""
    case = _conv_case(seed, wide=wide)
    if seed % 2:
        case.dy = case.dy + (case.dy == 0) * 0.5  # every dY channel nonzero: the dense-row loops
    dx_ref, dw_ref = _serial_sums(case)
    assert torch.equal(ops.conv_backward_data(case.dy, case.w, case.needed, case.geometry).out, dx_ref)
    assert torch.equal(ops.conv_backward_weight(case.x, case.dy, case.geometry).out, dw_ref)


@pytest.mark.parametrize("dense_dy", [False, True])
def test_linear_sums_are_the_serial_ones_bit_for_bit(dense_dy):
    """Linear: dW[k, c] sums its products row by row, dX[n, c] over k in order."""
    gen = torch.Generator().manual_seed(8)
    x = _sparse((6, 13), 0.4, gen)
    w = torch.randn(9, 13, generator=gen, dtype=torch.float64)
    dy = _sparse((6, 9), 0.0 if dense_dy else 0.5, gen)
    needed = torch.rand(x.shape, generator=gen) > 0.3
    dx_ref, dw_ref = torch.zeros(x.shape, dtype=torch.float64), torch.zeros(w.shape, dtype=torch.float64)
    for n, k, c in itertools.product(range(6), range(9), range(13)):
        if dy[n, k] != 0 and needed[n, c]:
            dx_ref[n, c] += w[k, c] * dy[n, k]
        if dy[n, k] != 0 and x[n, c] != 0:
            dw_ref[k, c] += x[n, c] * dy[n, k]
    assert torch.equal(ops.linear_backward_data(dy, w, needed).out, dx_ref)
    assert torch.equal(ops.linear_backward_weight(x, dy).out, dw_ref)


def test_float32_is_the_exact_sum_rounded_once():
    """float32 in, float32 out: the float64 sum of the products, rounded once."""
    case = _conv_case(7, dtype=torch.float32)
    g = case.geometry
    params = (case.stride, case.padding, case.dilation, case.groups)
    exact = F.conv2d(case.x.double(), case.w.double(), None, *params)
    y, _ = ops.conv_forward(case.x, case.w, None, g)
    assert y.dtype == torch.float32
    assert torch.equal(y, exact.float())


def test_shapes_are_checked():
    case = _conv_case(1)
    with pytest.raises(ValueError, match="geometry says"):
        ops.conv_backward_data(case.dy[:, :, :1], case.w, None, case.geometry)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
@pytest.mark.parametrize("seed", [1, 4, 7, 12, 21])
def test_every_pass_is_bit_identical_for_any_thread_count(seed):
    """The loops are split over cores without reordering any float64 sum, and the counts add up."""
    case = _conv_case(seed)
    case.x, case.dy = case.x.repeat(3, 1, 1, 1), case.dy.repeat(3, 1, 1, 1)  # more images than threads
    case.needed = case.needed.repeat(3, 1, 1, 1)
    g = dataclasses.replace(case.geometry, n=case.x.shape[0])
    before = numba.get_num_threads()

    def run():
        return (
            ops.conv_forward(case.x, case.w, case.b, g),
            ops.conv_backward_data(case.dy, case.w, case.needed, g),
            ops.conv_backward_weight(case.x, case.dy, g),
        )

    try:
        numba.set_num_threads(1)
        serial = run()
        numba.set_num_threads(2)
        split = run()
    finally:
        numba.set_num_threads(before)
    for one, two in zip(serial, split, strict=True):
        assert torch.equal(one.out, two.out) and one.products == two.products
