"""The default density source: the masks a trace recorded, unpacked into `LayerMasks`."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from agos.capture.trace import LayerRecord, Trace
from agos.workload.masks import LayerMasks


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
