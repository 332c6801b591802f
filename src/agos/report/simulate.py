"""`agos simulate`: cycles, area, energy and speedups of each design on a trace, as a table, JSON
and a plot. Every speedup is over the design's dense twin (the same organisation with skipping
off) unless named otherwise; each design is also set against the best dense design of equal area.
Every number carries the trace's provenance, the density source and each design's hash."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from agos.cost.network import DesignResult, NetworkResult, mapping_bound_violations, speedups
from agos.fileio import atomic_file
from agos.inputs.provenance import provenance_label
from agos.report.sparsity import wide_console
from agos.workload.passes import PASSES, SPANS

FORMAT = "agos-simulate"
VERSION = 2
CYCLE_SPANS = (*SPANS, "vector")


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


def _pass_dict(cost, pes: int) -> dict:
    return {
        "cycles": cost.cycles,
        "compute_cycles": cost.compute_cycles,
        "tiles": len(cost.tile_compute),
        "tiling": {
            "order": cost.order,
            "position_blocks": cost.blocks[0],
            "channel_blocks": cost.blocks[1],
            "stream_blocks": cost.blocks[2],
        },
        "items": cost.items,
        "dram_bytes": {"a": cost.dram_a, "b": cost.dram_b, "o": cost.dram_o},
        "dense_macs": cost.dense_macs,
        "effective_macs": cost.effective_macs,
        "design_macs": cost.design_macs,
        "mapping_bound_cycles": cost.mapping_bound,
        "mac_bound_cycles": cost.mac_bound,
        "components": cost.components,
        "actions": cost.actions,
        "energy_pj": cost.energy_pj,
        "energy_breakdown_pj": cost.energy_breakdown,
        "utilisation": _ratio(cost.effective_macs, pes * cost.cycles),
    }


def design_dict(net: NetworkResult, name: str, layers: bool) -> dict:
    d = net.designs[name]
    arch = d.arch
    pes = arch.pes
    twin = net.twin_of(name)
    energy = d.energy_pj()
    entry = {
        "role": d.role,
        "organisation": arch.organisation.name,
        "preset": arch.preset,
        "description": arch.description,
        "source": d.loaded.source,
        "sha256": d.loaded.sha256,
        "pe_array": [arch.pe_array.rows, arch.pe_array.cols],
        "precision": arch.precision.multiply,
        "global_buffer_bytes": arch.memory.global_buffer_bytes,
        "area_mm2": d.area.total_mm2,
        "area_breakdown_mm2": d.area.components,
        "static_mw": d.area.static_mw,
        "cycles": _cycles(d),
        "time_ms": {s: c / (arch.clock_ghz * 1e6) for s, c in _cycles(d).items()},
        "energy_j": energy / 1e12,
        "energy_breakdown_j": {k: v / 1e12 for k, v in d.energy_breakdown().items()},
        "energy_vs_twin": _ratio(energy, twin.energy_pj()),
        "dram_bytes": d.total("dram_bytes"),
        "utilisation": _ratio(d.total("effective_macs"), pes * d.cycles("iteration")),
        "components": _components(d),
        "mapping_bound_cycles": {s: int(d.total("mapping_bound", SPANS[s])) for s in SPANS},
        "vector": {"cycles": d.vector.cycles, "by_class": d.vector.by_class, "note": d.vector.note},
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
            {
                "name": layer.name,
                "kind": layer.kind,
                **{p: _pass_dict(layer.passes[p], pes) for p in PASSES},
                "speedup_over_twin": {
                    span: _ratio(
                        sum(tl.passes[p].cycles for p in passes),
                        sum(layer.passes[p].cycles for p in passes),
                    )
                    for span, passes in SPANS.items()
                    for tl in [twin.layers[i]]
                },
            }
            for i, layer in enumerate(d.layers)
        ]
    return entry


def summarise(
    net: NetworkResult,
    provenance: dict,
    density: str,
    lookahead: dict | None = None,
    all_layers: bool = False,
    capture_notes: list[str] | None = None,
) -> dict:
    """Everything `agos simulate` reports, as plain data (the JSON output). Per-layer figures are
    given for the requested designs (for every design with `all_layers`)."""
    violations = mapping_bound_violations(net)
    if violations:  # the model's own invariant: never silent, never shipped
        raise AssertionError(f"a pass beat its mapping bound: {violations[0]}")
    designs = {
        name: design_dict(net, name, layers=all_layers or d.role == "design")
        for name, d in net.designs.items()
    }
    first = next(iter(net.designs.values()))
    return {
        "format": FORMAT,
        "version": VERSION,
        "provenance": provenance,
        "density": density,
        "label": provenance_label(provenance, density),
        "requested": net.requested,
        "equal_area": net.equal_area,
        "vector_note": first.vector.note,
        "capture_notes": list(capture_notes or []),
        "designs": designs,
        "lookahead_sensitivity": lookahead,
        "notes": {
            "speedup_over_twin": "over the same organisation with every skip, gate and compression off",
            "mac_bound_speedup": "dense MACs / the MACs this design's skipping leaves (its policy)",
            "speedup_over_best_dense_equal_area": "best dense design whose area is at most this design's "
            "(its extra area spent on PEs or buffer, on every organisation of the run) / this design",
            "iteration": "FWD + BWD-D + BWD-W + the vector unit's non-convolution work; backprop excludes it",
        },
    }


def _x(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def print_table(summary: dict, per_layer: bool = False, console=None) -> None:
    console = console or wide_console()
    table = Table(title=f"Simulated training step — {summary['label']}", title_justify="left")
    cols = (
        "design", "mm²", "FWD Mc", "BWD-D Mc", "BWD-W Mc", "iter ms",
        "×bp twin", "×iter twin", "MAC bound", "×iter eq-area", "best equal-area dense",
        "mJ", "E/E twin", "util", "flags",
    )  # fmt: skip
    for col in cols:
        table.add_column(
            col, justify="left" if col in ("design", "best equal-area dense") else "right", no_wrap=True
        )
    flagged = []
    for name in summary["requested"]:
        a = summary["designs"][name]
        c = a["cycles"]
        s = a.get("speedup_over_twin", {})
        table.add_row(
            name,
            f"{a['area_mm2']:.2f}",
            f"{c['fwd'] / 1e6:.2f}",
            f"{c['bwd_data'] / 1e6:.2f}",
            f"{c['bwd_weight'] / 1e6:.2f}",
            f"{a['time_ms']['iteration']:.2f}",
            _x(s.get("backprop")),
            _x(s.get("iteration")),
            _x(a.get("mac_bound_speedup", {}).get("iteration")),
            _x(a.get("speedup_over_best_dense_equal_area")),
            a.get("best_dense_equal_area") or "—",
            f"{a['energy_j'] * 1e3:.2f}",
            _x(a["energy_vs_twin"]),
            f"{100 * (a['utilisation'] or 0):.0f}%",
            str(len(a.get("flags", []))) if a.get("flags") else "",
        )
        flagged += [(name, f) for f in a.get("flags", [])]
    console.print(table)
    console.print(
        *[
            "×: over the design's dense twin (same organisation, skipping off); MAC bound = dense MACs / the "
            "MACs its skipping leaves; eq-area: the best dense design of at most its area / it; iteration "
            "includes the vector unit's non-convolution work; Mc = million cycles. Designs: "
            + ", ".join(f"{n} {summary['designs'][n]['sha256'][:8]}" for n in summary["requested"])
        ],
        markup=False,
        highlight=False,
    )
    for name, flag in flagged:
        console.print(f"  {name}: {flag}", markup=False, highlight=False)
    if summary.get("vector_note"):
        console.print(f"note: {summary['vector_note']}")
    for note in summary.get("capture_notes", []):
        console.print(f"warning: {note}", markup=False, highlight=False)
    sens = summary.get("lookahead_sensitivity")
    if sens:
        windows = list(next(iter(sens.values())))
        t = Table(
            title="Lookahead window sensitivity: iteration (backprop) speedup over the twin",
            title_justify="left",
        )
        t.add_column("design")
        for w in windows:
            t.add_column(f"L={w}", justify="right")
        for name, row in sens.items():
            t.add_row(name, *(f"{_x(row[w]['iteration'])} ({_x(row[w]['backprop'])})" for w in windows))
        console.print(t)
    if per_layer:
        layers = Table(title="Per-layer backprop speedup over each design's twin", title_justify="left")
        layers.add_column("layer")
        names = summary["requested"]
        for name in names:
            layers.add_column(name, justify="right")
        first = summary["designs"][names[0]]["layers"]
        for i, layer in enumerate(first):
            layers.add_row(
                layer["name"],
                *(_x(summary["designs"][n]["layers"][i]["speedup_over_twin"]["backprop"]) for n in names),
            )
        console.print(layers)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in summary["requested"] if summary["designs"][n].get("twin") not in (None, n)]
    names = [n for n in names if "layers" in summary["designs"][n]]
    if not names:
        names = summary["requested"]
    layers = summary["designs"][names[0]]["layers"]
    xs = np.arange(len(layers))
    fig, (ax, ax_e) = plt.subplots(
        2, 1, figsize=(max(9, min(26, 0.25 * len(xs) + 5)), 8), gridspec_kw={"height_ratios": [3, 2]}
    )
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [
            layer["speedup_over_twin"]["iteration"] or 0.0 for layer in summary["designs"][name]["layers"]
        ]
        ax.bar(xs + (i - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("per-layer speedup over the dense twin (×)")
    step = max(1, len(xs) // 40)
    ax.set_xticks(xs[::step])
    ax.set_xticklabels([layers[i]["name"] for i in xs[::step]], rotation=90, fontsize=6)
    ax.legend(fontsize=7, ncol=min(6, len(names)))
    ax.set_title(summary["label"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    all_names = summary["requested"]
    parts = {}
    for n in all_names:
        for k, v in summary["designs"][n]["energy_breakdown_j"].items():
            parts.setdefault(k, {})[n] = v
    bottoms = np.zeros(len(all_names))
    for part, by in parts.items():
        values = np.array([by.get(n, 0.0) * 1e3 for n in all_names])
        ax_e.bar(all_names, values, bottom=bottoms, label=part)
        bottoms += values
    ax_e.set_ylabel("energy per iteration (mJ)")
    ax_e.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax_e.legend(fontsize=7, ncol=4)
    ax_e.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
