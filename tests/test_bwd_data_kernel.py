"""The tile-skipping BWD-D Triton kernel, run in Triton's CPU interpreter (TRITON_INTERPRET=1),
against torch's backward-data times the mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agos.density.tiles import gemm_view, tile_any
from agos.errors import AgosError
from agos.gpu import bwd_data_kernel as kern
from agos.gpu.bwd_data_kernel import ConvParams

BLOCK = (16, 16, 16)


@pytest.fixture(autouse=True)
def interpret(monkeypatch):
    """Triton reads TRITON_INTERPRET when the kernel is decorated; agos builds it per mode."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _out(size: int, kernel: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (kernel - 1) - 1) // stride + 1


# n, c, h, w, k, r, s, stride, pad, dilation
LAYERS = [
    (2, 20, 4, 5, 17, 3, 3, 1, 1, 1),  # N·H·W, C and K not multiples of the blocks
    (1, 17, 6, 6, 16, 3, 3, 2, 1, 1),  # stride 2: holes
    (2, 16, 4, 5, 16, 1, 1, 2, 0, 1),  # 1×1 stride 2 (downsample): rows with no taps at all
    (1, 18, 6, 7, 16, 3, 3, 1, 2, 2),  # dilation 2
    (1, 16, 6, 7, 18, 3, 1, 1, 0, 1),  # a 3×1 kernel
]
SLOW = pytest.mark.slow


def _layer(spec, dtype, integer: bool, density: float, seed: int):
    n, c, h, w, k, r, s, stride, pad, dil = spec
    gen = torch.Generator().manual_seed(seed)
    p, q = _out(h, r, stride, pad, dil), _out(w, s, stride, pad, dil)
    params = ConvParams(h, w, (stride, stride), (pad, pad), (dil, dil))
    if integer:
        dy = torch.randint(-3, 4, (n, k, p, q), generator=gen).to(dtype)
        weight = torch.randint(-3, 4, (k, c, r, s), generator=gen).to(dtype)
    else:
        dy = torch.randn((n, k, p, q), generator=gen, dtype=dtype)
        weight = torch.randn((k, c, r, s), generator=gen, dtype=dtype)
    mask = torch.rand((n, c, h, w), generator=gen) < density
    mask.view(n, c, h * w)[0, :, :16] = False  # 16 dark positions: a row of tiles to skip
    return dy, weight, params, mask


def _autograd(dy, weight, params, pads=None):
    n, _, _, _ = dy.shape
    x = torch.zeros((n, weight.shape[1], params.h, params.w), dtype=dy.dtype, requires_grad=True)
    xin = F.pad(x, pads) if pads is not None else x
    y = F.conv2d(
        xin, weight, stride=params.stride, padding=0 if pads else params.padding, dilation=params.dilation
    )
    (grad,) = torch.autograd.grad(y, x, dy)
    return grad


@pytest.mark.parametrize(
    "spec, dtype",
    [(spec, torch.float64) for spec in LAYERS]
    + [pytest.param(spec, torch.float32, marks=SLOW) for spec in LAYERS],
)
def test_exact_on_integer_inputs(spec, dtype):
    """Small integers: every partial sum is exact, so any summation order gives torch's bits."""
    dy, weight, params, mask = _layer(spec, dtype, integer=True, density=0.5, seed=sum(spec))
    expected = _autograd(dy, weight, params) * mask
    assert torch.equal(kern.reference(dy, weight, params), _autograd(dy, weight, params))
    skipped = kern.bwd_data(dy, weight, params, mask, skip=True, block=BLOCK)
    dense = kern.bwd_data(dy, weight, params, mask, skip=False, block=BLOCK)
    assert torch.equal(skipped, expected)
    assert torch.equal(dense, expected)
    assert expected.abs().sum() > 0
    assert not kern.tile_table(mask, 16, 16).all()  # some tiles were skipped


