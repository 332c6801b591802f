"""The "sparsity" section: per-layer zero fractions of the three passes (X, dY, skippable dX) and
the forward/backward correlation, read from a trace's recorded mask counts, with their MAC-weighted
network totals (`agos sparsity`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agos.analysis.base import Count, Fraction, Model, NonNegative

if TYPE_CHECKING:
    from agos.capture.trace import LayerRecord, Trace


class LayerSparsity(Model):
    index: Count
    name: str
    kind: str
    macs: Count  # dense MACs of one pass
    x_zero_frac: Fraction
    dy_zero_frac: Fraction
    dx_skip_frac: Fraction  # share of dX that need not be computed (0 where no BWD-D runs)
    needs_bwd_data: bool
    dx_reason: str | None
    x_producer: str
    y_consumer: str
    act_direct: bool  # Y goes straight into a ReLU-like op
    act_zero_frac: Fraction | None  # share of Y's elements whose activation (ReLU output) is zero
    agreement: Fraction | None  # P[(activation zero) == (dY zero)] over Y's elements
    dy_zero_given_act_zero: Fraction | None


class SparsityTotals(Model):
    layers: Count
    macs_per_pass: Count
    bwd_data_macs: Count
    weighting: str
    x_zero_frac: Fraction
    dy_zero_frac: Fraction
    dx_skip_frac: Fraction
    layers_with_dx_mask: Count
    layers_act_direct: Count


class Sparsity(Model):
    loss: NonNegative  # the captured step's loss (cross-entropy)
    graph: str  # how the trace's graph was read (fx, autograd)
    layers: list[LayerSparsity]
    totals: SparsityTotals


WEIGHTING = "MAC-weighted means over layers (dX skip over layers that run BWD-D)"


def _fraction(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def layer_sparsity(index: int, layer: LayerRecord) -> LayerSparsity:
    g = layer.geometry
    x_numel = g.x_numel
    y_numel = g.y_numel
    dy = layer.dy_nonzero
    dx = layer.dx_needed
    agreement = given = act_zero = None
    if layer.correlation is not None:
        c = layer.correlation
        total = c.act_zero_dy_zero + c.act_zero_dy_nonzero + c.act_nonzero_dy_zero + c.act_nonzero_dy_nonzero
        agreement = _fraction(c.act_zero_dy_zero + c.act_nonzero_dy_nonzero, total)
        given = _fraction(c.act_zero_dy_zero, c.act_zero_dy_zero + c.act_zero_dy_nonzero)
        act_zero = _fraction(c.act_zero_dy_zero + c.act_zero_dy_nonzero, total)
    first_step = layer.y_consumer.split(" → ")[0]
    return LayerSparsity(
        index=index,
        name=layer.name,
        kind=layer.kind,
        macs=layer.macs,
        x_zero_frac=1 - _fraction(layer.x_nonzero.count, x_numel),
        dy_zero_frac=1 - _fraction(dy.count, y_numel) if dy is not None else 0.0,
        dx_skip_frac=1 - _fraction(dx.count, x_numel) if (dx is not None and layer.needs_bwd_data) else 0.0,
        needs_bwd_data=layer.needs_bwd_data,
        dx_reason=layer.dx_reason,
        x_producer=layer.x_producer,
        y_consumer=layer.y_consumer,
        act_direct=first_step in ("ReLU", "ReLU6") or first_step.startswith("Hardtanh"),
        act_zero_frac=act_zero,
        agreement=agreement,
        dy_zero_given_act_zero=given,
    )


def compute_sparsity(trace: Trace) -> Sparsity:
    """The section of one trace (its recorded counts: real masks only)."""
    layers = [layer_sparsity(i, layer) for i, layer in enumerate(trace.layers)]

    def weighted(attr: str, only_bwd: bool = False) -> float:
        chosen = [s for s in layers if s.needs_bwd_data or not only_bwd]
        total = sum(s.macs for s in chosen)
        return sum(getattr(s, attr) * s.macs for s in chosen) / total if total else 0.0

    totals = SparsityTotals(
        layers=len(layers),
        macs_per_pass=sum(s.macs for s in layers),
        bwd_data_macs=sum(s.macs for s in layers if s.needs_bwd_data),
        weighting=WEIGHTING,
        x_zero_frac=weighted("x_zero_frac"),
        dy_zero_frac=weighted("dy_zero_frac"),
        dx_skip_frac=weighted("dx_skip_frac", only_bwd=True),
        layers_with_dx_mask=sum(1 for s in layers if s.needs_bwd_data and s.dx_reason is None),
        layers_act_direct=sum(1 for s in layers if s.act_direct),
    )
    return Sparsity(loss=trace.manifest.loss, graph=trace.manifest.graph, layers=layers, totals=totals)
