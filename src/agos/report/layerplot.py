"""What every per-layer figure shares: layers split into panels of at most `PER_PANEL`, one under the
other, so that a deep network's layer names stay readable at the page's width (53 layers of
mobilenet_v2 on one axis were unreadable); a log axis labelled at its decades only (minor labels
overlapped); legends placed above the axes, never over the data; saving."""

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


def save(fig, path: Path | str, dpi: int = 120) -> None:
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
