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
    """S of `uniform:S`, with or without a `:structure=…` (parsed as --density parses it)."""
    from agos.density.select import parse_density

    return parse_density(density).zero_fraction if density.startswith("uniform:") else None


def _bytes(v: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(v) >= scale:
            return f"{v / scale:g} {unit}"
    return f"{v:g} B"


def front_2d(points: list[tuple[float, float]]) -> list[int]:
    """The staircase of (cost ↓, gain ↑): indices by increasing cost, each gaining more than every
    cheaper one (the front of one plane; the three-way front projected on it zigzags)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    out: list[int] = []
    for i in order:
        if not out or points[i][1] > points[out[-1]][1]:
            out.append(i)
    return out


MARKERS = "osD^vP*Xh<>"


def pareto_figure(ok: list[dict], label: str):
    """Speedup against area (left) and energy against area (right), one colour per design and one
    marker per density; each panel's front as a staircase; points on the three-way front (speedup ↑,
    area ↓, energy ↓) ringed."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(13, 5.5))
    if not ok:
        ax.text(0.5, 0.5, "no successful points", ha="center", transform=ax.transAxes)
        return fig
    designs = list(dict.fromkeys(r["design"] for r in ok))
    densities = list(dict.fromkeys(r["density"] for r in ok))
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(designs)}
    markers = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(densities)}
    three = set(pareto([(r["speedup_iteration"], r["area_mm2"], r["energy_j"]) for r in ok]))
    for i, r in enumerate(ok):
        for axis, y in ((ax, r["speedup_iteration"]), (ax_e, r["energy_j"] * 1e3)):
            axis.scatter(r["area_mm2"], y, color=colours[r["design"]], marker=markers[r["density"]], s=34,
                         edgecolors="black" if i in three else "none", linewidths=1.2, zorder=3)  # fmt: skip
    for axis, key, sign, what in (
        (ax, "speedup_iteration", 1, "speedup↑ area↓"),
        (ax_e, "energy_j", -1, "energy↓ area↓"),
    ):
        pts = [(r["area_mm2"], sign * r[key]) for r in ok]
        front = front_2d(pts)
        xs = [pts[i][0] for i in front]
        ys = [sign * pts[i][1] * (1e3 if key == "energy_j" else 1) for i in front]
        axis.step(xs, ys, where="post", color="red", linewidth=1, zorder=2,
                  label=f"front ({what}): {len(front)} points")  # fmt: skip
        axis.set_xlabel("area (mm²)")
        axis.grid(alpha=0.3)
    ax.set_ylabel("iteration speedup over the dense twin (×)")
    ax_e.set_ylabel("energy per iteration (mJ)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[d], marker="o", linestyle="", label=d) for d in designs]
    handles += [Line2D([], [], color="grey", marker=markers[d], linestyle="", label=d) for d in densities]
    handles += [Line2D([], [], color="white", marker="o", markeredgecolor="black", linestyle="",
                       label=f"ringed: on the three-way front ({len(three)} of {len(ok)})")]  # fmt: skip
    handles += [Line2D([], [], color="red", label="each panel's front (staircase)")]
    fig.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=8, frameon=False
    )
    fig.suptitle(label, fontsize=7, wrap=True)
    fig.tight_layout()
    return fig


def plot_sweep(rows: list[dict], plan: Plan, out: Path, where: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from agos.fileio import owned_file

    ok = [r for r in rows if r["error"] is None and r["speedup_iteration"] is not None]
    written: list[Path] = []
    label = _label(plan, where)
    # Pareto fronts: speedup against area, and energy against area; colour = design, marker = density
    fig = pareto_figure(ok, label)
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
            if name.endswith("_bytes"):  # ticks at the swept sizes, in KiB/MiB, not raw bytes
                ax.set_xticks(sorted({pos(v) for v in finite}))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _bytes(v)))
                ax.tick_params(axis="x", labelrotation=30)
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
