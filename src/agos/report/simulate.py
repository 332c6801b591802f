"""`agos simulate`'s table and plot, rendered from the "simulation" section of an `Analysis`
(computed in `agos.analysis.simulation`). Every speedup is over the design's dense twin (the same
organisation with skipping off) unless named otherwise; each design is also set against the best
dense design of equal area. Every number carries the trace's provenance, the density source and
each design's hash."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from agos.analysis.model import Analysis
from agos.fileio import atomic_file
from agos.report.format import num, wide_console


def print_table(analysis: Analysis, per_layer: bool = False, console=None) -> None:
    """The table of `agos simulate`: one row per requested design, its flags and notes, the
    lookahead sensitivity when computed and, with `per_layer`, each layer's backprop speedup."""
    sim = analysis.simulation
    console = console or wide_console()
    table = Table(title=f"Simulated training step — {analysis.label}", title_justify="left")
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
    for name in sim.requested:
        a = sim.designs[name]
        c = a.cycles
        s, bound = a.speedup_over_twin, a.mac_bound_speedup
        table.add_row(
            name,
            f"{a.area_mm2:.2f}",
            f"{c.fwd / 1e6:.2f}",
            f"{c.bwd_data / 1e6:.2f}",
            f"{c.bwd_weight / 1e6:.2f}",
            f"{a.time_ms.iteration:.2f}",
            num(s.backprop if s else None),
            num(s.iteration if s else None),
            num(bound.iteration if bound else None),
            num(a.speedup_over_best_dense_equal_area),
            a.best_dense_equal_area or "—",
            f"{a.energy_j * 1e3:.2f}",
            num(a.energy_vs_twin),
            f"{100 * (a.utilisation or 0):.0f}%",
            str(len(a.flags)) if a.flags else "",
        )
        flagged += [(name, f) for f in a.flags or []]
    console.print(table)
    console.print(
        *[
            "×: over the design's dense twin (same organisation, skipping off); MAC bound = dense MACs / the "
            "MACs its skipping leaves; eq-area: the best dense design of at most its area / it; iteration "
            "includes the vector unit's non-convolution work; Mc = million cycles. Designs: "
            + ", ".join(f"{n} {sim.designs[n].sha256[:8]}" for n in sim.requested)
        ],
        markup=False,
        highlight=False,
    )
    for name, flag in flagged:
        console.print(f"  {name}: {flag}", markup=False, highlight=False)
    if sim.vector_note:
        console.print(f"note: {sim.vector_note}")
    for note in analysis.capture_notes:
        console.print(f"warning: {note}", markup=False, highlight=False)
    sens = sim.lookahead_sensitivity
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
            t.add_row(name, *(f"{num(row[w].iteration)} ({num(row[w].backprop)})" for w in windows))
        console.print(t)
    if per_layer:
        layers = Table(title="Per-layer backprop speedup over each design's twin", title_justify="left")
        layers.add_column("layer")
        names = sim.requested
        for name in names:
            layers.add_column(name, justify="right")
        for i, layer in enumerate(sim.designs[names[0]].layers):
            layers.add_row(
                layer.name,
                *(num(sim.designs[n].layers[i].speedup_over_twin.backprop) for n in names),
            )
        console.print(layers)


def plot(analysis: Analysis, path: Path) -> None:
    """Per-layer iteration speedup of each skipping design over its twin, and each requested
    design's energy per iteration by component, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sim = analysis.simulation
    designs = sim.designs
    names = [n for n in sim.requested if designs[n].twin not in (None, n)]
    names = [n for n in names if designs[n].layers is not None]
    if not names:
        names = sim.requested
    layers = designs[names[0]].layers
    xs = np.arange(len(layers))
    fig, (ax, ax_e) = plt.subplots(
        2, 1, figsize=(max(9, min(26, 0.25 * len(xs) + 5)), 8), gridspec_kw={"height_ratios": [3, 2]}
    )
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [layer.speedup_over_twin.iteration or 0.0 for layer in designs[name].layers]
        ax.bar(xs + (i - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("per-layer speedup over the dense twin (×)")
    step = max(1, len(xs) // 40)
    ax.set_xticks(xs[::step])
    ax.set_xticklabels([layers[i].name for i in xs[::step]], rotation=90, fontsize=6)
    ax.legend(fontsize=7, ncol=min(6, len(names)))
    ax.set_title(analysis.label, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    all_names = sim.requested
    parts = {}
    for n in all_names:
        for k, v in designs[n].energy_breakdown_j.items():
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
