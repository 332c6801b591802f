"""The dense MACs of a training step at any image size, from a shape-only forward on the meta
device: the same layers a capture records (`LAYER_TYPES`, with their geometry) without computing
or capturing anything. A GPU comparison uses it to set a trace's per-image work at the size the
GPU was measured at (DESIGN.md §4, "GPU comparison")."""

from __future__ import annotations

import torch

from agos.capture.graph import LAYER_TYPES
from agos.errors import AgosError, first_line
from agos.inputs.models import resolve_model
from agos.workload.layer import geometry_of

BATCH = 2  # images of the shape pass (BatchNorm in training mode refuses one value per channel)


def dense_macs_per_image(model_ref: str, image_size: int) -> int:
    """Dense MACs of one training iteration per image at `image_size` px: every layer's FWD and
    BWD-W, and its BWD-D where its input needs a gradient (not the first layer), counted over
    valid taps as a trace counts them (`LayerGeometry.macs`)."""
    spec = resolve_model(model_ref)
    total = 0

    def hook(module, inputs, output) -> None:
        nonlocal total
        x = inputs[0]
        macs = geometry_of(module, x, output, type(module).__name__).macs
        total += macs * (3 if x.requires_grad else 2)

    try:
        with torch.device("meta"):
            model = spec.build()
        model.train()
        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, LAYER_TYPES)]
        model(torch.zeros(BATCH, 3, image_size, image_size, device="meta"))
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AgosError) as exc:
        raise AgosError(
            f"cannot count the MACs of {spec.name} at {image_size} px (shape pass on the meta device: "
            f"{first_line(exc)})"
        ) from None
    for h in handles:
        h.remove()
    if total % BATCH:
        raise AgosError(f"{spec.name} at {image_size} px: MACs not proportional to the batch")
    return total // BATCH