@pytest.mark.parametrize("spec", [LAYERS[0], *(pytest.param(s, marks=SLOW) for s in LAYERS[1:])])
def test_float32_within_the_rounding_bound(spec):
    dy, weight, params, mask = _layer(spec, torch.float32, integer=False, density=0.3, seed=7)
    expected = kern.reference(dy, weight, params) * mask
    got = kern.bwd_data(dy, weight, params, mask, block=BLOCK)
    bound = kern.rounding_bound(dy, weight, params)
    assert ((got - expected).abs() <= bound).all()
    assert torch.equal(got[~mask], torch.zeros_like(got[~mask]))  # exactly zero where masked
    unmasked = kern.bwd_data(dy, weight, params, None, skip=False, block=BLOCK)
    assert ((unmasked - kern.reference(dy, weight, params)).abs() <= bound).all()
    assert (unmasked[~mask] != 0).any()  # the mask really did something


def test_asymmetric_padding_matches_autograd():
    """Top/left padding 0 with the output one row longer (TF-style 'same' on an even input)."""
    n, c, h, w, k = 1, 16, 8, 8, 16
    params = ConvParams(h, w, (2, 2), (0, 0), (1, 1))
    gen = torch.Generator().manual_seed(3)
    dy = torch.randint(-3, 4, (n, k, 4, 4), generator=gen).double()  # pad bottom/right by 1
    weight = torch.randint(-3, 4, (k, c, 3, 3), generator=gen).double()
    mask = torch.rand((n, c, h, w), generator=gen) < 0.5
    expected = _autograd(dy, weight, params, pads=(0, 1, 0, 1)) * mask
    assert torch.equal(kern.reference(dy, weight, params) * mask, expected)
    assert torch.equal(kern.bwd_data(dy, weight, params, mask, block=BLOCK), expected)


def test_the_kernel_obeys_the_tile_table():
    """A table that calls a needed tile empty leaves it zero: the skip really skips."""
    dy, weight, params, mask = _layer(LAYERS[0], torch.float64, integer=True, density=0.9, seed=1)
    prep = kern.prepare(dy, weight, params, mask, BLOCK)
    assert prep.table[1:].all()  # row 0 of tiles is the dark region of `_layer`
    table = prep.table.clone()
    table[1, 0] = 0
    doctored = kern.Prepared(prep.dy, prep.weight_rskc, prep.mask, table, prep.params, prep.block)
    got = kern.launch(doctored, skip=True)
    full = kern.launch(doctored, skip=False)  # the dense variant never reads the table
    expected = kern.reference(dy, weight, params) * mask
    assert torch.equal(full, expected)
    rows = gemm_view(got.numpy())
    assert (rows[16:32, :16] == 0).all() and (gemm_view(expected.numpy())[16:32, :16] != 0).any()
    rows_expected = gemm_view(expected.numpy())
    rows[16:32, :16] = rows_expected[16:32, :16]
    assert (rows == rows_expected).all()


def test_tile_table_equals_the_tile_analysis():
    gen = torch.Generator().manual_seed(5)
    mask = torch.rand((2, 37, 5, 7), generator=gen) < 0.05
    for bm, bn in ((16, 16), (32, 16), (64, 32)):
        table = kern.tile_table(mask, bm, bn).bool().numpy()
        assert (table == tile_any(gemm_view(mask), bm, bn)).all()


def test_refusals():
    dy = torch.zeros((1, 4, 3, 3))
    weight = torch.zeros((4, 2, 1, 1))
    params = ConvParams(3, 3)
    with pytest.raises(AgosError, match="groups=1 only"):
        kern.prepare(dy, weight, params, groups=2)
    with pytest.raises(AgosError, match="float32 or float64"):
        kern.prepare(dy.half(), weight.half(), params)
    with pytest.raises(AgosError, match="mask shape"):
        kern.prepare(dy, weight, params, torch.ones((1, 3, 3, 3), dtype=torch.bool))
    with pytest.raises(AgosError, match="needs a mask"):
        kern.launch(kern.prepare(dy, weight, params), skip=True)
    with pytest.raises(AgosError, match="at least 16"):
        kern.prepare(dy, weight, params, block=(8, 16, 16))
