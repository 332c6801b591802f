"""The "simulation" section of an `Analysis`: cycles, area, energy and speedups of each design on a
trace (what `agos simulate` reports). Every speedup is over the design's dense twin (the same
organisation with skipping off) unless named otherwise; each design is also set against the best
dense design of equal area. Each design carries its hash, so every number names what made it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from agos.analysis.base import Count, Model, NonNegative, Ratio
from agos.errors import AgosError
from agos.workload.passes import PASSES, SPANS

if TYPE_CHECKING:  # the cost model is imported where it is used: reading an Analysis needs none of it
    from agos.cost.network import DesignResult, NetworkResult


class SpanRatios(Model):
    """A ratio per span (speedup over the twin, MAC bound, lookahead sensitivity)."""

    fwd: Ratio
    bwd_data: Ratio
    bwd_weight: Ratio
    backprop: Ratio
    iteration: Ratio


class SpanCycles(Model):
    fwd: Count
    bwd_data: Count
    bwd_weight: Count
    backprop: Count
    iteration: Count


class Cycles(SpanCycles):
    """Cycles per span and of the vector unit (the iteration includes it)."""

    vector: Count


class TimeMs(Model):
    fwd: NonNegative
    bwd_data: NonNegative
    bwd_weight: NonNegative
    backprop: NonNegative
    iteration: NonNegative
    vector: NonNegative


class Components(Model):
    """Where a span's cycles go."""

    work: Count
    fill_drain: Count
    delivery: Count
    exposed: Count


class SpanComponents(Model):
    fwd: Components
    bwd_data: Components
    bwd_weight: Components
    backprop: Components
    iteration: Components


class Vector(Model):
    """The vector unit's non-convolution work."""

    cycles: Count
    by_class: dict[str, Count]  # cycles per op class
    note: str | None  # what was left out, when anything was


class Tiling(Model):
    order: str
    position_blocks: Count
    channel_blocks: Count
    stream_blocks: Count


class DramBytes(Model):
    a: Count
    b: Count
    o: Count


class PassFigures(Model):
    """One pass of one layer on one design."""

    cycles: Count
    compute_cycles: Count
    tiles: Count
    tiling: Tiling
    items: Count
    dram_bytes: DramBytes
    dense_macs: Count
    effective_macs: Count
    design_macs: Count
    mapping_bound_cycles: Count
    mac_bound_cycles: Count
    components: dict[str, Count]
    actions: dict[str, NonNegative]
    energy_pj: NonNegative
    energy_breakdown_pj: dict[str, NonNegative]
    utilisation: Ratio
    bypassed: list[str] = Field(default_factory=list)  # what the bypass rule switched off (§11)
    decision_cycles: Count = 0  # the rule's own cycles, in `cycles`
    predicted: Ratio = None  # output skip's predicted time ratio, on / off (§11), where decided


class LayerFigures(Model):
    name: str
    kind: str
    fwd: PassFigures
    bwd_data: PassFigures
    bwd_weight: PassFigures
    speedup_over_twin: SpanRatios


class DesignFigures(Model):
    """Everything one design reports. The comparisons (twin … speedup_per_area_over_twin) are given
    for the requested designs (role "design") only; the layers for those the report asked for."""

    role: Literal["design", "twin", "equal-area", "always-on"]
    organisation: str
    preset: str | None
    description: str
    source: str
    sha256: str
    pe_array: tuple[Count, Count]  # rows, cols
    precision: str
    global_buffer_bytes: Count
    area_mm2: NonNegative
    area_breakdown_mm2: dict[str, NonNegative]
    static_mw: NonNegative
    cycles: Cycles
    time_ms: TimeMs
    energy_j: NonNegative
    energy_breakdown_j: dict[str, NonNegative]
    energy_vs_twin: Ratio
    dram_bytes: Count
    utilisation: Ratio
    components: SpanComponents
    mapping_bound_cycles: SpanCycles
    vector: Vector
    twin: str | None = None
    speedup_over_twin: SpanRatios | None = None
    mac_bound_speedup: SpanRatios | None = None
    best_dense_equal_area: str | None = None
    speedup_over_best_dense_equal_area: Ratio = None
    flags: list[str] | None = None
    speedup_per_area_over_twin: Ratio = None
    bypass: Literal["rule", "never"] = "never"
    bypassed_passes: Count | None = None  # layer passes in which the rule switched anything off
    always_on_speedup_over_twin: SpanRatios | None = None  # every feature on (`bypass: never`)
    oracle_speedup_over_twin: SpanRatios | None = None  # per layer and pass the best of the three
    layers: list[LayerFigures] | None = None


