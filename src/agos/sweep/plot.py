"""Sweep figures: the Pareto front (speedup over the dense twin against area, energy as colour) and
sensitivity curves (speedup against each numeric axis and the uniform sparsity level, one line per
design, the mean over the other axes with their min–max band). Each figure names its spec, traces,
densities and the agos version."""

from __future__ import annotations

from pathlib import Path

from agos import __version__
from agos.sweep.plan import ORG_AXIS, Plan


def pareto(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices of the points no other point beats: (speedup ↑, area ↓, energy ↓)."""
    front = []
    for i, (s, a, e) in enumerate(points):
        dominated = any(
            s2 >= s and a2 <= a and e2 <= e and (s2 > s or a2 < a or e2 < e)
            for j, (s2, a2, e2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _label(plan: Plan, where: str) -> str:
    traces = ", ".join(
        f"{t.path} ({t.model}, {t.batch_size}×{t.image_size} px, {t.sha256[:8]})" for t in plan.traces
    )
    return f"sweep {where} · {traces} · agos {__version__}"


def _uniform_level(density: str) -> float | None:
    return float(density.split(":", 1)[1]) if density.startswith("uniform:") else None


def plot_sweep(rows: list[dict], plan: Plan, out: Path, where: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agos.fileio import owned_file

    ok = [r for r in rows if r["error"] is None and r["speedup_iteration"] is not None]
    written: list[Path] = []
    label = _label(plan, where)
    # Pareto front
    fig, ax = plt.subplots(figsize=(9, 6))
    if ok:
        triples = [(r["speedup_iteration"], r["area_mm2"], r["energy_j"]) for r in ok]
        front = set(pareto(triples))
        sc = ax.scatter(
            [t[1] for t in triples],
            [t[0] for t in triples],
            c=[t[2] * 1e3 for t in triples],
            cmap="viridis",
            s=[60 if i in front else 18 for i in range(len(triples))],
            edgecolors=["red" if i in front else "none" for i in range(len(triples))],
        )
        fig.colorbar(sc, ax=ax, label="energy per iteration (mJ)")
        fr = sorted(front, key=lambda i: triples[i][1])
        ax.plot([triples[i][1] for i in fr], [triples[i][0] for i in fr], "r--", linewidth=0.8,
                label=f"Pareto front ({len(front)} of {len(ok)} points; speedup↑ area↓ energy↓)")  # fmt: skip
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no successful points", ha="center", transform=ax.transAxes)
    ax.set_xlabel("area (mm²)")
    ax.set_ylabel("iteration speedup over the dense twin (×)")
    ax.set_title(label, fontsize=7, wrap=True)
    ax.grid(alpha=0.3)
    path = out / "pareto.png"
    with owned_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
    # sensitivity: numeric axes and the uniform sparsity level
    xs: dict[str, callable] = {}
    for axis in plan.axes:
        if axis == ORG_AXIS:
            continue
        values = {r[axis] for r in ok}
        if len(values) > 1 and all(isinstance(v, int | float) or v == "inf" for v in values):
            xs[axis] = lambda r, a=axis: r[a]
    levels = {_uniform_level(r["density"]) for r in ok} - {None}
    if len(levels) > 1:
        xs["uniform sparsity level"] = lambda r: _uniform_level(r["density"])
    if xs:
        fig, axs = plt.subplots(1, len(xs), figsize=(5.5 * len(xs), 4.5), squeeze=False)
        for ax, (name, get) in zip(axs[0], xs.items(), strict=True):
            finite = [get(r) for r in ok if get(r) is not None and get(r) != "inf"]
            top = max(finite) * 2 if finite else 1
            pos = lambda v, top=top: top if v == "inf" else v  # noqa: E731 — 'inf' drawn past the largest
            for design in dict.fromkeys(r["design"] for r in ok):
                by: dict[float, list[float]] = {}
                for r in ok:
                    if r["design"] == design and get(r) is not None:
                        by.setdefault(pos(get(r)), []).append(r["speedup_iteration"])
                keys = sorted(by)
                mean = [sum(by[k]) / len(by[k]) for k in keys]
                ax.plot(keys, mean, marker="o", label=design)
                ax.fill_between(keys, [min(by[k]) for k in keys], [max(by[k]) for k in keys], alpha=0.15)
            ax.set_xlabel(name + (" ('inf' at the right end)" if any(get(r) == "inf" for r in ok) else ""))
            ax.set_ylabel("iteration speedup over the dense twin (×)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(label + " · mean over the other axes, band min–max", fontsize=7, wrap=True)
        path = out / "sensitivity.png"
        with owned_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
