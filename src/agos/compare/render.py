"""A `Comparison` as terminal tables (whole design names, whatever the terminal's width:
`report.format.print_fitted`) and as a plot labelled with where both sides came from."""

from __future__ import annotations

import textwrap
from pathlib import Path

from rich.console import Console

from agos.compare.model import Change, Comparison, EntryComparison
from agos.report.format import DASH, Col, macs, missing, pct, print_fitted, times, wide_console

SPAN_TITLES = {
    "fwd": "FWD",
    "bwd_data": "BWD-D",
    "bwd_weight": "BWD-W",
    "backprop": "backprop",
    "iteration": "iteration",
}
COLOURS = {"x_zero_frac": "tab:blue", "dy_zero_frac": "tab:orange", "dx_skip_frac": "tab:green"}
SPARSITY = (("x_zero_frac", "X zero"), ("dy_zero_frac", "dY zero"), ("dx_skip_frac", "dX skip"))


def points(c: Change) -> str:
    """A change of a fraction in percentage points."""
    return DASH if missing(c.delta) else f"{100 * c.delta:+.1f} pp"


def relative(c: Change) -> str:
    """A change as a share of A (B / A − 1)."""
    return DASH if missing(c.ratio) else f"{100 * (c.ratio - 1):+.1f}%"


def _count(x: float | None) -> str:
    return DASH if x is None else macs(int(x), units="TGMk")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_entry(e: EntryComparison, console: Console, layers: bool = False) -> None:
    head = f" — {e.name}" if e.name else ""
    _say(console, f"Comparison{head}\n  A: {e.a.label}\n  B: {e.b.label}")
    lead = 4 if e.layers else 1  # layer, kind, MACs A, MACs B; the totals alone: their name
    sparsity_cols = [Col("layer", "left"), Col("kind", "left"), Col("MACs/pass A"), Col("B")][:lead]
    for _, title in SPARSITY:
        sparsity_cols += [Col(f"{title} A"), Col("B"), Col("change")]
    rows = []
    for layer in e.layers:
        row = [layer.name, layer.kind, _count(layer.macs.a), _count(layer.macs.b)]
        for key, _ in SPARSITY:
            c = getattr(layer, key)
            row += [pct(c.a), pct(c.b), points(c)]
        rows.append(row)
    if e.totals is not None:
        row = [f"total (MAC-weighted, {e.totals.source})", "", "", ""][:lead]
        for key, _ in SPARSITY:
            c = getattr(e.totals, key)
            row += [pct(c.a), pct(c.b), points(c)]
        rows.append(row)
    if rows:
        title = "Sparsity per layer (dX skip: — where a layer runs no BWD-D)" if e.layers else "Sparsity"
        print_fitted(console, title, sparsity_cols, rows)
    for side, names in (("A", e.layers_only_a), ("B", e.layers_only_b)):
        if names:
            _say(console, f"layers only in {side} ({len(names)}): {', '.join(names)}")
    if e.designs:
        cols = [
            Col("design", "left"), Col("span", "left"), Col("cycles A"), Col("cycles B"), Col("change"),
            Col("speedup over twin A"), Col("B"), Col("change"),
        ]  # fmt: skip
        rows = []
        for d in e.designs:
            for span, title in SPAN_TITLES.items():
                c, s = getattr(d.cycles, span), getattr(d.speedup_over_twin, span)
                rows.append(
                    [
                        d.name,
                        title,
                        _count(c.a),
                        _count(c.b),
                        relative(c),
                        times(s.a),
                        times(s.b),
                        relative(s),
                    ]
                )
            q = d.speedup_over_best_dense_equal_area
            rows.append([d.name, "vs equal-area dense", "", "", "", times(q.a), times(q.b), relative(q)])
        print_fitted(console, "Simulated cycles and speedups per design", cols, rows, keys=2)
        per_layer = [d for d in e.designs if d.layers] if layers else []
        if per_layer:
            cols = [Col("design", "left"), Col("layer", "left")]
            for p in ("fwd", "bwd_data", "bwd_weight"):
                cols += [Col(f"{SPAN_TITLES[p]} cycles A"), Col("B"), Col("change")]
            rows = [
                [d.name, layer.name, *(
                    x for p in ("fwd", "bwd_data", "bwd_weight")
                    for c in [getattr(layer, p)] for x in (_count(c.a), _count(c.b), relative(c))
                )]
                for d in per_layer for layer in d.layers
            ]  # fmt: skip
            print_fitted(console, "Simulated cycles per layer and pass", cols, rows, keys=2)
    for side, names in (("A", e.designs_only_a), ("B", e.designs_only_b)):
        if names:
            _say(console, f"designs only in {side}: {', '.join(names)}")
    for note in e.notes:
        _say(console, f"note: {note}")


