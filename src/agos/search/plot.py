"""One figure per front: every design searched (area against backprop time), each family's
Pareto front as a step line, and the shipped dense design's area budgets."""

from __future__ import annotations

from pathlib import Path

from agos.search.front import Front

COLOURS = {"with": "#c0392b", "without": "#2c6fbb"}
NAMES = {"with": "with output skipping", "without": "without (dense, input skipping, join)"}


def plot_front(front: Front, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    by_name = {p.design: p for p in front.points}
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for fam in ("without", "with"):
        pts = [p for p in front.points if p.family == fam]
        ax.scatter([p.area_mm2 for p in pts], [p.backprop_ms for p in pts], s=10, alpha=0.35,
                   color=COLOURS[fam], linewidths=0)  # fmt: skip
        line = [by_name[n] for n in front.time_front[fam]]
        if line:
            xs = [p.area_mm2 for p in line]
            ys = [p.backprop_ms for p in line]
            style = {"with": ("-", "o", 2), "without": ("--", "s", 4)}[fam]  # without drawn on top
            ax.step(xs, ys, where="post", color=COLOURS[fam], lw=2, ls=style[0], zorder=style[2],
                    label=f"{NAMES[fam]} (front)")  # fmt: skip
            ax.scatter(xs, ys, s=30, marker=style[1], color=COLOURS[fam], edgecolors="black",
                       linewidths=0.5, zorder=style[2] + 1)  # fmt: skip
    for b in front.budgets:
        ax.axvline(b.area_mm2, color="grey", lw=0.6, ls=":")
        ax.annotate(f"{b.budget:g}×", (b.area_mm2, 0.01), xycoords=("data", "axes fraction"),
                    fontsize=7, color="grey", ha="left", va="bottom", rotation=90)  # fmt: skip
    ax.set_xlabel("area (mm², 45 nm)")
    ax.set_ylabel("backprop time per step (ms)")
    ax.set_title(f"{front.organisation}: {front.label}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, f"dotted: area budgets × the shipped dense@{front.organisation} "
             f"({front.dense_area_mm2:.1f} mm²); every design with the bypass rule", fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
    return path
