"""`agos simulate`: cycles, energy and speedups of each design on a trace, as a table, JSON and a
plot. Every number carries the trace's provenance, the density source and each arch file's hash."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from agos.arch.schema import PASSES
from agos.cost.network import DesignResult
from agos.fileio import atomic_file
from agos.report.bounds import SPEEDUP_PASSES
from agos.report.provenance import provenance_label
from agos.report.sparsity import wide_console

PASS_LABEL = {"fwd": "FWD", "bwd_data": "BWD-D", "bwd_weight": "BWD-W"}
SPANS = SPEEDUP_PASSES


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _pass_dict(cost, pes: int) -> dict:
    return {
        "cycles": cost.cycles,
        "compute_cycles": cost.compute_cycles,
        "transfer_cycles": cost.transfer_cycles,
        "items": cost.items,
        "tiles": len(cost.tile_compute),
        "energy_pj": cost.energy_pj,
        "energy_breakdown_pj": cost.energy_breakdown,
        "dram_bytes": cost.dram_bytes,
        "dense_macs": cost.dense_macs,
        "effective_macs": cost.effective_macs,
        "utilisation": _ratio(cost.effective_macs, pes * cost.cycles) if cost.cycles else 0.0,
        "actions": cost.actions,
    }


def summarise(results: list[DesignResult], provenance: dict, density: str, baseline: str = "dense") -> dict:
    by_name = {r.loaded.name: r for r in results}
    base = by_name[baseline]
    archs = {}
    for result in results:
        arch = result.loaded.arch
        pes = arch.pes
        layers = []
        for layer, base_layer in zip(result.layers, base.layers, strict=True):
            entry = {"name": layer.name, "kind": layer.kind}
            for p in PASSES:
                entry[p] = _pass_dict(layer.passes[p], pes)
            entry["speedup"] = {
                span: _ratio(
                    sum(base_layer.passes[p].cycles for p in passes),
                    sum(layer.passes[p].cycles for p in passes),
                )
                for span, passes in SPANS.items()
            }
            layers.append(entry)
        cycles = {span: result.total("cycles", passes) for span, passes in SPANS.items()}
        effective = {span: result.total("effective_macs", passes) for span, passes in SPANS.items()}
        energy = result.total("energy_pj")
        totals = {
            "fwd_cycles": cycles["fwd"],
            "bwd_data_cycles": cycles["bwd_data"],
            "bwd_weight_cycles": cycles["bwd_weight"],
            "backprop_cycles": cycles["backprop"],
            "iteration_cycles": cycles["iteration"],
            "iteration_ms": cycles["iteration"] / (arch.clock_ghz * 1e6),
            "energy_pj": energy,
            "energy_breakdown_pj": result.energy_breakdown(),
            "dram_bytes": result.total("dram_bytes"),
            "utilisation": {
                span: _ratio(effective[span], pes * cycles[span]) if cycles[span] else 0.0 for span in SPANS
            },
        }
        archs[result.loaded.name] = {
            "source": result.loaded.source,
            "sha256": result.loaded.sha256,
            "description": arch.description,
            "layers": layers,
            "totals": totals,
            "speedup": {
                span: _ratio(base.total("cycles", passes), cycles[span]) for span, passes in SPANS.items()
            },
            "energy_vs_baseline": _ratio(energy, base.total("energy_pj")),
            # the design's own sparsity gain: over the same machine with its skipping off
            "sparsity_speedup": {
                span: _ratio((result.twin or result).total("cycles", passes), cycles[span])
                for span, passes in SPANS.items()
            },
        }
    return {
        "provenance": provenance,
        "density": density,
        "label": provenance_label(provenance, density),
        "baseline": baseline,
        "archs": archs,
    }


def print_table(summary: dict, per_layer: bool = False, console=None) -> None:
    console = console or wide_console()
    base = summary["baseline"]
    table = Table(title=f"Simulated training step — {summary['label']}", title_justify="left")
    for col in (
        "design",
        "FWD Mcyc",
        "BWD-D Mcyc",
        "BWD-W Mcyc",
        "iter ms",
        "×FWD",
        "×BWD-D",
        "×BWD-W",
        "×backprop",
        "×iteration",
        "×iter own",
        "util",
        "energy mJ",
        "E/E_dense",
    ):
        table.add_column(col, justify="left" if col == "design" else "right", no_wrap=True)
    for name, a in summary["archs"].items():
        t, s = a["totals"], a["speedup"]
        table.add_row(
            name,
            f"{t['fwd_cycles'] / 1e6:.2f}",
            f"{t['bwd_data_cycles'] / 1e6:.2f}",
            f"{t['bwd_weight_cycles'] / 1e6:.2f}",
            f"{t['iteration_ms']:.2f}",
            *(f"{s[k]:.2f}" for k in ("fwd", "bwd_data", "bwd_weight", "backprop", "iteration")),
            f"{a['sparsity_speedup']['iteration']:.2f}",
            f"{100 * t['utilisation']['iteration']:.0f}%",
            f"{t['energy_pj'] / 1e9:.2f}",
            f"{a['energy_vs_baseline']:.2f}",
        )
    console.print(table)
    console.print(
        "'×iter own': over the same design with its skipping off (its sparsity gain alone); "
        f"other speedups (×) are over '{base}'; util = effective MACs / (PEs × cycles); "
        "arch files: " + ", ".join(f"{n} {a['sha256'][:8]}" for n, a in summary["archs"].items())
    )
    if per_layer:
        layers = Table(title="Per-layer backprop speedup over " + base, title_justify="left")
        layers.add_column("layer")
        names = list(summary["archs"])
        for name in names:
            layers.add_column(name, justify="right")
        first = summary["archs"][names[0]]["layers"]
        for i, layer in enumerate(first):
            layers.add_row(
                layer["name"],
                *(f"{summary['archs'][n]['layers'][i]['speedup']['backprop']:.2f}" for n in names),
            )
        console.print(layers)


def write_json(summary: dict, path: Path) -> None:
    with atomic_file(path) as f:
        json.dump(summary, f, indent=1)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in summary["archs"] if n != summary["baseline"]]
    layers = summary["archs"][summary["baseline"]]["layers"]
    xs = np.arange(len(layers))
    fig, (ax, ax_e) = plt.subplots(
        2, 1, figsize=(max(9, min(26, 0.25 * len(xs) + 5)), 8), gridspec_kw={"height_ratios": [3, 2]}
    )
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [layer["speedup"]["iteration"] for layer in summary["archs"][name]["layers"]]
        ax.bar(xs + (i - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"iteration speedup over {summary['baseline']} (×)")
    step = max(1, len(xs) // 40)
    ax.set_xticks(xs[::step])
    ax.set_xticklabels([layers[i]["name"] for i in xs[::step]], rotation=90, fontsize=6)
    ax.legend(fontsize=8, ncol=min(6, len(names)))
    ax.set_title(summary["label"], fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    all_names = list(summary["archs"])
    bottoms = np.zeros(len(all_names))
    for part, color in (("mac", "#4c72b0"), ("buffer", "#dd8452"), ("dram", "#55a868")):
        values = np.array(
            [summary["archs"][n]["totals"]["energy_breakdown_pj"].get(part, 0.0) / 1e9 for n in all_names]
        )
        ax_e.bar(
            all_names,
            values,
            bottom=bottoms,
            label={"mac": "MACs", "buffer": "buffers", "dram": "DRAM"}[part],
            color=color,
        )
        bottoms += values
    ax_e.set_ylabel("energy per iteration (mJ)")
    ax_e.legend(fontsize=8)
    ax_e.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
