"""`agos sparsity`: the "sparsity" section of an `Analysis` (computed in `agos.analysis.sparsity`)
as a table, CSV and plots."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from agos.analysis.model import Analysis
from agos.analysis.sparsity import Sparsity
from agos.report import csvfile
from agos.report.format import macs as _macs
from agos.report.format import pct as _pct
from agos.report.format import wide_console


def _section(analysis: Analysis) -> Sparsity:
    if analysis.sparsity is None:
        raise ValueError("this analysis has no sparsity section")
    return analysis.sparsity


def print_table(analysis: Analysis, console: Console | None = None) -> None:
    section = _section(analysis)
    console = console or wide_console()
    table = Table(title=f"Sparsity per layer — {analysis.label}", title_justify="left")
    for col, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("kind", "left"),
        ("MACs/pass", "right"),
        ("X zero", "right"),
        ("dY zero", "right"),
        ("dX skip", "right"),
        ("act↔dY agree", "right"),
        ("X from", "left"),
        ("Y to", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold", no_wrap=justify == "right")
    for s in section.layers:
        dx = _pct(s.dx_skip_frac) if s.needs_bwd_data else "no BWD-D"
        if s.needs_bwd_data and s.dx_reason:
            dx += " (all)"
        table.add_row(
            str(s.index),
            s.name,
            s.kind,
            _macs(s.macs),
            _pct(s.x_zero_frac),
            _pct(s.dy_zero_frac),
            dx,
            _pct(s.agreement),
            s.x_producer,
            s.y_consumer,
        )
    t = section.totals
    table.add_section()
    table.add_row(
        "",
        "total (MAC-weighted)",
        "",
        _macs(t.macs_per_pass),
        _pct(t.x_zero_frac),
        _pct(t.dy_zero_frac),
        _pct(t.dx_skip_frac),
        "",
        "",
        "",
    )
    console.print(table)
    reasons = sorted({s.dx_reason for s in section.layers if s.needs_bwd_data and s.dx_reason})
    if reasons:
        console.print("dX needed everywhere ('all') because: " + "; ".join(reasons))


def write_csv(analysis: Analysis, path: Path) -> None:
    """One row per layer, led by the provenance columns (`report.csvfile`); a layer that runs no
    BWD-D has no dX, so its dx_skip_frac is empty, not 0."""
    rows = [s.model_dump() for s in _section(analysis).layers]
    for row in rows:
        if not row["needs_bwd_data"]:
            row["dx_skip_frac"] = None
    csvfile.write_csv(analysis, rows, path)


SERIES = (
    # key, label, marker, style: X is drawn over dX (they coincide wherever X comes from a ReLU, and
    # the dX line once hid the X line), dX as a broad light band under it
    ("dx_skip_frac", "dX skippable (output sparsity)", "^", {"linewidth": 5, "alpha": 0.35, "zorder": 2}),
    ("dy_zero_frac", "dY zero (BWD input sparsity)", "s", {"linewidth": 1, "zorder": 3}),
    ("x_zero_frac", "X zero (FWD input sparsity)", "o", {"linewidth": 1.2, "mfc": "none", "zorder": 4}),
)


def figure(analysis: Analysis):
    """The per-layer sparsity figure: X, dY and skippable dX (none plotted for a layer that runs
    no BWD-D, marked "no BWD-D"), and each layer's MACs; panels of at most 30 layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.report import layerplot

    layers = _section(analysis).layers
    names = [s.name for s in layers]
    chunks = layerplot.panels(len(layers))
    fig = plt.figure(figsize=(12, 5.8 * len(chunks) + 0.5), layout="constrained")
    top, *rest = fig.subfigures(len(chunks) + 1, 1, height_ratios=[0.5] + [5.8] * len(chunks))
    for k, (sub, chunk) in enumerate(zip(rest, chunks, strict=True)):
        ax, ax_macs = sub.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        xs = list(chunk)
        for key, label, marker, style in SERIES:
            values = [
                getattr(layers[i], key) if key != "dx_skip_frac" or layers[i].needs_bwd_data else float("nan")
                for i in xs
            ]
            ax.plot(xs, values, marker=marker, markersize=4, label=label, **style)
        for i in xs:
            if not layers[i].needs_bwd_data:
                ax.text(i, 0.5, "no BWD-D", ha="center", va="center", rotation=90, fontsize=7, color="grey")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("fraction")
        ax.grid(alpha=0.3)
        layerplot.bars(ax_macs, xs, [layers[i].macs for i in xs], 0.8, facecolor="grey")
        layerplot.decades(ax_macs)
        ax_macs.set_ylabel("MACs/pass", fontsize=8)
        layerplot.layer_ticks(ax_macs, chunk, names)
        if k == len(chunks) - 1:
            ax_macs.set_xlabel("layer (network order)")
        if k == 0:
            handles, labels = ax.get_legend_handles_labels()
    top.suptitle(analysis.label, fontsize=9)
    order = [2, 1, 0]  # X, dY, dX
    top.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    return fig


def plot(analysis: Analysis, path: Path) -> None:
    from agos.report import layerplot

    layerplot.save(figure(analysis), path, dpi=120)


def plot_correlation(analysis: Analysis, path: Path) -> None:
    """The correlation the paper starts from: per layer, the share of Y whose activation is zero
    against the share of dY that is zero. On the diagonal (and above) where ReLU follows the conv
    directly; near zero dY sparsity where BatchNorm sits between them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.report import layerplot

    fig, ax = plt.subplots(figsize=(5.6, 5.0), dpi=130)  # laid out at the resolution it is saved at
    points = [s for s in _section(analysis).layers if s.act_zero_frac is not None]
    for direct, label, marker in ((True, "conv → ReLU", "o"), (False, "conv → BN (→ add) → ReLU", "s")):
        chosen = [s for s in points if s.act_direct == direct]
        ax.scatter(
            [s.act_zero_frac for s in chosen],
            [s.dy_zero_frac for s in chosen],
            label=f"{label} ({len(chosen)})",
            marker=marker,
            s=22,
            alpha=0.8,
        )
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("forward: share of the layer's activations that are zero")
    ax.set_ylabel("backward: share of dY that is zero")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(analysis.label, fontsize=7)
    fig.tight_layout()
    layerplot.save(fig, path, dpi=130)
