"""Layers for the RTL comparisons: random small ones (every group filling its column tiles, as a
one-stream row needs) and cuts of a trace's real layers (its masks, fewer images and channels)."""

import dataclasses
import random

import numpy as np
import torch

from agos.rtl.harness import RtlItem
from agos.rtl.row import MODE_COMPACT, MODE_JOIN, MODE_STREAM, RowConfig
from agos.workload.layer import LayerGeometry
from agos.workload.masks import LayerMasks


def random_layer(seed: int, cols: int, small: bool = False) -> LayerMasks:
    """A random conv layer with at least `cols` input and output channels (one group); `small`:
    at most 2·cols channels and 4 × 4 pixels."""
    r = random.Random(seed)
    most = 2 * cols if small else 3 * cols
    cin, cout = r.randint(cols, most), r.randint(cols, most)
    while True:
        k, stride, pad, dil = r.choice([1, 2, 3]), r.choice([1, 1, 2]), r.choice([0, 1]), r.choice([1, 1, 2])
        size = r.randint(3, 4 if small else 6)
        out = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
        if out >= 1:
            break
    n = 1 if small else r.randint(1, 2)
    g = LayerGeometry(
        "conv", n, cin, size, size, cout, out, out, k, k, (stride, stride), (pad, pad), (dil, dil)
    )
    gen = torch.Generator().manual_seed(seed)
    dens = [r.choice([0.1, 0.3, 0.5, 0.7, 1.0]) for _ in range(3)]
    return LayerMasks(
        name=f"random{seed}",
        geometry=g,
        needs_bwd_data=True,
        x_nonzero=torch.rand(g.x_shape, generator=gen) < dens[0],
        dy_nonzero=torch.rand(g.y_shape, generator=gen) < dens[1],
        dx_needed=torch.rand(g.x_shape, generator=gen) < dens[2],
        dx_all_needed=False,
        source="random",
    )


def cut_layer(masks: LayerMasks, images: int, in_channels: int, out_channels: int) -> LayerMasks:
    """The first images and channels of a real layer (one group), its masks unchanged there."""
    g = masks.geometry
    if g.groups != 1:
        raise ValueError(f"layer {masks.name}: grouped layers are not cut")
    cut = dataclasses.replace(g, n=min(images, g.n), c=min(in_channels, g.c), k=min(out_channels, g.k))
    return LayerMasks(
        name=masks.name,
        geometry=cut,
        needs_bwd_data=masks.needs_bwd_data,
        x_nonzero=masks.x_nonzero[: cut.n, : cut.c].contiguous(),
        dy_nonzero=masks.dy_nonzero[: cut.n, : cut.k].contiguous(),
        dx_needed=masks.dx_needed[: cut.n, : cut.c].contiguous(),
        dx_all_needed=masks.dx_all_needed,
        source=masks.source,
    )


def random_items(
    cfg: RowConfig, count: int, seed: int, max_length: int = 24, bypass: bool = False
) -> list[RtlItem]:
    """Random items for the row alone: streams of random length and density, random operands, own
    bits and output-skip fields; every feature on, but a fifth of the items with random mode bits
    (`bypass`: every item with every mode bit off)."""
    rng = np.random.default_rng(seed)
    C, D = cfg.cols, cfg.banks
    out = []
    for _ in range(count):
        T = int(rng.integers(1, max_length + 1))
        bits = rng.random(T) < rng.choice([0.0, 0.2, 0.5, 0.8, 1.0])
        values = np.where(bits, rng.integers(1, 128, T) * rng.choice([-1, 1], T), 0)
        ops = rng.integers(-128, 128, (C, D, T))
        own = None
        if cfg.join:
            own = rng.random((C, T)) < rng.choice([0.2, 0.5, 0.9])
            ops[:, 0] = np.where(own, ops[:, 0], 0)
        mode = 0 if bypass else MODE_STREAM | MODE_JOIN | MODE_COMPACT
        if not bypass and rng.random() < 0.2:
            mode = int(rng.integers(0, 8))
        fields = {}
        if cfg.outputs == "static":
            fields["slots"] = int(rng.integers(0, 1 << C))
        if cfg.outputs == "compacted":
            chans = rng.choice(C * D, size=int(rng.integers(1, C + 1)), replace=False)
            fields["set"] = int(sum(1 << int(c) for c in chans))
            fields["bank"] = int(rng.integers(0, D))
        out.append(RtlItem(bits, values, ops, own, mode, fields))
    return out