class Notes(Model):
    """What the speedups are over (constant; carried so that a reader of the JSON has them)."""

    speedup_over_twin: str = "over the same organisation with every skip, gate and compression off"
    mac_bound_speedup: str = "dense MACs / the MACs this design's skipping leaves (its policy)"
    speedup_over_best_dense_equal_area: str = (
        "best dense design whose area is at most this design's "
        "(its extra area spent on PEs or buffer, on its own organisation and every shipped one, "
        "with its own array, memory and precision) / this design"
    )
    oracle_speedup_over_twin: str = (
        "per layer and pass the best of the bypass rule's choice, every feature on and the twin "
        "(simulated cycles): an upper bound on any bypass rule, not a design"
    )
    iteration: str = "FWD + BWD-D + BWD-W + the vector unit's non-convolution work; backprop excludes it"


class Simulation(Model):
    requested: list[str]  # the designs asked for, in order
    equal_area: dict[str, list[str]]  # design → its equal-area dense candidates
    vector_note: str | None
    designs: dict[str, DesignFigures]  # requested first, then twins, then equal-area candidates
    lookahead_sensitivity: dict[str, dict[str, SpanRatios]] | None = None  # design → window → span
    notes: Notes = Notes()


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _cycles(d: DesignResult) -> dict[str, int]:
    out = {s: d.cycles(s) for s in SPANS}
    out["vector"] = d.vector.cycles
    return out


def _components(d: DesignResult) -> dict[str, dict[str, int]]:
    out = {}
    for span, passes in SPANS.items():
        keys = ("work", "fill_drain", "delivery", "exposed")
        out[span] = {
            k: int(sum(layer.passes[p].components.get(k, 0) for layer in d.layers for p in passes))
            for k in keys
        }
    return out


def _pass_figures(cost, pes: int) -> PassFigures:
    return PassFigures(
        cycles=cost.cycles,
        compute_cycles=cost.compute_cycles,
        tiles=len(cost.tile_compute),
        tiling=Tiling(
            order=cost.order,
            position_blocks=cost.blocks[0],
            channel_blocks=cost.blocks[1],
            stream_blocks=cost.blocks[2],
        ),
        items=cost.items,
        dram_bytes=DramBytes(a=cost.dram_a, b=cost.dram_b, o=cost.dram_o),
        dense_macs=cost.dense_macs,
        effective_macs=cost.effective_macs,
        design_macs=cost.design_macs,
        mapping_bound_cycles=cost.mapping_bound,
        mac_bound_cycles=cost.mac_bound,
        components=cost.components,
        actions=cost.actions,
        energy_pj=cost.energy_pj,
        energy_breakdown_pj=cost.energy_breakdown,
        utilisation=_ratio(cost.effective_macs, pes * cost.cycles),
        bypassed=list(cost.bypassed),
        decision_cycles=cost.decision_cycles,
        predicted=cost.predicted,
    )


# which prices of the energy table (arch/energy.py) each part of the energy breakdown multiplies
PRICES = {
    "mac": ("mac", "mac_gated"),
    "buffer": ("buffer_read_per_byte", "buffer_write_per_byte"),
    "store": ("store_read_per_byte", "store_write_per_byte"),
    "metadata": ("metadata_read_per_bit",),
    "crossbar": ("crossbar_per_byte_mm",),
    "dram": ("dram_per_byte",),
    "vector": ("vector_add", "vector_multiply"),
    "vector_memory": ("dram_per_byte", "buffer_read_per_byte", "buffer_write_per_byte"),
}


