from __future__ import annotations

import itertools
import random

import torch
from torch import nn

from agos.workload.layer import geometry_of


def _brute_force_macs(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Count (n, k, c, p, q, r, s) tuples whose input tap lies inside the image."""
    n, c, h, w = x.shape
    y = conv(x)
    _, k, p_out, q_out = y.shape
    cg = c // conv.groups
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    r_k, s_k = conv.kernel_size
    rows = sum(1 for p, r in itertools.product(range(p_out), range(r_k)) if 0 <= p * sh + r * dh - ph < h)
    cols = sum(1 for q, s in itertools.product(range(q_out), range(s_k)) if 0 <= q * sw + s * dw - pw < w)
    return n * k * cg * rows * cols


def test_valid_tap_macs_match_brute_force():
    rng = random.Random(0)
    for _ in range(40):
        groups = rng.choice([1, 2, 4])
        conv = nn.Conv2d(
            2 * groups,
            2 * groups,
            kernel_size=rng.choice([1, 2, 3, 5]),
            stride=rng.choice([1, 2, 3]),
            padding=rng.choice([0, 1, 2]),
            dilation=rng.choice([1, 2]),
            groups=groups,
        )
        size = rng.randint(9, 14)
        x = torch.zeros(2, conv.in_channels, size, size)
        g = geometry_of(conv, x, conv(x), "l")
        assert g.macs == _brute_force_macs(conv, x)


def test_unpadded_conv_macs_are_textbook_and_linear_is_one_by_one():
    conv = nn.Conv2d(3, 8, 3)
    x = torch.zeros(2, 3, 10, 10)
    assert geometry_of(conv, x, conv(x), "c").macs == 2 * 8 * 3 * 8 * 8 * 9
    fc = nn.Linear(6, 4)
    x = torch.zeros(5, 7, 6)
    g = geometry_of(fc, x, fc(x), "fc")
    assert (g.n, g.c, g.k, g.macs) == (35, 6, 4, 35 * 6 * 4)


def test_same_padding_is_top_left_half():
    conv = nn.Conv2d(2, 2, 4, padding="same")
    x = torch.zeros(1, 2, 9, 9)
    assert geometry_of(conv, x, conv(x), "c").padding == (1, 1)
