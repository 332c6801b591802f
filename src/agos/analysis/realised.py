"""The `realised` section: the zero fractions of the masks the figures were computed on — the
trace's own for real masks, the drawn ones for a statistical source — MAC-weighted over layers.
It is what the bounds and the simulation saw, so a reader can tell a profile's target from what
the drawn masks delivered."""

from __future__ import annotations

from collections.abc import Iterable

from agos.analysis.base import Count, Fraction, Model
from agos.workload.masks import LayerMasks

WEIGHTING = "MAC-weighted means over layers (dX skip over layers that run BWD-D)"


class LayerZeros(Model):
    """One layer's mask counts: enough to weight and add up layers (picklable for workers)."""

    macs: Count
    x_numel: Count
    y_numel: Count
    x_count: Count  # nonzero X
    dy_count: Count  # nonzero dY
    dx_count: Count | None  # needed dX; None where the layer runs no BWD-D

    @classmethod
    def of(cls, masks: LayerMasks) -> LayerZeros:
        g = masks.geometry
        return cls(
            macs=g.macs,
            x_numel=g.x_numel,
            y_numel=g.y_numel,
            x_count=masks.x_count,
            dy_count=masks.dy_count,
            dx_count=masks.dx_count if masks.needs_bwd_data else None,
        )


class Realised(Model):
    weighting: str = WEIGHTING
    x_zero_frac: Fraction
    dy_zero_frac: Fraction
    dx_skip_frac: Fraction


def realised_of(layers: Iterable[LayerZeros]) -> Realised:
    sums = {"x": 0.0, "dy": 0.0, "dx": 0.0}
    weights = {"x": 0, "dy": 0, "dx": 0}
    for s in layers:
        for key, zero in (("x", 1 - s.x_count / s.x_numel), ("dy", 1 - s.dy_count / s.y_numel)):
            sums[key] += zero * s.macs
            weights[key] += s.macs
        if s.dx_count is not None:
            sums["dx"] += (1 - s.dx_count / s.x_numel) * s.macs
            weights["dx"] += s.macs

    def mean(k: str) -> float:
        return sums[k] / weights[k] if weights[k] else 0.0

    return Realised(x_zero_frac=mean("x"), dy_zero_frac=mean("dy"), dx_skip_frac=mean("dx"))
