"""`agos sparsity`: the "sparsity" section of an `Analysis` (computed in `agos.analysis.sparsity`)
as a table, CSV and plots."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from agos.analysis.model import Analysis
from agos.analysis.sparsity import Sparsity
from agos.fileio import atomic_file
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


def plot(analysis: Analysis, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = _section(analysis).layers
    xs = list(range(len(layers)))
    fig, (ax, ax_macs) = plt.subplots(
        2,
        1,
        figsize=(max(8, min(24, 0.22 * len(xs) + 4)), 6.5),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    series = (
        ("x_zero_frac", "X zero (FWD input sparsity)", "o"),
        ("dy_zero_frac", "dY zero (BWD input sparsity)", "s"),
        ("dx_skip_frac", "dX skippable (output sparsity)", "^"),
    )
    for key, label, marker in series:
        values = [getattr(s, key) for s in layers]
        ax.plot(xs, values, marker=marker, markersize=3.5, linewidth=1, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(analysis.label, fontsize=9)
    ax_macs.bar(xs, [s.macs for s in layers], color="grey")
    ax_macs.set_yscale("log")
    ax_macs.set_ylabel("MACs/pass")
    step = max(1, len(xs) // 40)
    ax_macs.set_xticks(xs[::step])
    ax_macs.set_xticklabels([layers[i].name for i in xs[::step]], rotation=90, fontsize=6)
    ax_macs.set_xlabel("layer (network order)")
    fig.tight_layout()
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=130)
    plt.close(fig)


def plot_correlation(analysis: Analysis, path: Path) -> None:
    """The correlation the paper starts from: per layer, the share of Y whose activation is zero
    against the share of dY that is zero. On the diagonal (and above) where ReLU follows the conv
    directly; near zero dY sparsity where BatchNorm sits between them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 5.0))
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
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
