"""The `density_mapping` section: how a statistical density source maps onto a trace (profile row →
activation → layers) and, per layer, the real, target and realised zero fractions of X, dY and dX."""

from __future__ import annotations

import math

from agos.analysis.base import Count, Fraction, Model
from agos.capture.trace import Trace
from agos.density.select import DensitySource
from agos.density.statistical import plan_layers, statistical_masks
from agos.errors import AgosError


class ProfileInfo(Model):
    """The profile a `profile:` source read, and what of it found no counterpart in the trace."""

    source: str  # "sparsetrain", "sparsetrain/MODEL" or the file as the user gave it
    model: str | None  # the network the profile was measured on, where it says
    checkpoint: int | None
    checkpoints: Count  # how many the profile holds
    trace_model: str
    unmatched_rows: list[str]
    unmapped_activations: list[str]


class ProfileRowMatch(Model):
    """One profile row and the activation and layers it reaches."""

    row: Count  # 1-based order in the profile
    label: str
    zero_fraction: Fraction
    pooled: bool
    activation: str | None
    x_layers: list[str]
    y_layers: list[str]
    note: str


class ActivationMapping(Model):
    """One ReLU activation of the trace: its real clamped fraction and the target it is drawn at."""

    index: Count  # 1-based
    name: str
    op: str
    shape: list[Count]
    row: str | None  # the label of the profile row that sets it
    real_clamped_frac: Fraction
    target: Fraction | None  # None: keeps its real mask
    x_reused_by: list[str]
    dy_drawn_for: list[str]


class ZeroFractions(Model):
    """Zero (or, for dX, skippable) fraction of one tensor: real, target (None: real) and realised."""

    real: Fraction
    target: Fraction | None
    realised: Fraction
    rule: str


class LayerMapping(Model):
    index: Count
    name: str
    macs: Count  # per pass
    needs_bwd_data: bool
    x: ZeroFractions
    dy: ZeroFractions
    dx_skip: ZeroFractions


class MappingTotals(Model):
    weighting: str
    x_real: Fraction
    x_realised: Fraction
    dy_real: Fraction
    dy_realised: Fraction
    dx_skip_real: Fraction
    dx_skip_realised: Fraction


class DensityMapping(Model):
    profile: ProfileInfo | None  # profiles only
    rows: list[ProfileRowMatch]
    activations: list[ActivationMapping]
    layers: list[LayerMapping]
    totals: MappingTotals
    notes: list[str]


def _frac(count: int, numel: int) -> float:
    return 1 - count / numel if numel else 0.0


def compute_density_mapping(trace: Trace, source: DensitySource) -> DensityMapping:
    """The mapping of a statistical source (resolved once: `density.select.resolve_density`)."""
    if source.statistical is None:
        raise AgosError("agos density shows statistical sources: give --density uniform:S or profile:FILE")
    fractions = source.statistical.fractions
    mapping = source.statistical.mapping
    plans = plan_layers(trace, fractions)

    x_of: dict[str, list[str]] = {}
    dy_of: dict[str, list[str]] = {}
    for layer, plan in zip(trace.layers, plans, strict=True):
        for a in plan.x.parts:
            x_of.setdefault(a, []).append(layer.name)
        if plan.dy.act:
            dy_of.setdefault(plan.dy.act, []).append(layer.name)

    row_of = {}
    rows = []
    if mapping is not None:
        for m in mapping.matches:
            if m.activation and not m.row.pooled:
                row_of[m.activation] = m.row.label
            rows.append(
                ProfileRowMatch(
                    row=m.row.order,
                    label=m.row.label,
                    zero_fraction=m.row.zero_fraction,
                    pooled=m.row.pooled,
                    activation=m.activation,
                    x_layers=list(m.x_layers),
                    y_layers=list(m.y_layers),
                    note=m.note,
                )
            )
    activations = []
    for i, a in enumerate(trace.manifest.activations, 1):
        numel = math.prod(a.shape)
        activations.append(
            ActivationMapping(
                index=i,
                name=a.name,
                op=a.op,
                shape=list(a.shape),
                row=row_of.get(a.name),
                real_clamped_frac=a.clamped / numel if numel else 0.0,
                target=fractions.activations.get(a.name),
                x_reused_by=x_of.get(a.name, []),
                dy_drawn_for=dy_of.get(a.name, []),
            )
        )

    layers = []
    for i, (layer, plan, masks) in enumerate(
        zip(trace.layers, plans, statistical_masks(trace, fractions, source.seed, plans), strict=True)
    ):
        g = layer.geometry
        x_numel, y_numel = g.x_numel, g.y_numel
        bwd = layer.needs_bwd_data
        real_dx = _frac(layer.dx_needed.count, x_numel) if (bwd and layer.dx_needed is not None) else 0.0
        layers.append(
            LayerMapping(
                index=i,
                name=layer.name,
                macs=layer.macs,
                needs_bwd_data=bwd,
                x=ZeroFractions(
                    real=_frac(layer.x_nonzero.count, x_numel),
                    target=plan.x.target,
                    realised=_frac(masks.x_count, x_numel),
                    rule=plan.x.rule,
                ),
                dy=ZeroFractions(
                    real=_frac(layer.dy_nonzero.count, y_numel) if layer.dy_nonzero is not None else 0.0,
                    target=plan.dy.target,
                    realised=_frac(masks.dy_count, y_numel),
                    rule=plan.dy.rule,
                ),
                dx_skip=ZeroFractions(
                    real=real_dx,
                    target=plan.dx.target if bwd else None,
                    realised=_frac(masks.dx_count, x_numel) if bwd else 0.0,
                    rule=plan.dx.rule,
                ),
            )
        )

    def weighted(part: str, key: str, only_bwd: bool = False) -> float:
        chosen = [s for s in layers if s.needs_bwd_data or not only_bwd]
        total = sum(s.macs for s in chosen)
        return sum(getattr(getattr(s, part), key) * s.macs for s in chosen) / total if total else 0.0

    totals = MappingTotals(
        weighting="MAC-weighted means over layers (dX skip over layers that run BWD-D)",
        **{
            f"{part}_{key}": weighted(part, key, only_bwd=part == "dx_skip")
            for part in ("x", "dy", "dx_skip")
            for key in ("real", "realised")
        },
    )
    notes = list(mapping.notes) if mapping is not None else []
    kept_x = [s.name for s in layers if s.x.target is None]
    if kept_x:
        notes.append(f"X keeps its real mask in {len(kept_x)} layer(s): {', '.join(kept_x)}")
    pooled = [s.name for s in layers if "pooling exponent" in s.x.rule]
    if pooled:
        notes.append(
            "X is pooled and no row describes the pooled output, so it is drawn at s^k (k: the trace's "
            f"own pooling exponent) in: {', '.join(pooled)}"
        )
    kept_dy = [s.name for s in layers if s.dy.target is None]
    if kept_dy:
        notes.append(f"dY keeps its real mask in {len(kept_dy)} layer(s) (BN before the ReLU, or no ReLU)")
    profile = None
    if mapping is not None:
        profile = ProfileInfo(
            source=mapping.profile.source,
            model=mapping.profile.model,
            checkpoint=mapping.profile.checkpoint,
            checkpoints=len(mapping.profile.checkpoints),
            trace_model=mapping.trace_model,
            unmatched_rows=[m.row.label for m in mapping.unmatched_rows],
            unmapped_activations=list(mapping.unmapped_activations),
        )
    return DensityMapping(
        profile=profile, rows=rows, activations=activations, layers=layers, totals=totals, notes=notes
    )
