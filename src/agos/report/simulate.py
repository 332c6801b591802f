"""`agos simulate`'s table and plot, rendered from the "simulation" section of an `Analysis`
(computed in `agos.analysis.simulation`). Every speedup is over the design's dense twin (the same
organisation with skipping off) unless named otherwise; each design is also set against the best
dense design of equal area. Every number carries the trace's provenance, the density source and
each design's hash."""

from __future__ import annotations

from pathlib import Path

from agos.analysis.frames import layer_rows
from agos.analysis.model import Analysis
from agos.report import csvfile
from agos.report.format import Col, num, print_density_notes, print_fitted, wide_console


def bypass_lines(sim) -> list[str]:
    """One line per design the bypass rule decides on: how many layer passes it switched off and,
    when simulated, backprop with every feature always on and the per-layer oracle."""
    out = []
    for name in sim.requested:
        a = sim.designs[name]
        if a.bypass != "rule" or a.bypassed_passes is None:
            continue
        line = f"  {name}: bypass rule switched features off in {a.bypassed_passes} layer passes"
        if a.always_on_speedup_over_twin and a.oracle_speedup_over_twin:
            line += (
                f"; backprop ×{num(a.speedup_over_twin.backprop)} with the rule, "
                f"×{num(a.always_on_speedup_over_twin.backprop)} every feature always on, "
                f"×{num(a.oracle_speedup_over_twin.backprop)} per-layer oracle (an upper bound)"
            )
        out.append(line)
    return out


def print_table(analysis: Analysis, per_layer: bool = False, console=None) -> None:
    """The table of `agos simulate`: one row per requested design, its flags and notes, the
    lookahead sensitivity when computed and, with `per_layer`, each layer's backprop speedup."""
    sim = analysis.simulation
    console = console or wide_console()
    cols = [Col("design", "left"), *map(Col, ("mm²", "FWD Mc", "BWD-D Mc", "BWD-W Mc", "iter ms"))]
    cols += [
        *map(Col, ("×bp twin", "×iter twin", "MAC bound", "×iter eq-area")),
        Col("best equal-area dense", "left"),
    ]
    cols += [*map(Col, ("mJ", "E/E twin", "util", "flags"))]
    rows = []
    flagged = []
    for name in sim.requested:
        a = sim.designs[name]
        c = a.cycles
        s, bound = a.speedup_over_twin, a.mac_bound_speedup
        rows.append(
            [
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
            ]
        )
        flagged += [(name, f) for f in a.flags or []]
    print_fitted(console, f"Simulated training step — {analysis.label}", cols, rows)
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
    for line in bypass_lines(sim):
        console.print(line, markup=False, highlight=False)
    if sim.vector_note:
        console.print(f"note: {sim.vector_note}")
    for note in analysis.capture_notes:
        console.print(f"warning: {note}", markup=False, highlight=False)
    print_density_notes(analysis, console)
    sens = sim.lookahead_sensitivity
    if sens:
        windows = list(next(iter(sens.values())))
        print_fitted(
            console,
            "Lookahead window sensitivity: iteration (backprop) speedup over the twin",
            [Col("design", "left"), *(Col(f"L={w}") for w in windows)],
            [
                [name, *(f"{num(row[w].iteration)} ({num(row[w].backprop)})" for w in windows)]
                for name, row in sens.items()
            ],
        )
    if per_layer:
        names = sim.requested
        print_fitted(
            console,
            "Per-layer backprop speedup over each design's twin",
            [Col("layer", "left"), *(Col(n) for n in names)],
            [
                [layer.name, *(num(sim.designs[n].layers[i].speedup_over_twin.backprop) for n in names)]
                for i, layer in enumerate(sim.designs[names[0]].layers)
            ],
        )


def write_csv(analysis: Analysis, path: Path) -> None:
    csvfile.write_csv(analysis, layer_rows(analysis), path)


