"""The `bounds` section: exact MACs of every layer and pass under each skipping policy, and the
ideal speedups (dense MACs / effective MACs) they bound — what a design with perfect balancing and
no memory stalls would gain (DESIGN.md §4, preset `ideal`).

Takes any iterable of `LayerMasks`, so real traces and statistical density sources report alike."""

from __future__ import annotations

from collections.abc import Iterable

from agos.analysis.base import Count, Model, Ratio
from agos.progress import progress_bar
from agos.workload.counts import POLICIES, LayerWork, layer_work
from agos.workload.masks import LayerMasks
from agos.workload.passes import PASSES, SPANS

SPARSE_POLICIES = tuple(p for p in POLICIES if p != "dense")
SPEEDUPS = tuple(SPANS)
NOTES = {
    "input": "skip zero operands of each row's shared stream: X in FWD, dY in BWD-D, X in BWD-W",
    "output": "skip the dX elements the needed-dX mask drops (BWD-D only; FWD and BWD-W stay dense)",
    "input+output": "both; in BWD-W a product counts only where X and dY are both nonzero",
    "dense": "every product over valid taps (padding and stride holes are never work); no BWD-D for a "
    "layer whose input needs no gradient",
    "speedup": "dense MACs / effective MACs; null where both are 0 (no such work) or the effective MACs "
    "are 0",
}


class SpanSpeedups(Model):
    """Dense MACs / effective MACs of one policy over each span of passes (None: undefined)."""

    fwd: Ratio
    bwd_data: Ratio
    bwd_weight: Ratio
    backprop: Ratio
    iteration: Ratio


class _Spans:
    def span(self, key: str) -> dict[str, int]:
        """{policy: MACs} summed over the passes of one span (SPANS)."""
        per = [getattr(self, p) for p in SPANS[key]]
        return {policy: sum(m[policy] for m in per) for policy in per[0]}


class PassMacs(_Spans, Model):
    """MACs of each pass, {policy: MACs} per pass."""

    fwd: dict[str, Count]
    bwd_data: dict[str, Count]
    bwd_weight: dict[str, Count]


class LayerBounds(_Spans, Model):
    index: Count
    name: str
    kind: str
    needs_bwd_data: bool
    fwd: dict[str, Count]  # {policy: MACs}
    bwd_data: dict[str, Count]
    bwd_weight: dict[str, Count]
    speedups: dict[str, SpanSpeedups]  # {sparse policy: speedups}


class Bounds(Model):
    density_source: str | None  # the mask sources the layers came from, " + "-joined
    policies: list[str]
    passes: list[str]
    notes: dict[str, str]  # {policy or "speedup": what it means}
    layers: list[LayerBounds]
    totals: PassMacs
    speedups: dict[str, SpanSpeedups]  # {sparse policy: speedups of the whole model}


def speedup(dense: int, effective: int) -> float | None:
    return dense / effective if effective else None


def speedups(macs: dict[str, dict[str, int]]) -> dict[str, SpanSpeedups]:
    """{policy: speedups per span} from {pass: {policy: MACs}}."""
    out = {}
    for policy in SPARSE_POLICIES:
        out[policy] = SpanSpeedups(
            **{
                key: speedup(sum(macs[p]["dense"] for p in passes), sum(macs[p][policy] for p in passes))
                for key, passes in SPANS.items()
            }
        )
    return out


def layer_bounds(index: int, work: LayerWork) -> LayerBounds:
    macs = {p: {policy: work.total(p, policy) for policy in POLICIES} for p in PASSES}
    return LayerBounds(
        index=index,
        name=work.name,
        kind=work.geometry.kind,
        needs_bwd_data=work.needs_bwd_data,
        **macs,
        speedups=speedups(macs),
    )


def compute_bounds(masks: Iterable[LayerMasks], total_layers: int | None = None) -> Bounds:
    """Count every layer (one at a time: only its totals are kept) and sum the model."""
    layers = []
    sources: set[str] = set()
    with progress_bar("counting MACs", total_layers or 0) as advance:
        for i, m in enumerate(masks):
            sources.add(m.source)
            layers.append(layer_bounds(i, layer_work(m)))
            advance(1, m.name)
    return bounds_from_layers(layers, sources)


def bounds_from_layers(layers: list[LayerBounds], sources: set[str]) -> Bounds:
    """The model-level section of per-layer entries made by `layer_bounds`."""
    totals = {
        p: {policy: sum(getattr(layer, p)[policy] for layer in layers) for policy in POLICIES} for p in PASSES
    }
    return Bounds(
        density_source=" + ".join(sorted(sources)) if sources else None,
        policies=list(POLICIES),
        passes=list(PASSES),
        notes=dict(NOTES),
        layers=layers,
        totals=PassMacs(**totals),
        speedups=speedups(totals),
    )
