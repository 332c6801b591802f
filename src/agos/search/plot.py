"""One figure per front: every design searched (area against backprop time), each family's
Pareto front as a step line, and the shipped dense design's area budgets."""

from __future__ import annotations

from pathlib import Path

from agos.search.front import BUDGETS, Front

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
    # the fronts decide the scale: small designs far slower than any front would squash them
    on_front = [by_name[n].backprop_ms for fam in front.time_front.values() for n in fam]
    top = 2 * max(on_front) if on_front else None
    hidden = sum(p.backprop_ms > top for p in front.points) if top else 0
    if top:
        ax.set_ylim(0, top)
    ax.set_xlabel("area (mm², 45 nm)")
    ax.set_ylabel("backprop time per step (ms)")
    ax.set_title(f"{front.organisation}: {front.label}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.text(0.01, 0.01, f"dotted: area budgets × the shipped dense@{front.organisation} "
             f"({front.dense_area_mm2:.1f} mm²); every design with the bypass rule"
             + (f"; {hidden} slower designs off the top" if hidden else ""),
             fontsize=7)  # fmt: skip
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)
    plt.close(fig)
    return path


def plot_phase(result, path: Path) -> Path:
    """One row of panels per organisation, one panel per realization: speedup over the best
    input-only design of equal area against the zero fraction, a line per mask structure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    orgs = list(dict.fromkeys(p.organisation for p in result.points))
    reals = {
        o: list(dict.fromkeys(p.realization for p in result.points if p.organisation == o)) for o in orgs
    }
    cols = max(len(v) for v in reals.values())
    fig, axes = plt.subplots(
        len(orgs), cols, figsize=(3.0 * cols, 2.7 * len(orgs)), sharey=True, squeeze=False
    )
    markers = "osD^vP*X"
    for i, org in enumerate(orgs):
        for j in range(cols):
            ax = axes[i][j]
            if j >= len(reals[org]):
                ax.axis("off")
                continue
            real = reals[org][j]
            for k, structure in enumerate(result.structures):
                pts = sorted(
                    (p for p in result.points if p.realization == real and p.structure == structure),
                    key=lambda p: p.zeros,
                )
                ax.plot([p.zeros for p in pts], [p.speedup for p in pts], marker=markers[k % len(markers)],
                        ms=4, lw=1.2, label=structure)  # fmt: skip
            ax.axhline(1.0, color="black", lw=0.8, ls="--")
            ax.set_title(real, fontsize=8)
            ax.grid(alpha=0.3)
            if i == len(orgs) - 1:
                ax.set_xlabel("zero fraction of every ReLU output", fontsize=8)
            if j == 0:
                ax.set_ylabel("backprop speedup over the best\ninput-only design of equal area", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, title="mask structure",
               title_fontsize=8)  # fmt: skip
    note = f"{result.label} · masks seed {result.seed} · above the dashed line output skipping pays"
    fig.text(0.01, 0.005, note, fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 0.9))
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return path


def plot_answer(fronts: list[Front], path: Path, budgets: tuple[float, ...] = BUDGETS) -> Path:
    """The answer at a glance, one panel per organisation: per network and density source, the
    fastest design without output skipping over the fastest with it at each area budget (above 1:
    output skipping pays on that area)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    orgs = list(dict.fromkeys(f.organisation for f in fronts))
    fig, axes = plt.subplots(1, len(orgs), figsize=(6.2 * len(orgs), 4.4), sharey=True, squeeze=False)
    top = 1.35
    for ax, org in zip(axes[0], orgs, strict=True):
        mine = [f for f in fronts if f.organisation == org]
        width = 0.8 / len(budgets)
        for k, factor in enumerate(budgets):
            values = []
            for f in mine:
                b = next((b for b in f.budgets if abs(b.budget - factor) < 1e-9), None)
                values.append(b.with_over_without if b and b.with_over_without else 0.0)
            top = max(top, 1.12 * max(values, default=0.0))
            xs = [i + (k - (len(budgets) - 1) / 2) * width for i in range(len(mine))]
            bars = ax.bar(xs, values, width, label=f"{factor:g}× dense area")
            text = [f"{v:.2f}" if v else "—" for v in values]
            ax.bar_label(bars, labels=text, fontsize=5, padding=1, rotation=90)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(mine)))
        ax.set_xticklabels([_short(f) for f in mine], fontsize=7, rotation=20, ha="right")
        ax.set_title(org, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylim(0, top)  # shared: no bar is cut off
    axes[0][0].set_ylabel("backprop: best without / best with\n(above 1: output skipping pays)", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()  # above the panels: it covered bars
    fig.legend(handles, labels, loc="upper center", ncol=len(budgets), fontsize=7, title="area budget",
               title_fontsize=7, frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return path


def _short(front: Front) -> str:
    """model · weights · batch · px · density, from the front's label."""
    parts = [p.strip() for p in front.label.split("·")]
    keep = [parts[0]] + [p for p in parts[1:] if p.startswith("weights") or "px" in p or "batch" in p]
    return " · ".join(keep) + "\n" + front.density