def require_finite_energy(d: DesignResult, name: str) -> None:
    """A total that overflowed (inf, or NaN from inf − inf) is an error naming the design and the
    prices it multiplied — never an `inf` in a table or a null in the JSON."""
    import math

    energy = d.energy_pj()
    if math.isfinite(energy):
        return
    table = d.loaded.energy
    bad = [k for k, v in d.energy_breakdown().items() if not math.isfinite(v)] or ["total"]
    prices = ", ".join(
        f"{p} {getattr(table, p) if p != 'mac' else table.mac}" for k in bad for p in PRICES.get(k, ())
    )
    raise AgosError(
        f"design {name}: its energy is not a finite number ({', '.join(bad)} overflowed) with energy table "
        f"'{table.name}'" + (f" ({prices} pJ)" if prices else "") + "; check the table's prices and units"
    )


def design_figures(net: NetworkResult, name: str, layers: bool) -> DesignFigures:
    """One design's entry: its identity, area, cycles, energy and (a requested design) its
    speedups; with `layers`, its figures per layer and pass."""
    from agos.cost.network import speedups

    d = net.designs[name]
    require_finite_energy(d, name)
    arch = d.arch
    pes = arch.pes
    twin = net.twin_of(name)
    energy = d.energy_pj()
    cycles = _cycles(d)
    entry = {
        "role": d.role,
        "organisation": arch.organisation.name,
        "preset": arch.preset,
        "description": arch.description,
        "source": d.loaded.source,
        "sha256": d.loaded.sha256,
        "pe_array": (arch.pe_array.rows, arch.pe_array.cols),
        "precision": arch.precision.multiply,
        "global_buffer_bytes": arch.memory.global_buffer_bytes,
        "area_mm2": d.area.total_mm2,
        "area_breakdown_mm2": d.area.components,
        "static_mw": d.area.static_mw,
        "cycles": cycles,
        "time_ms": {s: c / (arch.clock_ghz * 1e6) for s, c in cycles.items()},
        "energy_j": energy / 1e12,
        "energy_breakdown_j": {k: v / 1e12 for k, v in d.energy_breakdown().items()},
        "energy_vs_twin": _ratio(energy, twin.energy_pj()),
        "dram_bytes": d.total("dram_bytes"),
        "utilisation": _ratio(d.total("effective_macs"), pes * d.cycles("iteration")),
        "components": _components(d),
        "mapping_bound_cycles": {s: int(d.total("mapping_bound", SPANS[s])) for s in SPANS},
        "vector": {"cycles": d.vector.cycles, "by_class": d.vector.by_class, "note": d.vector.note},
        "bypass": arch.skipping.bypass,
    }
    if d.role == "design":
        s = speedups(net, name)
        entry.update(s)
        it = s["speedup_over_twin"]["iteration"]
        entry["speedup_per_area_over_twin"] = (
            it * twin.area.total_mm2 / d.area.total_mm2 if it is not None else None
        )
    if layers:
        entry["layers"] = [
            LayerFigures(
                name=layer.name,
                kind=layer.kind,
                **{p: _pass_figures(layer.passes[p], pes) for p in PASSES},
                speedup_over_twin={
                    span: _ratio(
                        sum(twin.layers[i].passes[p].cycles for p in passes),
                        sum(layer.passes[p].cycles for p in passes),
                    )
                    for span, passes in SPANS.items()
                },
            )
            for i, layer in enumerate(d.layers)
        ]
    return DesignFigures.model_validate(entry)


def simulation_of(
    net: NetworkResult,
    sensitivity: dict[str, dict[str, dict[str, float | None]]] | None = None,
    all_layers: bool = False,
) -> Simulation:
    """Everything `agos simulate` reports of a simulated network (`cost.network.simulate_network`)
    and, optionally, its lookahead sensitivity (`cost.network.lookahead_sensitivity`). Per-layer
    figures are given for the requested designs (for every design with `all_layers`)."""
    from agos.cost.network import mapping_bound_violations

    violations = mapping_bound_violations(net)
    if violations:  # the model's own invariant: never silent, never shipped
        raise AssertionError(f"a pass beat its mapping bound: {violations[0]}")
    designs = {
        name: design_figures(net, name, layers=all_layers or d.role == "design")
        for name, d in net.designs.items()
    }
    first = next(iter(net.designs.values()))
    return Simulation(
        requested=net.requested,
        equal_area=net.equal_area,
        vector_note=first.vector.note,
        designs=designs,
        lookahead_sensitivity=sensitivity,
    )
