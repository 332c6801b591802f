"""`analyse`: the one computation behind the figures of `agos sparsity`, `density`, `bounds`,
`simulate`, `trajectory` and `reproduce` — a trace and a density source in, an `Analysis` out.
Each section is computed once: the bounds and the realised sparsity come out of the same pass over
the layers as the simulation (`layer_summary`, run in the simulation's worker processes too)."""

from __future__ import annotations

from collections.abc import Iterable

from agos.analysis.bounds import bounds_from_layers, layer_bounds
from agos.analysis.model import SECTIONS, Analysis, DensityInfo
from agos.analysis.realised import LayerZeros, realised_of
from agos.capture.trace import Trace
from agos.density.select import DensitySource
from agos.errors import AgosError
from agos.inputs.provenance import provenance_label
from agos.progress import progress_bar
from agos.workload.counts import LayerWork, layer_work
from agos.workload.masks import LayerMasks

COUNTED = {"bounds", "realised"}  # what one pass of counts over the layers gives


def layer_summary(masks: LayerMasks, work: LayerWork) -> tuple:
    """What the bounds and realised sections need of one layer besides its simulation (module level,
    so simulation workers can compute it)."""
    return layer_bounds(0, work), LayerZeros.of(masks)


def analyse(
    trace: Trace,
    source: DensitySource,
    sections: Iterable[str],
    designs: list | None = None,
    *,
    workers: int | None = None,
    lookahead: list[int | str] | None = None,
    all_layers: bool = False,
    oracle: bool = False,
) -> Analysis:
    """The asked-for sections of one trace under one density source. `simulation` needs `designs`
    (loaded archs); `lookahead` adds the window sensitivity to it. `sparsity` describes the trace's
    own recorded masks, so it is refused for a statistical source. `oracle` also runs each design
    with every feature always on, for the bypass rule's per-layer oracle."""
    wanted = set(sections)
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    if "sparsity" in wanted and source.kind != "real":
        raise AgosError("the sparsity section describes the trace's own masks: use real masks")
    if "density_mapping" in wanted and source.kind == "real":
        raise AgosError("the density mapping shows statistical sources: give uniform:S or profile:FILE")
    out = {}
    summaries = None
    if "simulation" in wanted:
        out["simulation"], summaries = _simulate(
            trace, source, designs, workers, lookahead, all_layers, oracle
        )
    elif wanted & COUNTED:
        summaries = _count(trace, source)
    if summaries is not None:
        if "bounds" in wanted:
            layers = [b.model_copy(update={"index": i}) for i, (b, _) in enumerate(summaries)]
            out["bounds"] = bounds_from_layers(layers, {source.label})
        if "realised" in wanted:
            out["realised"] = realised_of(z for _, z in summaries)
    if "sparsity" in wanted:
        from agos.analysis.sparsity import compute_sparsity

        out["sparsity"] = compute_sparsity(trace)
    if "tiles" in wanted:
        from agos.analysis.tiles import compute_tiles

        out["tiles"] = compute_tiles(trace, source)
    if "structure" in wanted:
        from agos.analysis.structure import compute_structure

        out["structure"] = compute_structure(trace, source)
    if "density_mapping" in wanted:
        from agos.analysis.density_mapping import compute_density_mapping

        out["density_mapping"] = compute_density_mapping(trace, source)
    return Analysis(
        label=provenance_label(trace.provenance, source.label),
        provenance=trace.provenance,
        trace=str(trace.path),
        density=DensityInfo.of(source),
        capture_notes=list(trace.manifest.notes),
        **out,
    )


def _count(trace: Trace, source: DensitySource) -> list[tuple]:
    """Exact counts of every layer, one at a time (only the per-layer summaries are kept)."""
    summaries = []
    with progress_bar("counting MACs", len(trace.layers)) as advance:
        for masks in source.masks(trace):
            summaries.append(layer_summary(masks, layer_work(masks)))
            advance(1, masks.name)
    return summaries


def _simulate(trace, source, designs, workers, lookahead, all_layers, oracle=False):
    from agos.analysis.simulation import simulation_of
    from agos.cost.network import MaskSource, lookahead_sensitivity, simulate_network

    if not designs:
        raise ValueError("the simulation section needs designs")
    net = simulate_network(
        MaskSource.resolved_from(trace, source),
        designs,
        trace.manifest,
        count=len(trace.layers),
        workers=workers,
        summarise=layer_summary,
        dense_macs=3 * sum(layer.macs for layer in trace.layers),
        oracle=oracle,
    )
    sensitivity = None
    if lookahead is not None:
        sensitivity = lookahead_sensitivity(lambda: source.masks(trace), designs, trace.manifest, lookahead)
    return simulation_of(net, sensitivity, all_layers=all_layers), net.layer_summaries
