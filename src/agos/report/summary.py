"""The report's first figure, one per organisation: every skipping design's speedup per network,
over its dense twin (left) and over the best dense design of equal area (right); bars are the
iteration, diamonds the backpropagation, both from 1× (no gain) up or down. Read from the
results the report already carries (`results.json`): it computes nothing but ratios of the
times given there."""

from __future__ import annotations

from pathlib import Path

# dense is 1× by definition, zero-gate too (it saves energy, not time), ideal is the bound (tables)
SKIPPERS = ("input-skip", "output-skip", "agos")
COLOURS = {"input-skip": "#4c9be8", "output-skip": "#f2a33a", "agos": "#2ca02c"}


def _designs_on(entry: dict, org: str) -> dict[str, dict]:
    """{preset: design} of the requested skipping designs on `org` (the first of each preset)."""
    out: dict[str, dict] = {}
    for d in entry["designs"].values():
        if d["organisation"] == org and d["preset"] in SKIPPERS:
            out.setdefault(d["preset"], d)
    return out


def _over_equal_area(d: dict, span: str) -> float | None:
    if span == "iteration":
        return d.get("speedup_over_best_dense_equal_area")
    detail = d.get("best_dense_equal_area_detail") or {}
    theirs, ours = (detail.get("time_ms") or {}).get("backprop"), (d.get("time_ms") or {}).get("backprop")
    return theirs / ours if theirs and ours else None


def networks(results: dict) -> list[tuple[str, dict]]:
    """(label, entry) per network: the run's models, then its trained networks."""
    out = [(name, m) for name, m in results["models"].items()]
    out += [(f"{name} (ImageNet)", m) for name, m in (results.get("trained") or {}).items()]
    return out


def organisations(results: dict) -> list[str]:
    """The shipped organisations first, in their order (systolic, rows), then any others by name."""
    from agos.arch.load import ORGANISATIONS

    found = {
        d["organisation"]
        for _, m in networks(results)
        for d in m["designs"].values()
        if d["preset"] in SKIPPERS
    }
    return [o for o in ORGANISATIONS if o in found] + sorted(found - set(ORGANISATIONS))


def caption(results: dict) -> str:
    s = results["settings"]["run"]
    return (
        f"real masks · {s['weights']} weights (trained networks: ImageNet) · data {s['data']} · "
        f"batch {s['batch_size']} · {s['image_size']} px · seed {s['seed']}"
    )


def plot_organisation(results: dict, org: str, path: Path) -> Path:
    """The figure of one organisation, written to `path` (PNG)."""
    import matplotlib.pyplot as plt

    from agos.fileio import atomic_file

    fig = figure(results, org)
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def figure(results: dict, org: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nets = networks(results)
    presets = [p for p in SKIPPERS if any(p in _designs_on(m, org) for _, m in nets)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.7), sharey=True)
    xs = np.arange(len(nets))
    width = 0.8 / max(1, len(presets))
    top, low = 1.0, 1.0
    for ax, (title, over) in zip(
        axes,
        (
            ("over its dense twin (same organisation, skipping off)", None),
            ("over the best dense design of equal area", _over_equal_area),
        ),
        strict=True,
    ):
        for i, preset in enumerate(presets):
            its = [_designs_on(m, org).get(preset) for _, m in nets]

            def value(d, span, over=over):
                if d is None:
                    return np.nan
                v = (d.get("speedup_over_twin") or {}).get(span) if over is None else over(d, span)
                return np.nan if v is None else v

            it = np.array([value(d, "iteration") for d in its], dtype=float)
            bp = np.array([value(d, "backprop") for d in its], dtype=float)
            at = xs + (i - (len(presets) - 1) / 2) * width
            ax.bar(at, it - 1.0, width * 0.92, bottom=1.0, color=COLOURS[preset], label=preset, zorder=2)
            ax.scatter(
                at, bp, marker="D", s=16, color="black", zorder=3, label="backprop" if i == 0 else None
            )
            top = max(top, np.nanmax(np.concatenate([it, bp, [1.0]])))
            low = min(low, np.nanmin(np.concatenate([it, bp, [1.0]])))
        ax.axhline(1.0, color="black", linewidth=0.8, zorder=1)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels([label for label, _ in nets], fontsize=8, rotation=25, ha="right")
        ax.grid(axis="y", alpha=0.3, zorder=0)
    axes[0].set_ylabel("speedup (×)")
    span = top - low
    axes[0].set_ylim(low - 0.08 * span - 0.02, top + 0.08 * span + 0.02)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [f"{label} (bar: iteration)" if label in presets else "backprop" for label in labels]
    fig.suptitle(f"{org}: speedup of each design, per network — {caption(results)}", fontsize=10, y=0.99)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.945), ncol=len(labels), fontsize=8,
               frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig
