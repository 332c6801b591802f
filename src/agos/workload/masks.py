"""`LayerMasks`: the three masks of one layer call, unpacked to tensors in the layout the work
counts use (a Linear layer is the 1×1 conv: X is [rows, C, 1, 1]). Every density source produces
these; the engine and the cost model consume them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from agos.workload.bits import count_true
from agos.workload.layer import LayerGeometry

REAL = "real masks"  # the source label of masks read from a trace


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
