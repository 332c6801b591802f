"""What every per-layer figure shares: layers split into panels of at most `PER_PANEL`, one under the
other, so that a deep network's layer names stay readable at the page's width (53 layers of
mobilenet_v2 on one axis were unreadable); a log axis labelled at its decades only (minor labels
overlapped); legends placed above the axes, never over the data; bars as one artist; laying out
and saving, each done once."""

from __future__ import annotations

import math
from pathlib import Path

PER_PANEL = 30
LABEL_SIZE = 7


def panels(n: int, per: int = PER_PANEL) -> list[range]:
    """Layer indices per panel, as even as possible."""
    count = max(1, math.ceil(n / per))
    size = math.ceil(n / count) if n else 0
    return [range(i, min(n, i + size)) for i in range(0, n, size)] if n else [range(0)]


def layer_ticks(ax, indices: range, names: list[str]) -> None:
    ax.set_xticks(list(indices))
    ax.set_xticklabels([f"{i} {names[i]}" for i in indices], rotation=90, fontsize=LABEL_SIZE)
    ax.set_xlim(indices.start - 0.6, indices.stop - 0.4)


def decades(ax) -> None:
    """A log axis labelled at powers of ten only."""
    from matplotlib.ticker import LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.yaxis.set_minor_formatter(NullFormatter())


def legend_above(fig, handles, labels, ncol: int, top: float) -> None:
    """The legend in the band above the axes (`top`: where the axes end, as a figure fraction)."""
    fig.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=ncol, fontsize=8, frameon=False
    )


def bars(ax, x, heights, width: float, bottom=0.0, **style):
    """Bars as one collection: what `ax.bar` draws, without one Rectangle artist per bar (a deep
    network's panels held hundreds, and building and drawing them was most of a figure's cost).
    As with `ax.bar`, a NaN height draws no bar and autoscaling leaves no margin beyond the bars'
    bottoms (their sticky edges). The collection carries `label` for the legend."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    x = np.asarray(x, dtype=float)
    heights = np.asarray(heights, dtype=float)
    low = np.broadcast_to(np.asarray(bottom, dtype=float), heights.shape)
    keep = ~np.isnan(heights)
    left, right = x[keep] - width / 2, x[keep] + width / 2
    lo, hi = low[keep], low[keep] + heights[keep]
    corners = ((left, lo), (left, hi), (right, hi), (right, lo))
    verts = np.stack([np.stack(corner, axis=-1) for corner in corners], axis=1)  # (bars, 4, 2)
    bars = PolyCollection(verts, linewidths=0, **style)
    bars.sticky_edges.y.extend(np.unique(lo).tolist())
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()
    return bars


def lay_out(fig, dpi: int) -> None:
    """Fix the figure's layout at the resolution it is saved at: its (constrained) layout run once,
    then switched off, so that savefig draws it once. `bbox_inches="tight"` drew every figure
    twice more to find a box that the layout already keeps inside the figure, and a figure that
    keeps its layout engine is laid out again on each of savefig's two draws."""
    fig.set_dpi(dpi)  # text is measured at the saved size, and those measures are reused to draw
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine(None)  # with the default rcParams: no engine


def save(fig, path: Path | str, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    lay_out(fig, dpi)
    suffix = Path(path).suffix.lstrip(".") or "png"
    options = {"pil_kwargs": {"compress_level": 1}} if suffix == "png" else {}  # zlib's 6: 1.6× the time, -3%
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=suffix, dpi=dpi, **options)
    plt.close(fig)
