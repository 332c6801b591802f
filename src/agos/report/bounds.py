"""`agos bounds`: exact MACs of every layer and pass under each skipping policy, and the ideal
speedups (dense MACs / effective MACs) they bound — what a design with perfect balancing and no
memory stalls would gain (DESIGN.md §4, preset `ideal`).

Takes any iterable of `LayerMasks`, so real traces and statistical density sources report alike."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from agos.inputs.provenance import provenance_label
from agos.progress import progress_bar
from agos.report.sparsity import wide_console
from agos.workload.counts import POLICIES, LayerWork, layer_work
from agos.workload.masks import LayerMasks
from agos.workload.passes import LABELS, PASSES, SPANS

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


def speedup(dense: int, effective: int) -> float | None:
    return dense / effective if effective else None


def speedups(macs: dict[str, dict[str, int]]) -> dict[str, dict[str, float | None]]:
    """{policy: {fwd, bwd_data, bwd_weight, backprop, iteration}} from {pass: {policy: MACs}}."""
    out = {}
    for policy in SPARSE_POLICIES:
        out[policy] = {
            key: speedup(sum(macs[p]["dense"] for p in passes), sum(macs[p][policy] for p in passes))
            for key, passes in SPANS.items()
        }
    return out


def layer_bounds(index: int, work: LayerWork) -> dict:
    macs = {p: {policy: work.total(p, policy) for policy in POLICIES} for p in PASSES}
    return {
        "index": index,
        "name": work.name,
        "kind": work.geometry.kind,
        "needs_bwd_data": work.needs_bwd_data,
        **macs,
        "speedups": speedups(macs),
    }


def summarise(
    masks: Iterable[LayerMasks],
    provenance: dict,
    trace: str | None = None,
    total_layers: int | None = None,
) -> dict:
    """Count every layer (one at a time: only its totals are kept) and sum the model."""
    layers = []
    sources: set[str] = set()
    with progress_bar("counting MACs", total_layers or 0) as advance:
        for i, m in enumerate(masks):
            sources.add(m.source)
            layers.append(layer_bounds(i, layer_work(m)))
            advance(1, m.name)
    return summarise_layers(layers, sources, provenance, trace)


def summarise_layers(
    layers: list[dict], sources: set[str], provenance: dict, trace: str | None = None
) -> dict:
    """The model-level summary of per-layer entries made by `layer_bounds`."""
    totals = {p: {policy: sum(layer[p][policy] for layer in layers) for policy in POLICIES} for p in PASSES}
    density = " + ".join(sorted(sources)) if sources else None
    return {
        "provenance": provenance,
        "label": provenance_label(provenance, density),
        "trace": trace,
        "density_source": density,
        "policies": list(POLICIES),
        "passes": list(PASSES),
        "notes": NOTES,
        "layers": layers,
        "totals": totals,
        "speedups": speedups(totals),
    }


def summarise_trace(trace) -> dict:
    from agos.density.real import iter_real_masks

    return summarise(iter_real_masks(trace), trace.provenance, str(trace.path), len(trace.layers))


# -- rendering ---------------------------------------------------------------------------------


def _macs(n: int) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3f}{unit}"
    return str(n)


def _x(value: float | None, dense: int) -> str:
    if value is None:
        return "—" if dense == 0 else "∞"
    return f"{value:.2f}×"


def _rows(table: Table, label: str, name: str, macs: dict[str, dict[str, int]], keys) -> None:
    for j, key in enumerate(keys):
        passes = SPANS[key]
        per = {policy: sum(macs[p][policy] for p in passes) for policy in POLICIES}
        table.add_row(
            label if j == 0 else "",
            name if j == 0 else "",
            LABELS[key],
            *(_macs(per[policy]) for policy in POLICIES),
            *(_x(speedup(per["dense"], per[policy]), per["dense"]) for policy in SPARSE_POLICIES),
        )


def _table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, justify in (("#", "right"), ("layer", "left"), ("pass", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for policy in POLICIES:
        table.add_column(f"{policy} MACs", justify="right", no_wrap=True)
    for policy in SPARSE_POLICIES:
        table.add_column(f"× {policy}", justify="right", no_wrap=True)
    return table


def print_table(summary: dict, console: Console | None = None) -> None:
    console = console or wide_console()
    table = _table(f"Exact MACs per policy and ideal speedups — {summary['label']}")
    for layer in summary["layers"]:
        _rows(table, str(layer["index"]), layer["name"], layer, PASSES)
        table.add_section()
    _rows(table, "", "model total", summary["totals"], SPEEDUPS)
    console.print(table)

    short = Table(
        title="Ideal speedup of the whole model (dense MACs / effective MACs)", title_justify="left"
    )
    short.add_column("policy", justify="left")
    for key in SPEEDUPS:
        short.add_column(LABELS[key], justify="right", no_wrap=True)
    totals = summary["totals"]
    for policy in SPARSE_POLICIES:
        dense = {key: sum(totals[p]["dense"] for p in SPANS[key]) for key in SPEEDUPS}
        short.add_row(policy, *(_x(summary["speedups"][policy][key], dense[key]) for key in SPEEDUPS))
    console.print(short)
    for policy in POLICIES:
        console.print(f"{policy}: {NOTES[policy]}")
