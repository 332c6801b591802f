"""Choose the masks a simulation runs on: the trace's real masks, or statistical ones."""

from __future__ import annotations

from collections.abc import Iterator

from agos.capture.trace import Trace
from agos.density.masks import REAL, LayerMasks, iter_real_masks
from agos.errors import AgosError


def layer_masks(trace: Trace, density: str = "real", seed: int = 0) -> Iterator[LayerMasks]:
    if density == "real":
        return iter_real_masks(trace)
    raise AgosError(f"unknown density source '{density}' (use real)")


def density_label(trace: Trace, density: str = "real", seed: int = 0) -> str:
    return REAL if density == "real" else f"{density} (seed {seed})"
