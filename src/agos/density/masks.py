"""`LayerMasks`: the three masks of one layer call, unpacked to tensors in the layout the work
counts use (a Linear layer is the 1×1 conv: X is [rows, C, 1, 1]). Every density source produces
these; the engine and the cost model consume them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import torch

from agos.capture.bits import count_true
from agos.capture.trace import LayerRecord, Trace
from agos.workload.layer import LayerGeometry

REAL = "real masks"


@dataclass
class LayerMasks:
    name: str
    geometry: LayerGeometry
    needs_bwd_data: bool  # False: the layer runs no BWD-D at all (its input needs no gradient)
    x_nonzero: torch.Tensor  # bool [N, C, H, W]
    dy_nonzero: torch.Tensor  # bool [N, K, P, Q]
    dx_needed: torch.Tensor  # bool [N, C, H, W]; all True where the trace recorded no mask
    dx_all_needed: bool  # True when dx_needed is the conservative all-True mask
    source: str = REAL

    @cached_property
    def x_count(self) -> int:
        return count_true(self.x_nonzero)

    @cached_property
    def dy_count(self) -> int:
        return count_true(self.dy_nonzero)

    @cached_property
    def dx_count(self) -> int:
        return count_true(self.dx_needed)


def real_masks(trace: Trace, layer: LayerRecord) -> LayerMasks:
    g = layer.geometry
    x = trace.mask(layer, "x_nonzero").tensor().reshape(g.x_shape)
    dy_packed = trace.mask(layer, "dy_nonzero")
    # A layer autograd gave no dY (nothing downstream needed it) is counted as dense.
    dy = (
        dy_packed.tensor().reshape(g.y_shape)
        if dy_packed is not None
        else torch.ones(g.y_shape, dtype=torch.bool)
    )
    dx_packed = trace.mask(layer, "dx_needed")
    if dx_packed is None:
        dx = torch.ones(g.x_shape, dtype=torch.bool)
    elif layer.dx_needed == layer.x_nonzero:  # stored once: a ReLU-fed layer's dX mask is its X mask
        dx = x
    else:
        dx = dx_packed.tensor().reshape(g.x_shape)
    return LayerMasks(
        name=layer.name,
        geometry=g,
        needs_bwd_data=layer.needs_bwd_data,
        x_nonzero=x,
        dy_nonzero=dy,
        dx_needed=dx,
        dx_all_needed=dx_packed is None,
    )


def iter_real_masks(trace: Trace) -> Iterator[LayerMasks]:
    for layer in trace.layers:
        yield real_masks(trace, layer)