def figure(analysis: Analysis):
    """Per-layer iteration speedup of each skipping design over its twin (bars, panels of at most
    30 layers; the `ideal` bound as a black tick on the same axis, drawn at the top edge with its
    value where it lies above the real designs' range, so that its 35–50× never flattens their
    1–2×), and each requested design's energy per iteration by component."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import offset_copy

    from agos.report import layerplot

    sim = analysis.simulation
    designs = sim.designs
    skippers = [
        n for n in sim.requested if designs[n].twin not in (None, n) and designs[n].layers is not None
    ]
    bound = [n for n in skippers if designs[n].preset == "ideal" or n.startswith("ideal")]
    real = [n for n in skippers if n not in bound] or [
        n for n in sim.requested if designs[n].layers is not None
    ]
    layers = designs[real[0]].layers
    names = [layer.name for layer in layers]

    def values(name: str) -> np.ndarray:
        return np.array(
            [
                np.nan if (v := layer.speedup_over_twin.iteration) is None else v
                for layer in designs[name].layers
            ]
        )

    shown = np.concatenate([values(n) for n in real] + [np.array([1.0])])
    top = float(np.nanmax(shown)) * 1.12 + 0.05
    bottom = min(0.0, float(np.nanmin(shown)))
    chunks = layerplot.panels(len(layers))
    fig = plt.figure(figsize=(12, 4.6 * len(chunks) + 5.2), layout="constrained")
    head, *rest, energy = fig.subfigures(
        len(chunks) + 2, 1, height_ratios=[0.6] + [4.6] * len(chunks) + [4.6]
    )
    width = 0.8 / max(1, len(real))
    for k, (sub, chunk) in enumerate(zip(rest, chunks, strict=True)):
        ax = sub.subplots()
        xs = np.array(list(chunk))
        for i, name in enumerate(real):
            at = xs + (i - (len(real) - 1) / 2) * width
            layerplot.bars(ax, at, values(name)[xs], width, facecolor=f"C{i % 10}", label=name)
        for j, name in enumerate(bound):
            v = values(name)[xs]
            inside = np.where(v <= top, v, np.nan)
            ax.scatter(xs, inside, marker="_", s=160, linewidths=2, color=("black", "dimgrey")[j % 2],
                       label=f"{name} (the bound; ▲ n×: above the axis)", zorder=4)  # fmt: skip
            colour = ("black", "dimgrey")[j % 2]
            below = offset_copy(ax.transData, fig=fig, y=-2 - 9 * j, units="points")  # under the top edge
            for x, value in zip(xs, v, strict=True):
                if value > top:  # plain text, not annotate: its per-draw clip test cost as much as the bars
                    ax.text(x, top, f"▲{value:.0f}×", transform=below, ha="center", va="top", fontsize=6,
                            color=colour)  # fmt: skip
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_ylim(bottom, top)
        ax.set_ylabel("iteration speedup\nover the dense twin (×)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        layerplot.layer_ticks(ax, chunk, names)
        if k == 0:
            handles, labels = ax.get_legend_handles_labels()
    head.suptitle(analysis.label, fontsize=9)
    head.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
    ax_e = energy.subplots()
    all_names = sim.requested
    parts: dict[str, dict[str, float]] = {}
    for n in all_names:
        for key, v in designs[n].energy_breakdown_j.items():
            parts.setdefault(key, {})[n] = v
    bottoms = np.zeros(len(all_names))
    at = np.arange(len(all_names))
    for k, (part, by) in enumerate(parts.items()):
        vals = np.array([by.get(n, 0.0) * 1e3 for n in all_names])
        layerplot.bars(ax_e, at, vals, 0.8, bottom=bottoms, facecolor=f"C{k % 10}", label=part)
        bottoms += vals
    ax_e.set_xticks(at, all_names, rotation=30, fontsize=7, ha="right")
    ax_e.set_ylabel("energy per iteration (mJ)", fontsize=8)
    ax_e.grid(axis="y", alpha=0.3)
    ax_e.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def plot(analysis: Analysis, path: Path) -> None:
    from agos.report import layerplot

    layerplot.save(figure(analysis), path, dpi=120)