def print_comparison(comparison: Comparison, console: Console | None = None, layers: bool = False) -> None:
    """The tables of every compared network; `layers`: each design's cycles per layer and pass too
    (always in the JSON)."""
    console = console or wide_console()
    _say(console, f"A = {comparison.a}\nB = {comparison.b}")
    for e in comparison.entries:
        print_entry(e, console, layers)
        console.print()
    for side, names in (("A", comparison.entries_only_a), ("B", comparison.entries_only_b)):
        if names:
            _say(console, f"only in {side} ({len(names)}): {', '.join(names)}")


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _sparsity_axes(ax, e: EntryComparison) -> None:
    """The change B − A of each zero share, per layer (where both sides have layers) and in total, as
    bars side by side (lines of A and B on one axis hid each other)."""
    import numpy as np

    groups = [(layer.name, layer) for layer in e.layers]
    if e.totals is not None:
        groups.append(("total (MAC-weighted)", e.totals))
    if not groups:
        ax.text(0.5, 0.5, "no sparsity on both sides", ha="center", va="center")
        ax.set_axis_off()
        return
    xs = np.arange(len(groups))
    width = 0.8 / len(SPARSITY)
    for i, (key, title) in enumerate(SPARSITY):
        deltas = [getattr(g, key).delta for _, g in groups]
        heights = [np.nan if d is None else 100 * d for d in deltas]
        ax.bar(xs + (i - 1) * width, heights, width, label=f"{title}: B − A", color=COLOURS[key])
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(xs)
    ax.set_xticklabels([name for name, _ in groups], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("change of the zero share (percentage points)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("sparsity: B − A (dX skip: no bar where a layer runs no BWD-D)", fontsize=9)


def _designs_axes(ax, e: EntryComparison) -> None:
    """Per design, the change of its speedup over its twin in each span (B / A − 1), its iteration
    speedups A → B in the tick label."""
    import numpy as np

    spans = ("fwd", "bwd_data", "bwd_weight", "iteration")
    ys = np.arange(len(e.designs))
    height = 0.8 / len(spans)
    for i, span in enumerate(spans):
        ratios = [getattr(d.speedup_over_twin, span).ratio for d in e.designs]
        values = [np.nan if r is None else 100 * (r - 1) for r in ratios]
        ax.barh(ys + (i - 1.5) * height, values, height, label=SPAN_TITLES[span])
    ax.set_yticks(ys)
    labels = []
    for d in e.designs:
        it = d.speedup_over_twin.iteration
        labels.append(f"{d.name}\niteration {times(it.a)} → {times(it.b)}")
    ax.set_yticklabels(labels, fontsize=7)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("change of the speedup over its dense twin, B / A − 1 (%)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.invert_yaxis()
    ax.set_title("designs: speedup over the dense twin, B against A", fontsize=9)


def plot(comparison: Comparison, path: Path | str) -> None:
    """One row per compared network: the change of its zero shares (per layer and in total) and,
    where both sides simulated designs, their iteration speedups over their twins, A against B.
    Each row is headed with both sides' provenance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    entries = comparison.entries
    cols = 2 if any(e.designs for e in entries) else 1
    row_height = max(5.0, 0.55 * max(len(e.designs) for e in entries))  # two tick lines per design
    fig, axes = plt.subplots(len(entries), cols, figsize=(8 * cols, row_height * len(entries)), squeeze=False)
    for row, e in zip(axes, entries, strict=True):
        _sparsity_axes(row[0], e)
        if cols == 2:
            if e.designs:
                _designs_axes(row[1], e)
            else:
                row[1].text(0.5, 0.5, "no design simulated on both sides", ha="center", va="center")
                row[1].set_axis_off()
        head = f"{e.name}\n" if e.name else ""
        row[0].annotate(
            head + _wrap(f"A: {e.a.label}", 60 * cols) + "\n" + _wrap(f"B: {e.b.label}", 60 * cols),
            xy=(0, 1.1), xycoords="axes fraction", fontsize=8, va="bottom",
        )  # fmt: skip
    fig.tight_layout()
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=suffix, dpi=110, bbox_inches="tight")
    plt.close(fig)
